"""The state lock for file-backed (SQLite) state: ``flock`` on a lock file.

(PostgreSQL locks with an advisory lock and a lock row instead: see
postgres.py. :class:`LockInfo` and :func:`locked_error` serve both.)

One lock file per workspace beside the database (``state.db.lock`` for the
default workspace, ``state.db.<workspace>.lock`` for the others). The holder
writes who it is (lock id, user@machine, pid, operation, since when) into the
file, so a second kplan can say who holds it. The kernel releases a ``flock``
when its holder exits, however it exits: a ``kill -9`` leaves no stale lock.
The file itself is never removed (removing it would let two processes lock
two different files of the same name); releasing empties it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from kplan.diagnostics import Diagnostic, KplanError, StateLockedError
from kplan.state.records import machine_name

__all__ = [
    "ForceUnlockResult",
    "LockInfo",
    "file_force_unlock",
    "file_lock",
    "file_lock_holder",
    "locked_error",
    "new_lock_info",
    "no_such_lock",
]

_POLL_FIRST = 0.05
_POLL_MAX = 0.5


@dataclass(frozen=True)
class LockInfo:
    """Who holds a state lock, as written into the lock file."""

    id: str
    who: str
    pid: int
    operation: str
    created: datetime
    workspace: str = "default"
    path: str = ""
    machine: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["created"] = self.created.isoformat()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LockInfo | None:
        try:
            data = json.loads(text)
            return cls(
                id=str(data["id"]),
                who=str(data["who"]),
                pid=int(data["pid"]),
                operation=str(data["operation"]),
                created=datetime.fromisoformat(data["created"]),
                workspace=str(data.get("workspace", "default")),
                path=str(data.get("path", "")),
                machine=str(data.get("machine", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class ForceUnlockResult:
    """What ``force-unlock`` did: the record removed, and whether a live holder remains."""

    lock_id: str
    holder: LockInfo
    # A live process (or database session) still holds the lock: stop it to free the lock.
    holder_active: bool
    message: str


def locked_error(holder: LockInfo | None, where: str, waited: float) -> StateLockedError:
    """The error a second kplan gets: who holds the lock, since when, and what to do.

    ``where`` is a line naming the lock, e.g. ``Lock file: .kplan/state.db.lock``.
    """
    waited_text = f" (waited {waited:.0f}s)" if waited >= 1 else ""
    if holder is None:
        summary = f"the state is locked by another kplan{waited_text}"
        ident = where
    else:
        since = holder.created.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        summary = (
            f"the state is locked by {holder.who} (pid {holder.pid}) "
            f"for {holder.operation!r} since {since}{waited_text}"
        )
        ident = f"Lock ID: {holder.id}\n{where}"
    detail = (
        f"{ident}\n"
        "Another kplan is working on this state. Wait for it to finish, or pass\n"
        "-lock-timeout=DURATION (e.g. -lock-timeout=5m) to wait for the lock."
    )
    return StateLockedError(Diagnostic.error(summary, detail, code="state-locked"))


def _read_holder(path: Path) -> LockInfo | None:
    # The holder writes its info right after taking the lock; retry briefly if empty.
    for _ in range(5):
        try:
            info = LockInfo.from_json(path.read_text(encoding="utf-8"))
        except OSError:
            info = None
        if info is not None:
            return info
        time.sleep(0.01)
    return None


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _acquire(fd: int, path: Path, timeout: float) -> None:
    start = time.monotonic()
    delay = _POLL_FIRST
    while not _try_flock(fd):
        waited = time.monotonic() - start
        if waited >= timeout:
            raise locked_error(_read_holder(path), f"Lock file: {path}", waited)
        time.sleep(min(delay, timeout - waited))
        delay = min(delay * 2, _POLL_MAX)


@contextmanager
def file_lock(path: Path, info: LockInfo, *, timeout: float = 0.0) -> Iterator[LockInfo]:
    """Hold an exclusive ``flock`` on ``path`` and record ``info`` in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(fd, path, max(timeout, 0.0))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (info.to_json() + "\n").encode("utf-8"), 0)
            yield info
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def new_lock_info(operation: str, who: str, workspace: str, path: str) -> LockInfo:
    return LockInfo(
        id=str(uuid.uuid4()),
        who=who,
        pid=os.getpid(),
        operation=operation,
        created=datetime.now(UTC),
        workspace=workspace,
        path=path,
        machine=machine_name(),
    )


def file_lock_holder(path: Path) -> LockInfo | None:
    """The holder recorded in a lock file while its ``flock`` is held; None when free."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read_holder(path)
    finally:
        os.close(fd)


def file_force_unlock(path: Path, lock_id: str) -> ForceUnlockResult:
    """Clear the lock file's record when its id is ``lock_id``; never kills the holder.

    An ``flock`` belongs to its process: when that process still lives, the record is
    cleared but the lock stays until the process exits, and the message says so.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise no_such_lock(lock_id, None) from None
    try:
        holder = LockInfo.from_json(path.read_text(encoding="utf-8"))
        if holder is None or holder.id != lock_id:
            raise no_such_lock(lock_id, holder)
        free = _try_flock(fd)
        os.ftruncate(fd, 0)
        if free:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return ForceUnlockResult(
                lock_id, holder, False, f"Removed the stale lock {lock_id}: no process held it."
            )
    finally:
        os.close(fd)
    return ForceUnlockResult(
        lock_id,
        holder,
        True,
        f"Removed the record of lock {lock_id}, but process {holder.pid} on "
        f"{holder.machine or holder.who} still holds the lock ({holder.operation!r}).\n"
        "A lock file lock belongs to its process: stop that process to release it.",
    )


def no_such_lock(lock_id: str, holder: LockInfo | None) -> KplanError:
    current = f"The current lock ID is {holder.id}." if holder else "The state is not locked."
    return KplanError(
        Diagnostic.error(
            f"no lock with ID {lock_id!r} on this workspace", current, code="lock-id-mismatch"
        )
    )
