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

from kplan.state.codec import decode_value, encode_value, loads_many
from kplan.state.crypto import SecretBox
from kplan.state.records import ResourceRecord

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
    for i, (addr, module, type_, name, _, provider, host, attrs, secret, _) in enumerate(rows):
        yield ResourceRecord(
            addr,
            module,
            type_,
            name,
            keys[i],
            provider,
            host,
            decode_value(attrs, box, aad(addr)) if secret else next(plain),
            tuple(deps[i]),
        )
