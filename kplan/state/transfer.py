"""Moving state between stores: export, import and a content checksum.

An exported document holds every workspace's resources, resource versions,
outputs and history plus the plain meta values, *decoded*: sensitive values
are :class:`~kplan.values.Secret` objects in memory, never plaintext on disk
and never the source's tokens. Importing seals them again under the
destination's key and its (workspace, address) associated data. Lineage,
serial, versions and history are carried over as they are.

    {"format_version": 2,
     "meta": {KEY: VALUE},                      # kplan.state.* keys excluded
     "workspaces": {NAME: {"lineage", "serial", "created_at", "versions_from",
                           "resources": {ADDRESS: {module, type, name, index_key,
                                                   provider, host, attributes,
                                                   dependencies, updated_serial}},
                           "versions": {ADDRESS: [{serial, module, type, name,
                                                   index_key, provider, host,
                                                   attributes, dependencies}
                                                  | {serial, "deleted": true}]},
                           "outputs": {NAME: VALUE},
                           "history": [{serial, operation, user, machine, pid,
                                        started_at, finished_at, summary, outcome,
                                        state_serial}]}}}

Format 1 (before versions were kept) is still read: its resources become the
versions of its serial. An import keeps the versions consistent with the
resources: where the newest version at the document's serial differs from the
resource (a hand-edited document), a version at that serial is written.

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
from kplan.state.queries import resource_columns, version_columns
from kplan.state.records import ResourceRecord, as_utc
from kplan.state.rows import from_rows, records_of, to_row
from kplan.state.schema import history as H
from kplan.state.schema import meta as M
from kplan.state.schema import outputs as O
from kplan.state.schema import resource_versions as V
from kplan.state.schema import resources as R
from kplan.state.schema import workspaces as W
from kplan.values import Secret, reveal

__all__ = [
    "FORMAT_VERSION",
    "checksum",
    "consistent_versions",
    "decode_workspace",
    "encode_workspace",
    "read_raw",
    "write_workspace",
]

FORMAT_VERSION: Final = 2
READABLE_VERSIONS: Final = (1, 2)
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
    "state_serial",
)
_RECORD_FIELDS: Final = (
    "module",
    "type",
    "name",
    "index_key",
    "provider",
    "host",
    "attributes",
    "dependencies",
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
    for ws_id, name, lineage, serial, created, versions_from in conn.execute(
        select(
            W.c.id, W.c.name, W.c.lineage, W.c.serial, W.c.created_at, W.c.versions_from
        ).order_by(W.c.name)
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
        versions = conn.execute(
            select(*version_columns(), V.c.serial)
            .where(V.c.workspace_id == ws_id)
            .order_by(V.c.address, V.c.serial)
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
            "versions_from": int(versions_from),
            "resources": res,
            "versions": versions,
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
        "versions_from": raw["versions_from"],
        "versions": _decode_versions(raw["versions"], box, resource_aad(name)),
        "outputs": {n: decode_value(v, box, output_aad(name, n)) for n, v in raw["outputs"]},
        "history": list(raw["history"]),
    }


def _record_fields(rec: ResourceRecord) -> dict[str, Any]:
    return {
        "module": rec.module,
        "type": rec.type,
        "name": rec.name,
        "index_key": rec.index_key,
        "provider": rec.provider,
        "host": rec.host,
        "attributes": rec.attributes,
        "dependencies": list(rec.dependencies),
    }


def _decode_versions(
    raw: list[Any], box: SecretBox, aad: Callable[[str], bytes]
) -> dict[str, list[dict[str, Any]]]:
    live = [r for r in raw if r[7] is not None]
    decoded = iter(records_of([r[:10] for r in live], box, aad))
    out: dict[str, list[dict[str, Any]]] = {}
    for r in raw:
        entry: dict[str, Any] = {"serial": int(r[10])}
        if r[7] is None:
            entry["deleted"] = True
        else:
            entry.update(_record_fields(next(decoded)))
        out.setdefault(r[0], []).append(entry)
    return out


def _record(addr: str, r: Mapping[str, Any]) -> ResourceRecord:
    return ResourceRecord(
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


def consistent_versions(ws: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The document's versions, completed so that they rebuild its resources at its serial.

    A format-1 document has none: each resource becomes a version of the serial. Where
    the newest version differs from the resource (the document was edited), or a deleted
    resource is still live, a version (or tombstone) at the serial replaces the one there.
    """
    serial = int(ws["serial"])
    versions = {a: list(vs) for a, vs in (ws.get("versions") or {}).items()}
    resources = ws["resources"]
    for addr, vs in versions.items():
        vs.sort(key=lambda v: int(v["serial"]))
        if vs and int(vs[-1]["serial"]) > serial:
            raise bad_document(
                f"{addr} has a version at serial {vs[-1]['serial']}, after the serial {serial}"
            )
    for addr in sorted(set(versions) | set(resources)):
        vs = versions.get(addr, [])
        newest = vs[-1] if vs else None
        if addr in resources:
            want = {"serial": serial, **{f: resources[addr][f] for f in _RECORD_FIELDS}}
            want["dependencies"] = list(want["dependencies"])
            if newest is not None and not newest.get("deleted"):
                have = {f: newest[f] for f in _RECORD_FIELDS}
                if have == {f: want[f] for f in _RECORD_FIELDS}:
                    continue
        elif newest is None or newest.get("deleted"):
            continue
        else:
            want = {"serial": serial, "deleted": True}
        if newest is not None and int(newest["serial"]) == serial:
            vs.pop()
        versions[addr] = [*vs, want]
    return versions


