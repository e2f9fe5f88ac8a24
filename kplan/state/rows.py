"""Resource records <-> database rows (the columns of ``queries.select_resources``).

Loading is the hot path of a large state: JSON columns are parsed with one
``json.loads`` per column over all rows, rows without secrets skip the
secret walk (the ``has_secrets`` column), and cyclic GC is paused while the
many small, acyclic containers are built.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Row

from kplan.state.codec import SECRET_MARKER, decode_value, encode_value, loads_many
from kplan.state.crypto import SecretBox
from kplan.state.records import ResourceRecord
from kplan.values import Secret

__all__ = ["from_rows", "gc_paused", "records_of", "to_row"]

Aad = Callable[[str], bytes]


@contextmanager
def gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def to_row(record: ResourceRecord, ws_id: int, box: SecretBox, aad: Aad) -> dict[str, Any]:
    """The column values of one record; secrets sealed. ValueError names the address."""
    try:
        text, has_secrets = encode_value(record.attributes, box, aad(record.address))
    except ValueError as exc:
        raise ValueError(f"{record.address}: {exc}") from None
    return {
        "workspace_id": ws_id,
        "address": record.address,
        "module": record.module,
        "type": record.type,
        "name": record.name,
        "index_key": None if record.index_key is None else json.dumps(record.index_key),
        "provider": record.provider,
        "host": record.host,
        "attributes": text,
        "has_secrets": has_secrets,
        "dependencies": json.dumps(list(record.dependencies), separators=(",", ":")),
    }


def from_rows(rows: Sequence[Row[Any]], box: SecretBox, aad: Aad) -> dict[str, ResourceRecord]:
    """Decode rows into records keyed by address; ValueError on a damaged row."""
    return {r.address: r for r in _records(rows, box, aad)}


def records_of(rows: Sequence[Row[Any]], box: SecretBox, aad: Aad) -> list[ResourceRecord]:
    """Decode rows into records in row order (several may share an address: versions)."""
    return list(_records(rows, box, aad))


def _records(rows: Sequence[Row[Any]], box: SecretBox, aad: Aad) -> Iterator[ResourceRecord]:
    # One json.loads per column over all rows: far faster than one per value.
    plain = iter(loads_many([r[7] for r in rows if not r[8]]))
    keys = loads_many([r[4] or "null" for r in rows])
    deps = loads_many([r[9] for r in rows])
    sealed = _Unsealer(box)
    for i, (addr, module, type_, name, _, provider, host, attrs, secret, _) in enumerate(rows):
        yield ResourceRecord(
            addr,
            module,
            type_,
            name,
            keys[i],
            provider,
            host,
            sealed.decode(attrs, aad(addr)) if secret else next(plain),
            tuple(deps[i]),
        )


_MARKER_TEXT = f'"{SECRET_MARKER}"'


class _Unsealer:
    """``codec.decode_value`` for many rows: one JSON decoder (and its scanner) for all
    of them instead of one per row; the same values and the same errors."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box
        self.aad = b""
        self.decoder = json.JSONDecoder(object_hook=self._unseal)

    def _unseal(self, obj: dict[str, Any]) -> Any:
        if len(obj) == 1 and SECRET_MARKER in obj:
            return Secret(json.loads(self.box.decrypt(obj[SECRET_MARKER], self.aad)))
        return obj

    def decode(self, text: str, aad: bytes) -> Any:
        if type(text) is not str or _MARKER_TEXT not in text or text.startswith("\ufeff"):
            return decode_value(text, self.box, aad)  # json.loads's own checks and errors
        self.aad = aad
        return self.decoder.decode(text)
