"""The state store: resources, outputs, history and meta of one workspace.

Every write is its own committed transaction, so a crash or a ``kill -9``
loses at most the change in flight. Writes that change resources or outputs
bump the workspace serial. Secrets are encrypted before they reach the
database (see codec.py and crypto.py). SQLAlchemy errors are translated into
:class:`~kplan.diagnostics.KplanError` at this boundary. The database-specific
parts (engine, lock) come from backend.py (SQLite) and postgres.py.

Moving state between stores (``state pull/push``, ``init -migrate-state``)
goes through :meth:`StateStore.export_state`, :meth:`StateStore.import_state`,
:meth:`StateStore.pull`, :meth:`StateStore.push` and :meth:`StateStore.copy_to`;
see transfer.py for the document's shape.

Every resource write also appends the row to ``resource_versions`` (a delete, a
tombstone) in the same transaction, so :meth:`StateStore.resources_at` can
rebuild the resources of any serial since the workspace's ``versions_from``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    delete,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import SQLAlchemyError

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state import migrate, queries, rows, transfer
from kplan.state.backend import WRITE, Backend, check_workspace_name, make_backend
from kplan.state.codec import SECRET_MARKER, decode_value, encode_value
from kplan.state.crypto import SecretBox, find_key
from kplan.state.keys import LazyCipher
from kplan.state.lock import ForceUnlockResult, LockInfo, new_lock_info
from kplan.state.records import (
    HistoryEntry,
    ResourceRecord,
    current_user,
    machine_name,
)
from kplan.state.schema import resources as R
from kplan.state.schema import workspaces as W

__all__ = ["ForceUnlockResult", "HistoryEntry", "LockInfo", "ResourceRecord", "StateStore"]

P = ParamSpec("P")
T = TypeVar("T")
_RESERVED_META = "kplan.state."
_MIGRATION_LOCK_TIMEOUT = 60.0


def _translated(
    method: Callable[Concatenate[StateStore, P], T],
) -> Callable[Concatenate[StateStore, P], T]:
    """Turn a SQLAlchemy error inside a store method into a KplanError."""

    @functools.wraps(method)
    def wrapper(self: StateStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise queries.translate_error(exc, self.description, self._backend.redact) from None

    return wrapper


class StateStore:
    """The state of one workspace; open with :meth:`open`, close with :meth:`close`."""

    def __init__(
        self, backend: Backend, workspace: str, environ: Mapping[str, str], create: bool
    ) -> None:
        self._backend = backend
        self.workspace = workspace
        self.description = backend.description
        self._create = create
        self._ws_id = 0
        self._lineage = ""
        self._box = LazyCipher(
            key_dir=backend.key_dir,
            environ=environ,
            create=create,
            get_meta=self.get_meta,
            meta_setdefault=self._meta_setdefault,
            sample=self._sealed_sample,
        )

    @classmethod
    def open(
        cls,
        url_or_path: str,
        *,
        workspace: str = "default",
        environ: Mapping[str, str] = os.environ,
        create: bool = True,
        key_dir: str | None = None,
        check_key: bool = False,
    ) -> StateStore:
        """Open (and with ``create``, make) a state; upgrade its schema when needed.

        ``url_or_path`` is a SQLite path (or ``sqlite:///PATH``) or a
        ``postgresql://USER@HOST:PORT/DB`` URL (password from the URL,
        KPLAN_PG_PASSWORD or PGPASSWORD in ``environ``). A missing workspace is
        created when ``create`` is true, else refused. ``key_dir`` is the folder
        of the default key file ``state.key`` (default: beside a SQLite file;
        ``.kplan`` in the working folder for PostgreSQL). With ``check_key``, the
        form of the state key is checked first (a malformed key is refused before
        the database is touched); :meth:`prepare_key` checks it against the state.
        """
        check_workspace_name(workspace)
        backend = make_backend(url_or_path, environ=environ, key_dir=key_dir)
        try:
            if check_key:
                find_key(environ, backend.key_dir)
            exists = backend.exists()
        except SQLAlchemyError as exc:
            backend.engine.dispose()
            raise queries.translate_error(exc, backend.description, backend.redact) from None
        except KplanError:
            backend.engine.dispose()
            raise
        if not exists:
            if not create:
                raise KplanError(
                    Diagnostic.error(f"no {backend.description}", code="state-missing")
                )
            backend.ensure_location()
        store = cls(backend, workspace, environ, create)
        try:
            store._prepare()
        except BaseException:
            store.close()
            raise
        return store

    @_translated
    def _prepare(self) -> None:
        engine = self._backend.engine
        if not migrate.is_current(engine):
            with self._backend.migration_lock(_MIGRATION_LOCK_TIMEOUT):
                if not migrate.is_current(engine):
                    migrate.upgrade(engine, self.description)
        with self._read() as conn:
            found = queries.find_workspace(conn, self.workspace)
        if found is None:
            if not self._create and self.workspace != "default":
                raise _no_workspace(self.workspace)
            with self._write() as conn:
                found = queries.ensure_workspace(conn, self.workspace)
        self._ws_id, self._lineage = found

    def close(self) -> None:
        self._backend.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._backend.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one snapshot for all its statements."""
        with self._backend.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._backend.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    # -- identity -------------------------------------------------------------

    def prepare_key(self, *, create: bool = False) -> None:
        """Resolve the state key now, before a command changes anything.

        Refuses (KplanError) a malformed key, a missing key the state needs, and a
        key that does not match the state's key check (or, for a state without one,
        one of its sealed values). ``create`` makes a missing default key file, for
        an apply that may seal secrets. See keys.py.
        """
        self._box.prepare(create=create)

    @_translated
    def _sealed_sample(self) -> tuple[str, bytes] | None:
        """One encoded value of this workspace holding a sealed secret, and its AAD."""
        with self._read() as conn:
            row = conn.execute(
                select(R.c.address, R.c.attributes)
                .where(R.c.workspace_id == self._ws_id, R.c.has_secrets.is_(True))
                .limit(1)
            ).first()
            if row is not None:
                return str(row.attributes), self._aad(str(row.address))
            for name, value in conn.execute(queries.select_outputs(self._ws_id)):
                if SECRET_MARKER in value:
                    return str(value), self._output_aad(str(name))
        return None

    @property
    def secret_box(self) -> SecretBox:
        """The state's cipher (key loaded on first use), e.g. to seal a saved plan's secrets."""
        return self._box

    @property
    def lineage(self) -> str:
        return self._lineage

    @property
    @_translated
    def serial(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(W.c.serial).where(W.c.id == self._ws_id)).scalar_one())

    # -- workspaces -----------------------------------------------------------

    @_translated
    def workspaces(self) -> list[str]:
        with self._read() as conn:
            return list(conn.execute(select(W.c.name).order_by(W.c.name)).scalars())

    @_translated
    def create_workspace(self, name: str) -> None:
        check_workspace_name(name)
        with self._write() as conn:
            if queries.find_workspace(conn, name) is not None:
                raise KplanError(
                    Diagnostic.error(f"workspace {name!r} already exists", code="workspace-exists")
                )
            queries.ensure_workspace(conn, name)

    @_translated
    def delete_workspace(self, name: str, *, force: bool = False) -> None:
        """Delete another workspace; refused while someone holds its lock."""
        if name in ("default", self.workspace):
            which = "the default" if name == "default" else "the current"
            raise KplanError(
                Diagnostic.error(f"cannot delete {which} workspace {name!r}", code="workspace-busy")
            )
        with self._lock_workspace(name, "workspace delete", 0.0), self._write() as conn:
            found = queries.find_workspace(conn, name)
            if found is None:
                raise _no_workspace(name)
            count = conn.execute(
                select(func.count()).select_from(R).where(R.c.workspace_id == found[0])
            ).scalar_one()
            if count and not force:
                raise KplanError(
                    Diagnostic.error(
                        f"workspace {name!r} still has {count} resources",
                        "Destroy them first, or delete the workspace with force to forget them.",
                        code="workspace-not-empty",
                    )
                )
            queries.delete_workspace(conn, found[0])

    # -- resources ------------------------------------------------------------

    def _aad(self, address: str) -> bytes:
        return f"{self.workspace}\x00{address}".encode()

    @_translated
    def resources(
        self,
        *,
        blocks: Collection[tuple[str, ...]] | None = None,
        hosts: Collection[str] | None = None,
        modules: Mapping[str, Collection[tuple[str, ...]] | None] | None = None,
    ) -> dict[str, ResourceRecord]:
        """The resources of the workspace, decoded, ordered by address.

        With ``blocks`` ((type, name) pairs), only the instances of those
        resource blocks, in any module, and with ``modules`` (module instance
        addresses, ``module.node["h1"]``, each to the blocks to read inside it,
        or None for all) also those instances inside them;
        with ``hosts``, only the instances on those hosts or on none: what a
        targeted plan needs.
        """
        query = queries.select_resources(self._ws_id)
        if hosts is not None:
            query = query.where(or_(R.c.host.in_(sorted(hosts)), R.c.host.is_(None)))
        if blocks is None:
            with rows.gc_paused():
                with self._read() as conn:
                    every = conn.execute(query).all()
                return self._decode(every)
        terms: list[ColumnElement[bool]] = []
        if blocks:
            terms.append(tuple_(R.c.type, R.c.name).in_(sorted(blocks)))
        for m, in_blocks in sorted((modules or {}).items()):
            inside = self._within(m)
            if in_blocks is not None:
                if not in_blocks:
                    continue
                inside = and_(inside, tuple_(R.c.type, R.c.name).in_(sorted(in_blocks)))
            terms.append(inside)
        if self._backend.engine.dialect.name != "sqlite":
            terms = [or_(*terms)] if terms else []
        # On SQLite one query per term: a module's term is a range of the primary
        # key, and SQLite reads an OR of such terms (or one next to the blocks' IN)
        # by scanning every row of the workspace.
        found: dict[str, Row[Any]] = {}
        with rows.gc_paused():
            with self._snapshot() as conn:
                for term in terms:
                    found.update((row.address, row) for row in conn.execute(query.where(term)))
            return self._decode([found[a] for a in sorted(found)])

    def _within(self, module: str) -> ColumnElement[bool]:
        """The rows of module instance ``module`` and of the modules inside it."""
        if self._backend.engine.dialect.name == "sqlite":
            # All their addresses start with MODULE + "."; SQLite compares text
            # bytewise, so that is a range of the primary key ("/" follows "."), and
            # the read touches only those rows (a LIKE would read every row).
            return and_(R.c.address >= module + ".", R.c.address < module + "/")
        # PostgreSQL compares text by its collation, where a range is no prefix.
        return or_(R.c.module == module, R.c.module.startswith(module + ".", autoescape=True))

    @_translated
    def get(self, address: str) -> ResourceRecord | None:
        with self._read() as conn:
            row = conn.execute(
                queries.select_resources(self._ws_id).where(R.c.address == address)
            ).first()
        return None if row is None else self._decode([row])[address]

    def _decode(self, found: Sequence[Row[Any]]) -> dict[str, ResourceRecord]:
        try:
            return rows.from_rows(found, self._box, self._aad)
        except ValueError as exc:
            raise KplanError(
                Diagnostic.error(f"{self.description} holds a damaged resource row", str(exc))
            ) from None

    # -- earlier serials ------------------------------------------------------

    @_translated
    def resources_at(self, serial: int) -> dict[str, ResourceRecord]:
        """The resources as they were at state serial ``serial``, decoded, by address.

        Rebuilt from the append-only resource versions; KplanError (code
        ``state-serial-unknown``) for a serial this state cannot rebuild.
        """
        with self._snapshot() as conn:
            self._check_serial(conn, serial)
            found = conn.execute(queries.select_versions_at(self._ws_id, serial)).all()
        with rows.gc_paused():
            return self._decode(found)

    @_translated
    def get_at(self, address: str, serial: int) -> ResourceRecord | None:
        """One resource as it was at state serial ``serial``; None when it did not exist."""
        with self._snapshot() as conn:
            self._check_serial(conn, serial)
            found = conn.execute(queries.select_versions_at(self._ws_id, serial, address)).all()
        return self._decode(found).get(address)

    def _check_serial(self, conn: Connection, serial: int) -> None:
        current, oldest = conn.execute(
            select(W.c.serial, W.c.versions_from).where(W.c.id == self._ws_id)
        ).one()
        if oldest <= serial <= current:
            return
        if oldest == 0:
            known = f"serials 0 to {current}"
        elif oldest == current:
            known = f"only its current serial {current}"
        else:
            known = f"serials {oldest} to {current}"
        hint = f"Give a serial from {oldest} to {current}."
        if serial < oldest:
            hint += (
                f" Versions of resources are kept since serial {oldest}: the earlier serials"
                " were written by a kplan that did not keep them."
            )
        raise KplanError(
            Diagnostic.error(
                f"workspace {self.workspace!r} has no serial {serial}: it can show {known}",
                hint,
                code="state-serial-unknown",
            )
        )

    def put(self, record: ResourceRecord) -> None:
        """Insert or replace one resource and commit (bumps the serial)."""
        self.put_many([record])

    @_translated
    def put_many(self, records: Iterable[ResourceRecord]) -> None:
        """Insert or replace resources in one committed transaction (one serial bump)."""
        by_address = {r.address: r for r in records}  # the last of one address wins
        new = [rows.to_row(r, self._ws_id, self._box, self._aad) for r in by_address.values()]
        if not new:
            return
        with self._write() as conn:
            serial = queries.bump_serial(conn, self._ws_id)
            for row in new:
                row["updated_serial"] = serial
            queries.upsert(conn, R, new, ("workspace_id", "address"))
            queries.add_versions(conn, self._ws_id, serial, new)

    @_translated
    def record(self, changes: Sequence[tuple[str, ResourceRecord | None]]) -> None:
        """Puts (a record) and deletes (None), by address, in one committed transaction.

        What an apply's changes finishing together write (kplan.apply.recording):
        one serial bump for all of them, when any changed the state. Of one
        address written twice, the last write counts.
        """
        last = dict(changes)
        new = [
            rows.to_row(r, self._ws_id, self._box, self._aad)
            for r in last.values()
            if r is not None
        ]
        gone = sorted(a for a, r in last.items() if r is None)
        with self._write() as conn:
            removed: list[str] = []
            if gone:
                found = conn.execute(
                    select(R.c.address).where(
                        R.c.workspace_id == self._ws_id, R.c.address.in_(gone)
                    )
                ).scalars()
                removed = sorted(found)
            if not new and not removed:
                return
            serial = queries.bump_serial(conn, self._ws_id)
            if removed:
                conn.execute(
                    delete(R).where(R.c.workspace_id == self._ws_id, R.c.address.in_(removed))
                )
                queries.add_tombstones(conn, self._ws_id, serial, removed)
            if new:
                for row in new:
                    row["updated_serial"] = serial
                queries.upsert(conn, R, new, ("workspace_id", "address"))
                queries.add_versions(conn, self._ws_id, serial, new)

    @_translated
    def move(self, old_address: str, record: ResourceRecord) -> None:
        """Replace ``old_address`` by ``record`` in one committed transaction (state mv)."""
        new = rows.to_row(record, self._ws_id, self._box, self._aad)
        with self._write() as conn:
            serial = queries.bump_serial(conn, self._ws_id)
            conn.execute(
                delete(R).where(R.c.workspace_id == self._ws_id, R.c.address == old_address)
            )
            new["updated_serial"] = serial
            queries.upsert(conn, R, [new], ("workspace_id", "address"))
            if old_address != record.address:
                queries.add_tombstones(conn, self._ws_id, serial, [old_address])
            queries.add_versions(conn, self._ws_id, serial, [new])

    @_translated
    def delete(self, address: str) -> None:
        """Forget one resource and commit; bumps the serial when it was there."""
        with self._write() as conn:
            gone = conn.execute(
                delete(R).where(R.c.workspace_id == self._ws_id, R.c.address == address)
            ).rowcount
            if gone:
                serial = queries.bump_serial(conn, self._ws_id)
                queries.add_tombstones(conn, self._ws_id, serial, [address])

    # -- outputs --------------------------------------------------------------

    def _output_aad(self, name: str) -> bytes:
        return f"{self.workspace}\x00outputs\x00{name}".encode()

    @_translated
    def outputs(self) -> dict[str, Any]:
        with self._read() as conn:
            rows = conn.execute(queries.select_outputs(self._ws_id)).all()
        return {n: decode_value(v, self._box, self._output_aad(n)) for n, v in rows}

    @_translated
    def set_outputs(self, values: Mapping[str, Any]) -> None:
        """Replace all outputs; commits and bumps the serial only when they changed."""
        encoded = {n: encode_value(v, self._box, self._output_aad(n))[0] for n, v in values.items()}
        new = {n: decode_value(t, self._box, self._output_aad(n)) for n, t in encoded.items()}
        if new == self.outputs():
            return
        with self._write() as conn:
            queries.replace_outputs(conn, self._ws_id, encoded)
            queries.bump_serial(conn, self._ws_id)

    # -- history --------------------------------------------------------------

    @_translated
    def history(self) -> list[HistoryEntry]:
        """Every run, oldest first; a run whose process is gone shows as interrupted."""
        with self._read() as conn:
            return queries.history(conn, self._ws_id)

    @_translated
    def begin_run(self, operation: str, summary: str) -> int:
        """Record a run as "running"; returns its serial in the history."""
        with self._write() as conn:
            return queries.begin_run(
                conn, self._ws_id, operation, summary, current_user(), machine_name()
            )

    @_translated
    def finish_run(self, serial: int, outcome: str, summary: str) -> None:
        with self._write() as conn:
            queries.finish_run(conn, self._ws_id, serial, outcome, summary)

    # -- meta -----------------------------------------------------------------

    @_translated
    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            return queries.get_meta(conn, key)

    @_translated
    def set_meta(self, key: str, value: str) -> None:
        """Keep a small plain-text value (never a secret); commits at once."""
        if key.startswith(_RESERVED_META):
            raise ValueError(f"meta keys starting with {_RESERVED_META!r} are kplan's own")
        with self._write() as conn:
            queries.set_meta(conn, key, value)

    @_translated
    def _meta_setdefault(self, key: str, value: str) -> str:
        with self._write() as conn:
            return queries.meta_setdefault(conn, key, value)

    # -- lock -----------------------------------------------------------------

    def lock(
        self, operation: str, *, timeout: float = 0.0, who: str | None = None
    ) -> AbstractContextManager[LockInfo]:
        """Lock this workspace; a second holder gets StateLockedError naming the first.

        A writer holds it for its whole operation; readers never take it.
        """
        return self._lock_workspace(self.workspace, operation, timeout, who)

    def _lock_workspace(
        self, workspace: str, operation: str, timeout: float, who: str | None = None
    ) -> AbstractContextManager[LockInfo]:
        path = self._backend.lock_path(workspace)
        info = new_lock_info(operation, who or _who(), workspace, path)
        return self._backend.lock(workspace, info, timeout)

    @_translated
    def lock_holder(self) -> LockInfo | None:
        """Who holds this workspace's lock now; None when it is free."""
        return self._backend.lock_holder(self.workspace)

    @_translated
    def force_unlock(self, lock_id: str) -> ForceUnlockResult:
        """Remove this workspace's lock record if its ID is ``lock_id`` (kplan force-unlock).

        Never stops a process or ends a database session: when the holder is still
        alive the result says so (``holder_active``) and how to stop it. Raises
        KplanError (code ``lock-id-mismatch``) when no lock has that ID.
        """
        return self._backend.force_unlock(self.workspace, lock_id)

    # -- moving state between stores -------------------------------------------

    @_translated
    def export_state(self, workspaces: Iterable[str] | None = None) -> dict[str, Any]:
        """Every (or the named) workspace's content, decoded (see transfer.py).

        Secrets are :class:`~kplan.values.Secret` objects in memory; nothing is
        written anywhere. One consistent snapshot of the database.
        """
        with self._snapshot() as conn:
            raw = transfer.read_raw(conn, workspaces)
        try:
            decoded = {
                name: transfer.decode_workspace(name, ws, self._box)
                for name, ws in raw["workspaces"].items()
            }
        except ValueError as exc:
            raise KplanError(
                Diagnostic.error(f"{self.description} holds a damaged row", str(exc))
            ) from None
        return {
            "format_version": transfer.FORMAT_VERSION,
            "meta": raw["meta"],
            "workspaces": decoded,
        }

    def content_checksum(self, workspaces: Iterable[str] | None = None) -> str:
        """A checksum of the decoded content (secrets as their SHA-256): equal after a copy."""
        return transfer.checksum(self.export_state(workspaces))

    def import_state(
        self,
        doc: Mapping[str, Any],
        *,
        force: bool = False,
        lock: bool = True,
        lock_timeout: float = 0.0,
    ) -> None:
        """Replace each workspace in ``doc`` (from :meth:`export_state`) with its content.

        Secrets are sealed under this store's key (all of them before anything is
        written). Lineage, serial, versions and history are kept. Without ``force`` a
        workspace is refused when its lineage differs (and it is not empty), when it
        has a newer serial, or the same serial with other resources or outputs. Each
        workspace is written in one transaction (the meta values with the last one),
        under its lock unless ``lock`` is false (pass false when the caller already
        holds it).
        """
        transfer.check_document(doc)
        for name in doc["workspaces"]:
            check_workspace_name(name)
        names = sorted(doc["workspaces"])
        sealed = {n: transfer.encode_workspace(n, doc["workspaces"][n], self._box) for n in names}
        meta = doc.get("meta", {})
        if not names:
            self._write_meta(meta)
        for name in names:
            held = self._lock_workspace(name, "state push", lock_timeout) if lock else nullcontext()
            with held:
                if not force:
                    self._check_push(name, doc["workspaces"][name])
                self._write_workspace(name, sealed[name], meta if name == names[-1] else {})

    @_translated
    def _write_workspace(
        self, name: str, sealed: Mapping[str, Any], meta: Mapping[str, str]
    ) -> None:
        with self._write() as conn:
            ws_id = transfer.write_workspace(conn, name, sealed)
            _set_meta_values(conn, meta)
        if name == self.workspace:
            self._ws_id, self._lineage = ws_id, sealed["lineage"]

    @_translated
    def _write_meta(self, values: Mapping[str, str]) -> None:
        with self._write() as conn:
            _set_meta_values(conn, values)

    def _check_push(self, name: str, ws: Mapping[str, Any]) -> None:
        with self._read() as conn:
            row = conn.execute(select(W.c.lineage, W.c.serial).where(W.c.name == name)).first()
        if row is None:
            return
        lineage, serial = str(row[0]), int(row[1])
        new_serial = int(ws["serial"])
        if lineage != ws["lineage"]:
            current = self.export_state([name])["workspaces"][name]
            if serial == 0 and not current["resources"] and not current["history"]:
                return  # a fresh, empty workspace: nothing to lose
            raise _push_refused(
                name, f"its lineage {lineage} differs from the pushed lineage {ws['lineage']}"
            )
        if serial > new_serial:
            raise _push_refused(name, f"it is at serial {serial}, newer than {new_serial}")
        if serial == new_serial:
            mine = self.export_state([name])["workspaces"][name]
            if _content(mine) != _content(ws):
                raise _push_refused(
                    name,
                    f"it is at the same serial {serial} with other content",
                    f"A file you edited needs a serial above {serial}; or force the push.",
                )

    def pull(self) -> str:
        """This workspace's state as a document (indented JSON), secrets sealed with its key.

        The document of :meth:`export_state` for this workspace alone: resources,
        versions, outputs, history, lineage and serial. A secret appears only as a
        sealed token: the text holds none in plaintext.
        """
        return transfer.seal_document(self.export_state([self.workspace]), self._box)

    def push(
        self,
        text: str,
        *,
        source: str,
        force: bool = False,
        lock: bool = True,
        lock_timeout: float = 0.0,
    ) -> dict[str, Any]:
        """Replace this workspace with a document from :meth:`pull`; returns what was pushed.

        Its secrets are unsealed with this state's key, all before anything is written
        (another key: KplanError, code ``state-wrong-key``, and nothing written). The
        checks and the one write transaction are :meth:`import_state`'s: without
        ``force``, another lineage, an older serial, or the same serial with other
        content is refused. ``source`` names the document in messages.
        """
        doc = transfer.open_document(text, self._box, source)
        if len(doc["workspaces"]) != 1:
            raise transfer.bad_document(
                f"{source} holds {len(doc['workspaces'])} workspaces; a pulled state holds one"
            )
        (ws,) = doc["workspaces"].values()
        one = {"format_version": doc["format_version"], "meta": doc.get("meta", {})}
        self.import_state(
            {**one, "workspaces": {self.workspace: ws}},
            force=force,
            lock=lock,
            lock_timeout=lock_timeout,
        )
        return dict(ws)

    def copy_to(self, other: StateStore, *, force: bool = False, lock_timeout: float = 0.0) -> str:
        """Copy every workspace, secret re-sealed, to ``other``; verify; return the checksum.

        For ``init -migrate-state``: the caller keeps writers away from this store
        (holds its lock). Raises KplanError when the copy's checksum differs.
        """
        doc = self.export_state()
        other.import_state(doc, force=force, lock_timeout=lock_timeout)
        want = transfer.checksum(doc)
        copied = other.export_state(list(doc["workspaces"]))
        copied["meta"] = {k: v for k, v in copied["meta"].items() if k in doc["meta"]}
        got = transfer.checksum(copied)
        if got != want:
            raise KplanError(
                Diagnostic.error(
                    f"the copy in {other.description} differs from {self.description}",
                    f"Checksum of the source {want}, of the copy {got}.",
                    code="state-copy-mismatch",
                )
            )
        return want


def _who() -> str:
    return f"{current_user()}@{machine_name()}"


def _push_refused(
    name: str,
    reason: str,
    hint: str = "Pull the state and reconcile first, or force the push to overwrite it.",
) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"refusing to overwrite workspace {name!r}: {reason}", hint, code="state-push-refused"
        )
    )


def _content(ws: Mapping[str, Any]) -> str:
    """The checksum of what a workspace holds now (resources, outputs), not how it got there."""
    return transfer.checksum({"resources": ws["resources"], "outputs": ws["outputs"]})


def _set_meta_values(conn: Connection, values: Mapping[str, str]) -> None:
    for key, value in sorted(values.items()):
        if not key.startswith(_RESERVED_META):
            queries.set_meta(conn, key, str(value))


def _no_workspace(name: str) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"workspace {name!r} does not exist",
            "Create it first (kplan workspace new NAME).",
            code="workspace-missing",
        )
    )
