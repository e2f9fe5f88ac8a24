from __future__ import annotations

import itertools
import threading
import time

import pytest

from kplan.graph.dag import Graph, heights, walk


def chain(*names: str) -> Graph[str]:
    g: Graph[str] = Graph()
    for a, b in itertools.pairwise(names):
        g.connect(b, a)  # b depends on a
    return g


def test_topological_order_is_deterministic() -> None:
    g: Graph[str] = Graph()
    for n in ("d", "c", "b", "a"):
        g.add(n)
    g.connect("a", "d")
    assert g.topological() == ["b", "c", "d", "a"]


def test_find_cycle_returns_the_closing_path() -> None:
    g = chain("a", "b", "c")
    g.connect("a", "c")
    cycle = g.find_cycle()
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    with pytest.raises(ValueError):
        g.topological()
    assert chain("x", "y").find_cycle() is None


def test_parallel_walk_respects_dependencies_and_bound() -> None:
    g: Graph[str] = Graph()
    for i in range(8):
        g.connect(f"leaf{i}", "root")
    running = 0
    peak = 0
    order: list[str] = []
    lock = threading.Lock()

    def visit(n: str) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            order.append(n)
        time.sleep(0.02)
        with lock:
            running -= 1

    result = walk(g, visit, parallelism=3)
    assert result.ok
    assert order[0] == "root"
    assert len(result.done) == 9
    assert peak == 3


def test_failure_stops_new_work_and_reports_the_rest() -> None:
    g = chain("a", "b", "c")
    g.add("z")

    def visit(n: str) -> None:
        if n == "b":
            raise RuntimeError("boom")

    for parallelism in (1, 4):
        result = walk(g, visit, parallelism=parallelism)
        assert list(result.failed) == ["b"]
        assert "c" in result.skipped
        assert "a" in result.done


def test_heights_count_the_longest_chain_of_dependents() -> None:
    g = chain("pull", "migrate", "start", "register")
    g.connect("start", "config")  # start waits for config too
    g.add("alone")
    assert heights(g) == {
        "pull": 3,
        "migrate": 2,
        "config": 2,
        "start": 1,
        "register": 0,
        "alone": 0,
    }


def test_parallel_walk_starts_the_longest_chain_first() -> None:
    # "z-pull" sorts last by name, but three steps wait on it: with room for one
    # visit at a time beside the chain, it must start before the leaves.
    g = chain("z-pull", "z-migrate", "z-start", "z-register")
    for leaf in ("a1", "a2", "a3", "a4"):
        g.add(leaf)
    started: list[str] = []
    lock = threading.Lock()

    def visit(n: str) -> None:
        with lock:
            started.append(n)

    result = walk(g, visit, parallelism=2)
    assert result.ok
    assert started[0] == "z-pull"
    # The leaves keep their name order among themselves.
    assert [n for n in started if n.startswith("a")] == ["a1", "a2", "a3", "a4"]
