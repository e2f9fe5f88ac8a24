"""The apply scheduler: what waits longest goes first; a waiting change holds no place."""

from __future__ import annotations

import threading

from kplan.addrs import ResourceAddr, parse_resource
from kplan.apply.executor import _chain_lengths
from kplan.apply.schedule import Scheduler
from kplan.waiting import hold, waiting


def addr(text: str) -> ResourceAddr:
    return parse_resource(text)


def run_order(priority: dict[ResourceAddr, int] | None) -> list[str]:
    """The order three ready changes start in, queued behind a running one."""
    names = ["host_directory.a", "host_directory.b", "docker_image.z"]
    started: list[str] = []
    gate = threading.Event()
    s = Scheduler(1, [addr(n) for n in ("null_resource.first", *names)], priority)
    s.add(addr("null_resource.first"), (), gate.wait)  # holds the one place
    for n in names:
        s.add(addr(n), (), lambda n=n: started.append(n))  # type: ignore[misc]
    gate.set()
    s.join()
    return started


def test_ready_changes_go_by_address_without_priorities() -> None:
    assert run_order(None) == ["docker_image.z", "host_directory.a", "host_directory.b"]


def test_the_longest_chain_goes_first() -> None:
    order = run_order({addr("host_directory.b"): 2})
    assert order[0] == "host_directory.b"


def test_chain_lengths_follow_the_planned_dependencies() -> None:
    class Change:
        def __init__(self, *deps: str) -> None:
            self.depends_on = tuple(addr(d) for d in deps)

    rest = {
        addr("docker_image.k"): Change(),
        addr("docker_job.db_sync"): Change("docker_image.k", "elsewhere.not_planned"),
        addr("docker_container.k"): Change("docker_job.db_sync"),
        addr("host_directory.d"): Change(),
    }
    lengths = _chain_lengths(rest)  # type: ignore[arg-type]
    assert lengths == {
        addr("docker_image.k"): 2,
        addr("docker_job.db_sync"): 1,
        addr("docker_container.k"): 0,
        addr("host_directory.d"): 0,
    }


# -- waiting: a change that waits gives its place up ----------------------------------

WAIT = 10.0  # a generous bound: only a broken scheduler ever reaches it


def test_a_waiting_change_lets_another_run_in_its_place() -> None:
    """At one place, B runs while A waits for B: holding the place, A would never see it."""
    b_ran = threading.Event()
    seen: list[bool] = []

    def a() -> None:
        with waiting():
            seen.append(b_ran.wait(WAIT))

    s = Scheduler(1, [addr("null_resource.a"), addr("null_resource.b")])
    s.add(addr("null_resource.a"), (), a)
    s.add(addr("null_resource.b"), (), b_ran.set)
    s.join()
    assert seen == [True]


def test_a_change_back_from_waiting_goes_before_changes_not_yet_started() -> None:
    """A's wait ends while B holds the one place and C is ready: A resumes before C starts."""
    events: list[str] = []
    a_waiting, a_may_resume, b_may_finish = threading.Event(), threading.Event(), threading.Event()

    def a() -> None:
        with waiting():
            a_waiting.set()
            a_may_resume.wait(WAIT)
        events.append("a resumed")

    def b() -> None:
        events.append("b started")
        a_may_resume.set()  # A now queues for the place B holds...
        b_may_finish.wait(WAIT)

    names = ["null_resource.a", "null_resource.b", "null_resource.c"]
    s = Scheduler(1, [addr(n) for n in names])
    s.add(addr("null_resource.a"), (), a)
    assert a_waiting.wait(WAIT)
    s.add(addr("null_resource.b"), (), b)
    s.add(addr("null_resource.c"), (), lambda: events.append("c started"))
    while s._resuming == 0:  # ...and is queued before B lets go
        threading.Event().wait(0.01)
    b_may_finish.set()
    s.join()
    assert events == ["b started", "a resumed", "c started"]


def test_the_limit_still_holds_for_changes_working_and_nested_waits() -> None:
    """Eight changes at two places, each waiting twice (nested): never more than two at work."""
    lock = threading.Lock()
    working = 0
    most = 0

    def work() -> None:
        nonlocal working, most
        with lock:
            working += 1
            most = max(most, working)
        threading.Event().wait(0.01)
        with lock:
            working -= 1

    def change() -> None:
        work()
        with waiting(), waiting():  # the inner wait must not give up a second place
            threading.Event().wait(0.01)
        work()

    names = [f"null_resource.n{i}" for i in range(8)]
    s = Scheduler(2, [addr(n) for n in names])
    for n in names:
        s.add(addr(n), (), change)
    s.join()
    assert most == 2
    assert s._running == 0 and s._resuming == 0


def test_waiting_outside_an_apply_does_nothing() -> None:
    hold(None)
    with waiting():
        pass  # no scheduler: no place to give up, nothing raised
