"""The apply scheduler: what waits longest goes first among ready changes."""

from __future__ import annotations

import threading

from kplan.addrs import ResourceAddr, parse_resource
from kplan.apply.executor import _chain_lengths
from kplan.apply.schedule import Scheduler


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
