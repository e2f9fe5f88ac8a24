"""One instance graph for the whole apply, at most N changes in flight.

The executor hands each instance's change to the :class:`Scheduler` as the
configuration walk reaches it, with the instances it waits for (its exact
dependencies, and the previous batch of a rolling block). A change starts
once everything it waits for has finished — not when the whole resource
block before it has — and never more than ``limit`` run at once, whatever
their blocks. Among changes ready together, the one with the longest chain
of changes waiting on it goes first (``priority``: an image pull that a
migration, a container and API calls wait for, before a directory nothing
waits for), then the smallest address.

Each change's value is an :class:`Outcome` (a :class:`~kplan.graph.access.Later`):
the walk hands it on, and whoever looks it up waits for it. A change that
waits while running — for a value its plan did not list as a dependency, or
in its provider (a container's health gate) — gives its place up meanwhile
(:mod:`kplan.waiting`), so waiting never uses up the places, and takes it
back ahead of the changes not yet started.
Nothing here knows about providers, plans or state.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kplan.addrs import ResourceAddr
from kplan.diagnostics import Diagnostic, KplanError
from kplan.graph.access import Later
from kplan.waiting import hold, waiting

__all__ = ["Outcome", "Scheduler"]


class Outcome(Later):
    """The value of one scheduled change: its new attributes, UNKNOWN, or its failure."""

    __slots__ = ("_done", "_error", "_value", "addr")

    def __init__(self, addr: ResourceAddr) -> None:
        self.addr = addr
        self._done = threading.Event()
        self._value: Any = None
        self._error: list[Diagnostic] | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def set(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def fail(self, diags: list[Diagnostic]) -> None:
        self._error = list(diags)
        self._done.set()

    def get(self) -> Any:
        if not self._done.is_set():
            with waiting():
                self._done.wait()
        if self._error is not None:
            raise KplanError(self._error)
        return self._value


class _Task:
    __slots__ = ("addr", "missing", "outcome", "run")

    def __init__(self, addr: ResourceAddr, run: Callable[[], Any], missing: set[ResourceAddr]):
        self.addr = addr
        self.run = run
        self.missing = missing
        self.outcome = Outcome(addr)


class Scheduler:
    """Run tasks after the tasks they wait for, at most ``limit`` at a time."""

    def __init__(
        self,
        limit: int,
        expected: Iterable[ResourceAddr],
        priority: Mapping[ResourceAddr, int] | None = None,
    ) -> None:
        self.limit = max(1, limit)
        self._priority = dict(priority or {})
        # Every address that will be (or was) added: a wait for anything else is no wait.
        self._expected = set(expected)
        self._cv = threading.Condition()
        self._tasks: dict[ResourceAddr, _Task] = {}
        self._finished: set[ResourceAddr] = set()
        self._users: dict[ResourceAddr, list[_Task]] = {}
        self._ready: list[tuple[tuple[object, ...], ResourceAddr]] = []
        self._running = 0
        # Tasks back from a wait (kplan.waiting), queued for a place ahead of new tasks.
        self._resuming = 0
        self._threads: list[threading.Thread] = []

    def add(
        self, addr: ResourceAddr, after: Iterable[ResourceAddr], run: Callable[[], Any]
    ) -> Outcome:
        """Schedule ``run`` (its return value becomes the outcome; KplanError its failure)."""
        with self._cv:
            waits = {a for a in after if a in self._expected and a != addr}
            task = _Task(addr, run, waits - self._finished)
            self._tasks[addr] = task
            for a in task.missing:
                self._users.setdefault(a, []).append(task)
            if not task.missing:
                heapq.heappush(self._ready, (self._key(addr), addr))
            self._pump()
        return task.outcome

    def abandon(self, addrs: Iterable[ResourceAddr]) -> None:
        """These will never be added (the walk stopped short of them): stop waiting for them."""
        with self._cv:
            for a in addrs:
                if a not in self._tasks:
                    self._finish(a)
            self._pump()

    def join(self) -> None:
        """Wait until every added task has finished."""
        with self._cv:
            # Every added task finished, not just none running: a waiting task
            # holds no place but may still start others.
            self._cv.wait_for(lambda: self._finished.issuperset(self._tasks))
            threads = list(self._threads)
        for t in threads:
            t.join()

    def give_up(self) -> None:
        """The calling task waits (:func:`kplan.waiting.waiting`): another may run meanwhile."""
        with self._cv:
            self._running -= 1
            self._pump()

    def take_back(self) -> None:
        """The calling task's wait is over: its place back, before new tasks get one."""
        with self._cv:
            self._resuming += 1
            self._cv.wait_for(lambda: self._running < self.limit)
            self._resuming -= 1
            self._running += 1

    # -- under self._cv ----------------------------------------------------

    def _key(self, addr: ResourceAddr) -> tuple[object, ...]:
        return (-self._priority.get(addr, 0), addr.sort_key())

    def _pump(self) -> None:
        while self._ready and self._running + self._resuming < self.limit:
            _, addr = heapq.heappop(self._ready)
            self._running += 1
            t = threading.Thread(
                target=self._work, args=(self._tasks[addr],), name=f"kplan-apply {addr}"
            )
            self._threads.append(t)
            t.start()
        self._cv.notify_all()

    def _finish(self, addr: ResourceAddr) -> None:
        self._finished.add(addr)
        for user in self._users.pop(addr, ()):
            user.missing.discard(addr)
            if not user.missing:
                heapq.heappush(self._ready, (self._key(user.addr), user.addr))

    def _work(self, task: _Task) -> None:
        hold(self)
        try:
            task.outcome.set(task.run())
        except KplanError as exc:
            task.outcome.fail(exc.diagnostics)
        except BaseException as exc:  # a bug: fail the change, do not hang its dependents
            task.outcome.fail([Diagnostic.error(f"{task.addr}: internal error", repr(exc))])
        finally:
            hold(None)
            with self._cv:
                self._running -= 1
                self._finish(task.addr)
                self._pump()