def encode_workspace(name: str, ws: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    """Seal one document workspace for the destination (before its write transaction)."""
    aad = resource_aad(name)
    try:
        serial = int(ws["serial"])
        resources = []
        for addr, r in ws["resources"].items():
            row = to_row(_record(addr, r), 0, box, aad)
            row["updated_serial"] = int(r.get("updated_serial", serial))
            resources.append(row)
        versions = []
        for addr, vs in consistent_versions(ws).items():
            for v in vs:
                if v.get("deleted"):
                    versions.append({"address": addr, "serial": int(v["serial"])})
                else:
                    row = to_row(_record(addr, v), 0, box, aad)
                    row["serial"] = int(v["serial"])
                    versions.append(row)
        versions_from = int(ws.get("versions_from", serial))
        if not 0 <= versions_from <= serial:
            raise ValueError(f"versions_from {versions_from} is not within 0..{serial}")
        outputs = {
            n: encode_value(v, box, output_aad(name, n))[0] for n, v in ws["outputs"].items()
        }
        history = [
            {
                **{c: h.get(c) for c in _HISTORY_COLS},
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
            "serial": serial,
            "created_at": created,
            "versions_from": versions_from,
            "resources": resources,
            "versions": versions,
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
        "versions_from": sealed["versions_from"],
    }
    if found is None:
        ws_id = int(
            conn.execute(insert(W).values(name=name, **values).returning(W.c.id)).scalar_one()
        )
    else:
        ws_id = int(found[0])
        for table in (O, H, R, V):
            conn.execute(delete(table).where(table.c.workspace_id == ws_id))
        conn.execute(update(W).where(W.c.id == ws_id).values(**values))
    if sealed["resources"]:
        conn.execute(insert(R), [{**r, "workspace_id": ws_id} for r in sealed["resources"]])
    live = [{**v, "workspace_id": ws_id} for v in sealed["versions"] if "attributes" in v]
    dead = [{**v, "workspace_id": ws_id} for v in sealed["versions"] if "attributes" not in v]
    for batch in (live, dead):
        if batch:
            conn.execute(insert(V), batch)
    if sealed["outputs"]:
        conn.execute(
            insert(O),
            [{"workspace_id": ws_id, "name": n, "value": v} for n, v in sealed["outputs"].items()],
        )
    if sealed["history"]:
        conn.execute(insert(H), [{**h, "workspace_id": ws_id} for h in sealed["history"]])
    return ws_id


def check_document(doc: Mapping[str, Any]) -> None:
    version = doc.get("format_version") if isinstance(doc, Mapping) else None
    if version not in READABLE_VERSIONS:
        expected = " or ".join(str(v) for v in READABLE_VERSIONS)
        raise bad_document(f"format_version {version!r}, expected {expected}")
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


# -- the pulled file ------------------------------------------------------------------

_DOCUMENT_AAD: Final = b"kplan-state-document"


def seal_document(doc: Mapping[str, Any], box: SecretBox) -> str:
    """A document as indented JSON text, each secret sealed with the state key.

    Sealed values are ``{"__kplan_secret__": "v1:..."}`` as in the state itself;
    everything else is plain, so the file can be read and edited.
    """
    text, _ = encode_value(dict(doc), box, _DOCUMENT_AAD)
    return json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def open_document(text: str, box: SecretBox, source: str) -> dict[str, Any]:
    """Read a document written by :func:`seal_document`; its secrets unsealed with ``box``.

    Raises KplanError naming ``source`` when the text is not such a document, or when
    its secrets were sealed with another key (code ``state-wrong-key``).
    """
    try:
        doc = decode_value(text, box, _DOCUMENT_AAD)
    except ValueError as exc:  # json.JSONDecodeError too
        raise bad_document(f"{source} is not JSON ({exc})") from None
    except KplanError as exc:
        if any(d.summary.startswith("cannot decrypt") for d in exc.diagnostics):
            raise KplanError(
                Diagnostic.error(
                    f"cannot unseal the secrets in {source}: they were sealed with another "
                    "state key",
                    "Push it with the key of the state it was pulled from (KPLAN_STATE_KEY, "
                    "KPLAN_STATE_KEY_FILE or KPLAN_STATE_PASSPHRASE). Nothing was written.",
                    code="state-wrong-key",
                )
            ) from None
        raise
    if not isinstance(doc, dict):
        raise bad_document(f"{source} holds a JSON {type(doc).__name__}, not an object")
    check_document(doc)
    return doc
