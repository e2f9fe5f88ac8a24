"""The PostgreSQL backend: shared team state, locked per workspace.

URL: ``postgresql://USER@HOST:PORT/DB`` (or ``postgresql+psycopg://``; libpq
query options such as ``?sslmode=require`` pass through). The driver is
psycopg 3. The password comes from the URL, else ``KPLAN_PG_PASSWORD``, else
``PGPASSWORD``, else libpq's own sources (``~/.pgpass``); kplan never writes
it anywhere, and every URL in a message has its password masked.

The lock of a workspace is a *session-level* advisory lock
(``pg_try_advisory_lock`` on a stable 64-bit hash of ``kplan:<workspace>``)
held on a dedicated connection for the whole operation, plus a row in the
``locks`` table naming the holder (who, pid, machine, operation, since, id).
When the holder dies, however it dies, its connection closes and PostgreSQL
releases the advisory lock; a lock row whose advisory lock is free is stale
and is overwritten by the next holder. Readers take no lock: MVCC lets them
read while a writer commits. (Session-level advisory locks need a direct
connection or session pooling, not a transaction-pooling pgbouncer.)

There is no state folder: the default key file is ``.kplan/state.key`` in the
working folder (the root module, as the CLI runs there).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, delete, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.lock import ForceUnlockResult, LockInfo, locked_error, no_such_lock
from kplan.state.records import as_utc
from kplan.state.schema import locks as L

__all__ = [
    "ENV_PG_PASSWORD",
    "PostgresBackend",
    "advisory_key",
    "is_postgres_url",
    "mask_url",
]

ENV_PG_PASSWORD: Final = "KPLAN_PG_PASSWORD"
_SCHEMES: Final = ("postgresql", "postgresql+psycopg", "postgres")
_POLL_FIRST: Final = 0.05
_POLL_MAX: Final = 0.5
_CONNECT_ARGS: Final = {
    "application_name": "kplan",
    "connect_timeout": 10,
    # A holder whose machine vanished is noticed by the server within ~1 minute.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def is_postgres_url(text: str) -> bool:
    return text.split("://", 1)[0].lower() in _SCHEMES and "://" in text


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` (first 8 bytes of SHA-256)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def workspace_key(workspace: str) -> int:
    return advisory_key("kplan:" + workspace)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<an unparsable PostgreSQL URL>"


def _parse(url_text: str) -> URL:
    try:
        url = make_url(url_text)
    except (ArgumentError, ValueError):
        raise KplanError(
            Diagnostic.error(
                "the PostgreSQL state URL cannot be parsed",
                "Expected postgresql://USER@HOST:PORT/DATABASE.",
                code="state-backend-url",
            )
        ) from None
    if not url.database:
        raise KplanError(
            Diagnostic.error(
                f"the PostgreSQL state URL {mask_url(url_text)} names no database",
                "Expected postgresql://USER@HOST:PORT/DATABASE.",
                code="state-backend-url",
            )
        )
    return url.set(drivername="postgresql+psycopg")


class PostgresBackend:
    """State in a PostgreSQL database; per-workspace advisory locks and lock rows."""

    def __init__(
        self, url_text: str, environ: Mapping[str, str], key_dir: str | None = None
    ) -> None:
        url = _parse(url_text)
        password = url.password or environ.get(ENV_PG_PASSWORD) or environ.get("PGPASSWORD")
        self._secrets = [str(password)] if password else []
        shown = url.set(drivername="postgresql", password=None)
        self.url = shown.render_as_string(hide_password=True)
        self.description = f"PostgreSQL state {self.url}"
        self.key_dir = key_dir or str(Path.cwd() / ".kplan")
        connect_args: dict[str, Any] = dict(_CONNECT_ARGS)
        if password:
            connect_args["password"] = str(password)
        self.engine: Engine = create_engine(
            url.set(password=None),
            connect_args=connect_args,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=20,
        )

    # -- location -------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the database holds a kplan schema (it is never created by kplan)."""
        with self.engine.connect() as conn:
            found = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
        return found is not None

    def ensure_location(self) -> None:
        """Nothing to make: the database must exist (tables are created by migrations)."""

    def files(self) -> list[Path]:
        return []

    def redact(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    # -- locks ----------------------------------------------------------------

    def lock_path(self, workspace: str) -> str:
        return f"{self.url} (workspace {workspace!r})"

    def migration_lock(self, timeout: float) -> AbstractContextManager[None]:
        # migrate.upgrade takes pg_advisory_xact_lock inside its own transaction.
        return nullcontext()

    def lock(
        self, workspace: str, info: LockInfo, timeout: float
    ) -> AbstractContextManager[LockInfo]:
        return self._lock(workspace, info, max(timeout, 0.0))

    @contextmanager
    def _lock(self, workspace: str, info: LockInfo, timeout: float) -> Iterator[LockInfo]:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            self._acquire(conn, workspace, timeout)
            try:
                _write_record(conn, workspace, info)
                yield info
            finally:
                self._release(conn, workspace, info)
        finally:
            conn.close()

    def _acquire(self, conn: Connection, workspace: str, timeout: float) -> None:
        key = workspace_key(workspace)
        start = time.monotonic()
        delay = _POLL_FIRST
        while not _try_lock(conn, key):
            waited = time.monotonic() - start
            if waited >= timeout:
                holder = _read_record(conn, workspace)
                raise locked_error(holder, self._where(conn, workspace, holder), waited)
            time.sleep(min(delay, timeout - waited))
            delay = min(delay * 2, _POLL_MAX)

    def _release(self, conn: Connection, workspace: str, info: LockInfo) -> None:
        try:
            conn.execute(delete(L).where(L.c.workspace == workspace, L.c.id == info.id))
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": workspace_key(workspace)})
        except SQLAlchemyError:
            # Closing the session releases its advisory locks; the stale row is ignored.
            conn.invalidate()

    def _where(self, conn: Connection, workspace: str, holder: LockInfo | None) -> str:
        line = f"Lock: PostgreSQL advisory lock on {self.lock_path(workspace)}"
        session = _holder_session(conn, workspace_key(workspace))
        if holder is None and session:
            line += f"\nHeld by database session {session}"
        return line

    def lock_holder(self, workspace: str) -> LockInfo | None:
        """The lock row of a workspace whose advisory lock is held; None when free."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            key = workspace_key(workspace)
            if _try_lock(conn, key):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                return None
            return _read_record(conn, workspace)

    def force_unlock(self, workspace: str, lock_id: str) -> ForceUnlockResult:
        """Remove the lock row whose id is ``lock_id``; never ends another session."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            holder = _read_record(conn, workspace)
            if holder is None or holder.id != lock_id:
                raise no_such_lock(lock_id, holder)
            key = workspace_key(workspace)
            free = _try_lock(conn, key)
            conn.execute(delete(L).where(L.c.workspace == workspace, L.c.id == lock_id))
            if free:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                return ForceUnlockResult(
                    lock_id,
                    holder,
                    False,
                    f"Removed the stale lock {lock_id}: its holder's session had already ended.",
                )
            session = _holder_session(conn, key) or "(not visible to this database user)"
        message = (
            f"Removed the record of lock {lock_id}, but the lock itself is still held by a "
            f"live database session: {session}.\n"
            f"It belongs to {holder.who} (pid {holder.pid} on {holder.machine or 'unknown'}), "
            f"running {holder.operation!r}.\n"
            "PostgreSQL cannot release another session's advisory lock: stop that kplan "
            "process\n(or have a database administrator end its session with "
            "pg_terminate_backend) to free the lock."
        )
        return ForceUnlockResult(lock_id, holder, True, message)


def _try_lock(conn: Connection, key: int) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())


