"""Moving state between stores: export, import and a content checksum.

An exported document holds every workspace's resources, outputs and history
plus the plain meta values, *decoded*: sensitive values are
:class:`~kplan.values.Secret` objects in memory, never plaintext on disk and
never the source's tokens. Importing seals them again under the destination's
key and its (workspace, address) associated data. Lineage, serial and
history are carried over as they are.

    {"format_version": 1,
     "meta": {KEY: VALUE},                      # kplan.state.* keys excluded
     "workspaces": {NAME: {"lineage", "serial", "created_at",
                           "resources": {ADDRESS: {module, type, name, index_key,
                                                   provider, host, attributes,
                                                   dependencies, updated_serial}},
                           "outputs": {NAME: VALUE},
                           "history": [{serial, operation, user, machine, pid,
                                        started_at, finished_at, summary, outcome}]}}}

:func:`checksum` hashes a document canonically; a secret enters the hash as the
SHA-256 of its canonical JSON, never as plaintext.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, delete, insert, select, update

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.codec import decode_value, encode_value
from kplan.state.crypto import SecretBox
from kplan.state.queries import resource_columns
from kplan.state.records import ResourceRecord, as_utc
from kplan.state.rows import from_rows, to_row
from kplan.state.schema import history as H
from kplan.state.schema import meta as M
from kplan.state.schema import outputs as O
from kplan.state.schema import resources as R
from kplan.state.schema import workspaces as W
from kplan.values import Secret, reveal

__all__ = ["FORMAT_VERSION", "checksum", "decode_workspace", "read_raw", "write_workspace"]

FORMAT_VERSION: Final = 1
RESERVED_META: Final = "kplan.state."
_HISTORY_COLS: Final = (
    "serial",
    "operation",
    "user",
    "machine",
    "pid",
    "started_at",
    "finished_at",
    "summary",
    "outcome",
)


def resource_aad(workspace: str) -> Callable[[str], bytes]:
    return lambda address: f"{workspace}\x00{address}".encode()


def output_aad(workspace: str, name: str) -> bytes:
    return f"{workspace}\x00outputs\x00{name}".encode()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def read_raw(conn: Connection, names: Iterable[str] | None) -> dict[str, Any]:
    """The stored rows of the chosen workspaces (all when None), still encrypted."""
    wanted = None if names is None else set(names)
    raw: dict[str, Any] = {"meta": {}, "workspaces": {}}
    for key, value in conn.execute(select(M.c.key, M.c.value).order_by(M.c.key)):
        if not key.startswith(RESERVED_META):
            raw["meta"][key] = value
    for ws_id, name, lineage, serial, created in conn.execute(
        select(W.c.id, W.c.name, W.c.lineage, W.c.serial, W.c.created_at).order_by(W.c.name)
    ):
        if wanted is not None and name not in wanted:
            continue
        res = conn.execute(
            select(*resource_columns(), R.c.updated_serial)
            .where(R.c.workspace_id == ws_id)
            .order_by(R.c.address)
        ).all()
        outs = conn.execute(
            select(O.c.name, O.c.value).where(O.c.workspace_id == ws_id).order_by(O.c.name)
        ).all()
        hist = conn.execute(
            select(*(H.c[c] for c in _HISTORY_COLS))
            .where(H.c.workspace_id == ws_id)
            .order_by(H.c.serial)
        ).all()
        raw["workspaces"][name] = {
            "lineage": lineage,
            "serial": int(serial),
            "created_at": _iso(created),
            "resources": res,
            "outputs": outs,
            "history": [
                {
                    **dict(zip(_HISTORY_COLS, h, strict=True)),
                    "started_at": _iso(h.started_at),
                    "finished_at": _iso(h.finished_at),
                }
                for h in hist
            ],
        }
    if wanted is not None and (missing := wanted - set(raw["workspaces"])):
        raise KplanError(f"no workspace {sorted(missing)[0]!r} in the state")
    return raw


def decode_workspace(name: str, raw: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """Decode one workspace of :func:`read_raw` into the document form."""
    records = from_rows([r[:10] for r in raw["resources"]], box, resource_aad(name))
    updated = {r[0]: int(r[10]) for r in raw["resources"]}
    return {
        "lineage": raw["lineage"],
        "serial": raw["serial"],
        "created_at": raw["created_at"],
        "resources": {
            addr: {
                "module": rec.module,
                "type": rec.type,
                "name": rec.name,
                "index_key": rec.index_key,
                "provider": rec.provider,
                "host": rec.host,
                "attributes": rec.attributes,
                "dependencies": list(rec.dependencies),
                "updated_serial": updated[addr],
            }
            for addr, rec in records.items()
        },
        "outputs": {n: decode_value(v, box, output_aad(name, n)) for n, v in raw["outputs"]},
        "history": list(raw["history"]),
    }


def encode_workspace(name: str, ws: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """Seal one document workspace for the destination (before its write transaction)."""
    try:
        resources = []
        for addr, r in ws["resources"].items():
            rec = ResourceRecord(
                addr,
                r["module"],
                r["type"],
                r["name"],
                r["index_key"],
                r["provider"],
                r["host"],
                dict(r["attributes"]),
                tuple(r["dependencies"]),
            )
            row = to_row(rec, 0, box, resource_aad(name))
            row["updated_serial"] = int(r.get("updated_serial", ws["serial"]))
            resources.append(row)
        outputs = {
            n: encode_value(v, box, output_aad(name, n))[0] for n, v in ws["outputs"].items()
        }
        history = [
            {
                **{c: h[c] for c in _HISTORY_COLS},
                "started_at": datetime.fromisoformat(h["started_at"]),
                "finished_at": (
                    None if h["finished_at"] is None else datetime.fromisoformat(h["finished_at"])
                ),
            }
            for h in ws["history"]
        ]
        created = datetime.fromisoformat(ws["created_at"])
        return {
            "lineage": str(ws["lineage"]),
            "serial": int(ws["serial"]),
            "created_at": created,
            "resources": resources,
            "outputs": outputs,
            "history": history,
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad_document(f"workspace {name!r}: {type(exc).__name__}: {exc}") from None


def write_workspace(conn: Connection, name: str, sealed: Mapping[str, Any]) -> int:
    """Replace (or create) workspace ``name`` with sealed content; returns its id."""
    found = conn.execute(select(W.c.id).where(W.c.name == name).with_for_update()).first()
    values = {
        "lineage": sealed["lineage"],
        "serial": sealed["serial"],
        "created_at": sealed["created_at"],
    }
    if found is None:
        ws_id = int(
            conn.execute(insert(W).values(name=name, **values).returning(W.c.id)).scalar_one()
        )
    else:
        ws_id = int(found[0])
        for table in (O, H, R):
            conn.execute(delete(table).where(table.c.workspace_id == ws_id))
        conn.execute(update(W).where(W.c.id == ws_id).values(**values))
    if sealed["resources"]:
        conn.execute(insert(R), [{**r, "workspace_id": ws_id} for r in sealed["resources"]])
    if sealed["outputs"]:
        conn.execute(
            insert(O),
            [{"workspace_id": ws_id, "name": n, "value": v} for n, v in sealed["outputs"].items()],
        )
    if sealed["history"]:
        conn.execute(insert(H), [{**h, "workspace_id": ws_id} for h in sealed["history"]])
    return ws_id


def check_document(doc: Mapping[str, Any]) -> None:
    if not isinstance(doc, Mapping) or doc.get("format_version") != FORMAT_VERSION:
        version = doc.get("format_version") if isinstance(doc, Mapping) else None
        raise bad_document(f"format_version {version!r}, expected {FORMAT_VERSION}")
    if not isinstance(doc.get("workspaces"), Mapping) or not isinstance(
        doc.get("meta", {}), Mapping
    ):
        raise bad_document("'workspaces' and 'meta' must be objects")


def bad_document(reason: str) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"not a kplan state document: {reason}",
            "Push a document written by `kplan state pull` of this kplan version.",
            code="state-document-invalid",
        )
    )


def _fingerprint(value: Any) -> Any:
    if isinstance(value, Secret):
        canon = json.dumps(reveal(value), sort_keys=True, separators=(",", ":"))
        return {"__kplan_secret_sha256__": hashlib.sha256(canon.encode()).hexdigest()}
    if isinstance(value, Mapping):
        return {str(k): _fingerprint(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fingerprint(v) for v in value]
    return value


def checksum(doc: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a document's canonical JSON; secrets enter as their SHA-256."""
    canon = json.dumps(
        _fingerprint({k: v for k, v in doc.items() if k != "format_version"}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()
