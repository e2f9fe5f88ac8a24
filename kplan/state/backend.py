"""Backends: what differs between databases — the engine URL and the lock.

Everything else (schema, queries, encryption, history) is shared and lives in
store.py. :class:`SqliteBackend` keeps the state in one file with WAL
journalling and foreign keys on, and locks with ``flock`` on a file beside
it; its default key file is ``state.key`` beside the database.
:class:`~kplan.state.postgres.PostgresBackend` builds its engine from a
``postgresql://`` URL and locks with an advisory lock plus a lock row; its
default key file is ``.kplan/state.key`` in the working folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, event

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.lock import (
    ForceUnlockResult,
    LockInfo,
    file_force_unlock,
    file_lock,
    file_lock_holder,
    new_lock_info,
)
from kplan.state.postgres import PostgresBackend, is_postgres_url
from kplan.state.records import current_user, machine_name

__all__ = [
    "WRITE",
    "Backend",
    "PostgresBackend",
    "SqliteBackend",
    "check_workspace_name",
    "make_backend",
]

# Execution option asking for a write transaction (SQLite: BEGIN IMMEDIATE).
WRITE = "kplan_write"
_BUSY_TIMEOUT_MS = 10_000
_WORKSPACE_FILE_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Backend(Protocol):
    """The database-specific half of a state store."""

    engine: Engine
    # Where the state is, for messages ("state file .kplan/state.db").
    description: str
    # The directory of the default key file.
    key_dir: str

    def exists(self) -> bool: ...

    def ensure_location(self) -> None: ...

    def lock(
        self, workspace: str, info: LockInfo, timeout: float
    ) -> AbstractContextManager[LockInfo]: ...

    # Where the lock of a workspace is, for messages and LockInfo.path.
    def lock_path(self, workspace: str) -> str: ...

    # Held while a schema upgrade runs (PostgreSQL locks inside the upgrade instead).
    def migration_lock(self, timeout: float) -> AbstractContextManager[None]: ...

    # The holder of a workspace's lock while it is held; None when it is free.
    def lock_holder(self, workspace: str) -> LockInfo | None: ...

    def force_unlock(self, workspace: str, lock_id: str) -> ForceUnlockResult: ...

    # A database message with any password masked.
    def redact(self, message: str) -> str: ...

    def files(self) -> list[Path]: ...


class SqliteBackend:
    """State in a SQLite file; the lock is an ``flock`` on ``<file>.lock``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"state file {path}"
        self.key_dir = str(path.parent)
        self.engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def ensure_location(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def lock_path(self, workspace: str) -> str:
        if workspace == "default":
            return f"{self.path}.lock"
        return f"{self.path}.{workspace}.lock"

    def lock(
        self, workspace: str, info: LockInfo, timeout: float
    ) -> AbstractContextManager[LockInfo]:
        return file_lock(Path(self.lock_path(workspace)), info, timeout=timeout)

    @contextmanager
    def migration_lock(self, timeout: float) -> Iterator[None]:
        path = self.lock_path("default")
        who = f"{current_user()}@{machine_name()}"
        with self.lock("default", new_lock_info("schema upgrade", who, "default", path), timeout):
            yield

    def lock_holder(self, workspace: str) -> LockInfo | None:
        return file_lock_holder(Path(self.lock_path(workspace)))

    def force_unlock(self, workspace: str, lock_id: str) -> ForceUnlockResult:
        return file_force_unlock(Path(self.lock_path(workspace)), lock_id)

    def redact(self, message: str) -> str:
        return message

    def files(self) -> list[Path]:
        """The database and its WAL companions (for tests and `kplan state` tools)."""
        return [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own handling skips
    # DDL and cannot BEGIN IMMEDIATE); see SQLAlchemy's "Serializable isolation" recipe.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_begin(conn: Any) -> None:
    write = conn.get_execution_options().get(WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_backend(
    url_or_path: str,
    *,
    environ: Mapping[str, str] = os.environ,
    key_dir: str | None = None,
) -> SqliteBackend | PostgresBackend:
    """A backend for a path, ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB``.

    ``environ`` supplies a PostgreSQL password (KPLAN_PG_PASSWORD, PGPASSWORD) when
    the URL has none. ``key_dir`` overrides the default key file's folder.
    """
    text = url_or_path.strip()
    if is_postgres_url(text):
        return PostgresBackend(text, environ, key_dir)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise KplanError(
            Diagnostic.error(
                f"unsupported state backend {scheme!r}",
                "Give a path, sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE.",
                code="state-backend-unsupported",
            )
        )
    if not text or text == ":memory:":
        raise KplanError("the state needs a file path")
    backend = SqliteBackend(Path(text).expanduser())
    if key_dir:
        backend.key_dir = key_dir
    return backend


def check_workspace_name(name: str) -> None:
    if not _WORKSPACE_FILE_SAFE.match(name) or len(name) > 100:
        raise KplanError(
            Diagnostic.error(
                f"invalid workspace name {name!r}",
                "A workspace name starts with a letter or digit and holds only letters,\n"
                "digits, '_', '-' and '.' (at most 100 characters).",
                code="workspace-invalid",
            )
        )
