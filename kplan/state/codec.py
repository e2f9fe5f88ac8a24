"""Attribute values <-> the JSON text kept in the state.

Plain values are stored as compact, key-sorted JSON. Every
:class:`~kplan.values.Secret` leaf (or subtree) is replaced by
``{"__kplan_secret__": "<token>"}``, where the token is the JSON of the
revealed value encrypted with the state cipher and bound to ``aad`` (the
workspace and the address that own the value). Decoding turns such objects
back into Secrets. :data:`~kplan.values.UNKNOWN` is never stored: it is a
plan-time value, and an attempt to store it is a bug (``ValueError``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from kplan.state.crypto import SecretBox
from kplan.values import Secret, Unknown, reveal

__all__ = [
    "SECRET_MARKER",
    "decode_attributes",
    "decode_value",
    "encode_attributes",
    "encode_value",
    "loads_many",
]

SECRET_MARKER: Final = "__kplan_secret__"
# How the marker appears as an object key in compact JSON; never inside a string value
# (a '"' inside a string is escaped, so the quote-marker-quote-colon run cannot occur).
_MARKER_KEY: Final = f'"{SECRET_MARKER}":'
_MARKER_TEXT: Final = f'"{SECRET_MARKER}"'


def _dumps(value: Any, default: Any = None) -> str:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=default,
    )


def encode_value(value: Any, box: SecretBox, aad: bytes) -> tuple[str, bool]:
    """Encode any JSON-like value; return the text and whether it holds a secret."""
    count = 0

    def seal(obj: object) -> object:
        nonlocal count
        if isinstance(obj, Secret):
            count += 1
            token = box.encrypt(_dumps(reveal(obj), _reject).encode("utf-8"), aad)
            return {SECRET_MARKER: token}
        return _reject(obj)

    try:
        text = _dumps(value, seal)
    except TypeError as exc:
        raise ValueError(f"a value cannot be stored in the state: {exc}") from None
    if text.count(_MARKER_KEY) != count:
        raise ValueError(f"the key {SECRET_MARKER!r} is reserved and cannot appear in a value")
    return text, count > 0


def _reject(obj: object) -> object:
    if isinstance(obj, Unknown):
        raise ValueError("an unknown value cannot be stored in the state")
    if isinstance(obj, Secret):
        # A Secret inside a Secret's value: it is revealed by reveal(), never reached.
        return reveal(obj)
    raise TypeError(f"{type(obj).__name__} is not a JSON value")


def encode_attributes(attrs: Mapping[str, Any], cipher: SecretBox, aad: bytes) -> str:
    """Encode a resource's attributes (see the module docstring)."""
    return encode_value(dict(attrs), cipher, aad)[0]


def decode_value(text: str, box: SecretBox, aad: bytes) -> Any:
    """Decode text written by :func:`encode_value`; sealed values come back as Secrets."""
    if _MARKER_TEXT not in text:
        return json.loads(text)

    def unseal(obj: dict[str, Any]) -> Any:
        if len(obj) == 1 and SECRET_MARKER in obj:
            return Secret(json.loads(box.decrypt(obj[SECRET_MARKER], aad)))
        return obj

    return json.loads(text, object_hook=unseal)


def loads_many(texts: Sequence[str]) -> list[Any]:
    """Parse many JSON texts with one ``json.loads`` (for loading large states).

    Raises ``ValueError`` naming the index of the first text that is not JSON.
    """
    if not texts:
        return []
    try:
        values = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        values = None
    if isinstance(values, list) and len(values) == len(texts):
        return values
    for i, text in enumerate(texts):
        try:
            json.loads(text)
        except ValueError:
            raise ValueError(f"item {i} is not valid JSON") from None
    raise ValueError("items are not separate JSON values")


def decode_attributes(text: str, cipher: SecretBox, aad: bytes) -> dict[str, Any]:
    """Decode a resource's attributes; secrets come back as :class:`~kplan.values.Secret`."""
    value = decode_value(text, cipher, aad)
    if not isinstance(value, dict):
        raise ValueError("stored attributes are not a JSON object")
    return value
