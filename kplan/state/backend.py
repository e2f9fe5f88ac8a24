"""Backends: what differs between databases — the engine URL and the lock.

Everything else (schema, queries, encryption, history) is shared and lives in
store.py. :class:`SqliteBackend` keeps the state in one file with WAL
journalling and foreign keys on, and locks with ``flock`` on a file beside
it. A PostgreSQL backend will build its engine from the URL and lock with an
advisory lock; nothing else should need to change.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, create_engine, event

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.lock import LockInfo, file_lock

__all__ = ["WRITE", "Backend", "SqliteBackend", "check_workspace_name", "make_backend"]

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

    def lock_path(self, workspace: str) -> str: ...

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


def make_backend(url_or_path: str) -> SqliteBackend:
    """A backend for a path or URL (``sqlite:///path``; PostgreSQL comes later)."""
    text = url_or_path.strip()
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise KplanError(
            Diagnostic.error(
                f"unsupported state backend {scheme!r}",
                "This kplan keeps state in a SQLite file: give a path or sqlite:///PATH.",
                code="state-backend-unsupported",
            )
        )
    if not text or text == ":memory:":
        raise KplanError("the state needs a file path")
    return SqliteBackend(Path(text).expanduser())


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
