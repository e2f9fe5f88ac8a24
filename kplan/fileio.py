"""Writing a file on this machine so that a reader sees the old or the new content."""

from __future__ import annotations

import os
import tempfile

__all__ = ["sync_dir", "write_atomic"]


def write_atomic(
    path: str,
    data: bytes,
    *,
    mode: int = 0o600,
    uid: int = -1,
    gid: int = -1,
    prefix: str = ".kplan-",
) -> None:
    """A temporary file beside ``path`` (created 0600), written, synced, given its owner
    and then its mode (chown clears setuid/setgid), renamed over ``path``; removed on
    any failure. Raises OSError."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if uid != -1 or gid != -1:
            os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or link in ``path`` durable; some file systems refuse to open a
    directory, and some to sync one: then there is nothing more to do."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
