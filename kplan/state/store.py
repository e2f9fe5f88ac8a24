"""The state store: resources, outputs, history and meta of one workspace.

Every write is its own committed transaction, so a crash or a ``kill -9``
loses at most the change in flight. Writes that change resources or outputs
bump the workspace serial. Secrets are encrypted before they reach the
database (see codec.py and crypto.py). SQLAlchemy errors are translated into
:class:`~kplan.diagnostics.KplanError` at this boundary. The database-specific
parts (engine, lock) come from backend.py.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Row, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state import migrate, queries, rows
from kplan.state.backend import WRITE, Backend, check_workspace_name, make_backend
from kplan.state.codec import decode_value, encode_value
from kplan.state.crypto import SecretBox
from kplan.state.keys import LazyCipher
from kplan.state.lock import LockInfo, new_lock_info
from kplan.state.records import (
    HistoryEntry,
    ResourceRecord,
    current_user,
    machine_name,
)
from kplan.state.schema import resources as R
from kplan.state.schema import workspaces as W

__all__ = ["HistoryEntry", "LockInfo", "ResourceRecord", "StateStore"]

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
            raise queries.translate_error(exc, self.description) from None

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
        )

    @classmethod
    def open(
        cls,
        url_or_path: str,
        *,
        workspace: str = "default",
        environ: Mapping[str, str] = os.environ,
        create: bool = True,
    ) -> StateStore:
        """Open (and with ``create``, make) a state; upgrade its schema when needed.

        A missing workspace is created when ``create`` is true, else refused.
        """
        check_workspace_name(workspace)
        backend = make_backend(url_or_path)
        if not backend.exists():
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
            path = self._backend.lock_path("default")
            info = new_lock_info("schema upgrade", _who(), "default", path)
            with self._backend.lock("default", info, _MIGRATION_LOCK_TIMEOUT):
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
    def _write(self) -> Iterator[Connection]:
        with self._backend.engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    # -- identity -------------------------------------------------------------

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
        if name in ("default", self.workspace):
            which = "the default" if name == "default" else "the current"
            raise KplanError(
                Diagnostic.error(f"cannot delete {which} workspace {name!r}", code="workspace-busy")
            )
        with self._write() as conn:
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
    def resources(self) -> dict[str, ResourceRecord]:
        """Every resource of the workspace, decoded, ordered by address."""
        with rows.gc_paused():
            with self._read() as conn:
                found = conn.execute(queries.select_resources(self._ws_id)).all()
            return self._decode(found)

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

    def put(self, record: ResourceRecord) -> None:
        """Insert or replace one resource and commit (bumps the serial)."""
        self.put_many([record])

    @_translated
    def put_many(self, records: Iterable[ResourceRecord]) -> None:
        """Insert or replace resources in one committed transaction (one serial bump)."""
        new = [rows.to_row(r, self._ws_id, self._box, self._aad) for r in records]
        if not new:
            return
        with self._write() as conn:
            serial = queries.bump_serial(conn, self._ws_id)
            for row in new:
                row["updated_serial"] = serial
            queries.upsert(conn, R, new, ("workspace_id", "address"))

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

    @_translated
    def delete(self, address: str) -> None:
        """Forget one resource and commit; bumps the serial when it was there."""
        with self._write() as conn:
            gone = conn.execute(
                delete(R).where(R.c.workspace_id == self._ws_id, R.c.address == address)
            ).rowcount
            if gone:
                queries.bump_serial(conn, self._ws_id)

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
        """Lock this workspace; a second holder gets StateLockedError naming the first."""
        path = self._backend.lock_path(self.workspace)
        info = new_lock_info(operation, who or _who(), self.workspace, path)
        return self._backend.lock(self.workspace, info, timeout)


def _who() -> str:
    return f"{current_user()}@{machine_name()}"


def _no_workspace(name: str) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"workspace {name!r} does not exist",
            "Create it first (kplan workspace new NAME).",
            code="workspace-missing",
        )
    )
