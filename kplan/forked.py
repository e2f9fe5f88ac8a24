"""Text made on another core: a forked child computes a string while this process goes on.

A large plan's text (950,000 lines at 100,000 resources) takes one core
seconds to write, and Python's threads cannot share that work. A fork
can: the child sees the plan as it is, computes its part and hands the text
back through a spooled file; the parent makes the rest meanwhile.

It forks only where that is safe and worth it: on POSIX, with a second CPU
to run on, and in a process with no other thread (a lock another thread
holds at the fork would stay held in the child for good; a kplan server
has threads, and so renders on one core). Whatever goes wrong in the child,
the parent computes the part itself: the text is the same either way.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO

__all__ = ["FORK_ABOVE", "Part", "forked"]

#: Work (lines, resources: the caller's measure) below which no child is forked:
#: a fork and its copied pages cost a few milliseconds.
FORK_ABOVE = 20_000


class Part:
    """A string being computed, in a child process or (when none runs) on demand."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._pid: int | None = None
        self._spool: IO[bytes] | None = None

    @property
    def forked(self) -> bool:
        """Whether a child process is making the string."""
        return self._pid is not None

    def result(self) -> str:
        """The string: the child's, or made here when the child failed or never ran."""
        pid, spool = self._pid, self._spool
        if pid is None or spool is None:
            return self._make()
        code = _reap(pid)  # interrupted here, _stop still kills and reaps the child
        self._pid = None
        if code != 0:
            return self._make()  # the child said nothing useful: do it here
        spool.seek(0)
        return spool.read().decode("utf-8", "surrogatepass")

    def _start(self) -> None:
        try:
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stop
        except OSError:
            return  # no room for the child's text (a full /tmp): made here instead
        try:
            pid = os.fork()
        except OSError:
            spool.close()
            return
        if pid == 0:  # the child: never returns
            _child(self._make, spool.fileno())
        self._pid, self._spool = pid, spool

    def _stop(self) -> None:
        """Kill and reap a child whose result is no longer wanted."""
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
            _reap(self._pid)
            self._pid = None
        if self._spool is not None:
            self._spool.close()
            self._spool = None


@contextlib.contextmanager
def forked(make: Callable[[], str], size: int) -> Iterator[Part]:
    """``make()`` started in a forked child when ``size`` is above :data:`FORK_ABOVE`
    and forking is safe; :meth:`Part.result` gives its string.

    ``make`` must only read what exists at the fork and return a string: it
    runs in a copy of this process, and anything else it does is lost.
    """
    part = Part(make)
    if size > FORK_ABOVE and _can_fork():
        part._start()
    try:
        yield part
    finally:
        part._stop()


def _can_fork() -> bool:
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:
        return len(os.sched_getaffinity(0)) > 1
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) > 1


def _child(make: Callable[[], str], fd: int) -> None:
    code = 1
    try:
        # The child is short-lived: a collection would only copy pages it never writes.
        gc.disable()
        data = memoryview(make().encode("utf-8", "surrogatepass"))
        while data:
            data = data[os.write(fd, data) :]
        code = 0
    except BaseException:
        pass  # the parent makes the part itself, and reports what fails
    finally:
        os._exit(code)  # no atexit handlers, no buffers flushed: they are the parent's


def _reap(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return -1
    return os.waitstatus_to_exitcode(status)