def _write_record(conn: Connection, workspace: str, info: LockInfo) -> None:
    values = {
        "workspace": workspace,
        "id": info.id,
        "who": info.who[:255],
        "pid": info.pid,
        "machine": info.machine[:255],
        "operation": info.operation[:255],
        "created": info.created,
    }
    # Imported here: the dialect's package loads every PostgreSQL driver's module,
    # which a run on SQLite state should not pay for.
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    stmt = pg_insert(L).values(**values)
    # We hold the advisory lock: any row still there is a dead holder's, overwrite it.
    stmt = stmt.on_conflict_do_update(
        index_elements=["workspace"], set_={k: stmt.excluded[k] for k in values}
    )
    conn.execute(stmt)


def _read_record(conn: Connection, workspace: str) -> LockInfo | None:
    row = conn.execute(select(L).where(L.c.workspace == workspace)).first()
    if row is None:
        return None
    return LockInfo(
        id=row.id,
        who=row.who,
        pid=row.pid,
        operation=row.operation,
        created=as_utc(row.created),
        workspace=workspace,
        machine=row.machine,
    )


def _holder_session(conn: Connection, key: int) -> str:
    """Who holds an advisory lock, from pg_locks and pg_stat_activity ("" if unseen)."""
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    try:
        row = conn.execute(
            text(
                "SELECT a.pid, a.usename, a.application_name, a.client_addr, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:high AS oid) "
                "AND l.objid = CAST(:low AS oid) AND l.objsubid = 1 AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"high": high, "low": low},
        ).first()
    except SQLAlchemyError:
        return ""
    if row is None:
        return ""
    since = as_utc(row.backend_start).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    client = f" from {row.client_addr}" if row.client_addr else ""
    return (
        f"backend pid {row.pid} (user {row.usename}, application "
        f"{row.application_name or '?'}{client}, connected since {since})"
    )
