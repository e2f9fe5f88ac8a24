"""``secret_key``: random key material generated at apply, kept as a Secret.

For keys a service reads as text: Keystone's fernet and credential keys
(``encoding: base64url`` of 32 bytes, the format ``cryptography.fernet``
expects), a cookie secret (``hex``), a key given as standard ``base64``.

Attributes: ``bytes`` (default 32, 1..1024), ``encoding`` (``base64url``,
the default, ``base64`` or ``hex``), ``keepers`` (a map; any change makes a
new key). All three force a replace: a new key. The computed ``value`` is
always a :class:`kplan.values.Secret`, planned UNKNOWN on create and
replace and kept otherwise. Why not ``secret_password``: a key is random
bytes in an encoding, not characters from an alphabet, and a service that
decodes it refuses anything else.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ApplyResponse, Attribute, ReadInstance, ReadResponse, ResourceSchema
from kplan.provider_sdk import ResourceType, Target, attr_error, plain
from kplan.values import Secret

from .secret_password import read_generated

__all__ = ["ENCODINGS", "MAX_BYTES", "SecretKey", "encode"]

MAX_BYTES = 1024
ENCODINGS = ("base64url", "base64", "hex")

SCHEMA = ResourceSchema(
    type_name="secret_key",
    description="Random key material (a fernet key, a cookie secret) generated at apply.",
    attributes={
        "bytes": Attribute(
            "number",
            optional=True,
            default=32,
            force_new=True,
            description=f"random bytes, 1..{MAX_BYTES}",
        ),
        "encoding": Attribute(
            "string",
            optional=True,
            default="base64url",
            force_new=True,
            description="base64url (padded, as fernet keys), base64 or hex",
        ),
        "keepers": Attribute(
            "map", optional=True, force_new=True, description="any change makes a new key"
        ),
        "value": Attribute("string", computed=True, sensitive=True, description="the encoded key"),
    },
)


def encode(raw: bytes, encoding: str) -> str:
    if encoding == "hex":
        return raw.hex()
    if encoding == "base64":
        return base64.b64encode(raw).decode()
    return base64.urlsafe_b64encode(raw).decode()


def _problems(size: Any, encoding: Any) -> list[Diagnostic]:
    """What is wrong with known values; UNKNOWN, absent or mistyped ones are left alone."""
    out = []
    known_size = isinstance(size, int | float) and not isinstance(size, bool)
    if known_size and (size != int(size) or not 1 <= size <= MAX_BYTES):
        out.append(
            attr_error(
                "bytes",
                f"bytes must be a whole number from 1 to {MAX_BYTES}",
                f"got {size}",
                code="invalid-bytes",
            )
        )
    if isinstance(encoding, str) and encoding not in ENCODINGS:
        out.append(
            attr_error(
                "encoding",
                f"encoding must be one of {', '.join(ENCODINGS)}",
                f"got {encoding!r}",
                code="invalid-encoding",
            )
        )
    return out


class SecretKey(ResourceType[Target]):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        return _problems(plain(config.get("bytes")), plain(config.get("encoding")))

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        return read_generated(instances)

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        size = plain(planned.get("bytes"))
        size = SCHEMA.attributes["bytes"].default if size is None else size
        encoding = plain(planned.get("encoding")) or SCHEMA.attributes["encoding"].default
        problems = _problems(size, encoding)
        if not problems and not isinstance(size, int | float):
            problems = [attr_error("bytes", "bytes is not a number at apply", code="invalid-bytes")]
        if problems:
            return ApplyResponse(None, problems)
        state = dict(planned)
        state["value"] = Secret(encode(secrets.token_bytes(int(size)), str(encoding)))
        return ApplyResponse(state)
