"""A directed acyclic graph and its walk in dependency order.

An edge ``a → b`` means "a depends on b": b is visited first. Orders are
deterministic. A serial walk (parallelism 1) takes, among the nodes ready at
the same time, the smallest sort key first. A parallel walk takes first the
ready node with the longest chain of work waiting on it (its height), then the
smallest key: an image pull that a database, a migration and three API calls
wait for starts before a directory that nothing else waits for, so the long
chains overlap instead of queueing behind the short ones.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

N = TypeVar("N", bound=Hashable)

__all__ = ["Graph", "WalkResult", "heights", "walk"]


class Graph(Generic[N]):
    def __init__(self) -> None:
        self._deps: dict[N, set[N]] = {}
        self._users: dict[N, set[N]] = {}

    def add(self, node: N) -> None:
        if node not in self._deps:
            self._deps[node] = set()
            self._users[node] = set()

    def connect(self, node: N, depends_on: N) -> None:
        """Record that ``node`` depends on ``depends_on`` (both are added if new)."""
        self.add(node)
        self.add(depends_on)
        if node != depends_on:
            self._deps[node].add(depends_on)
            self._users[depends_on].add(node)

    def __contains__(self, node: object) -> bool:
        return node in self._deps

    def __len__(self) -> int:
        return len(self._deps)

    @property
    def nodes(self) -> Iterable[N]:
        return self._deps.keys()

    def dependencies(self, node: N) -> set[N]:
        return self._deps[node]

    def dependents(self, node: N) -> set[N]:
        return self._users[node]

    def ancestors(self, roots: Iterable[N]) -> set[N]:
        """The roots and everything they depend on, transitively."""
        seen: set[N] = set()
        stack = list(roots)
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(self._deps[n])
        return seen

    def subgraph(self, keep: set[N]) -> Graph[N]:
        g: Graph[N] = Graph()
        for n in self._deps:
            if n in keep:
                g.add(n)
                for d in self._deps[n]:
                    if d in keep:
                        g.connect(n, d)
        return g

    def reversed(self) -> Graph[N]:
        g: Graph[N] = Graph()
        for n, deps in self._deps.items():
            g.add(n)
            for d in deps:
                g.connect(d, n)
        return g

    def find_cycle(self, key: Callable[[N], Any] = str) -> list[N] | None:
        """One cycle as a path ``[a, b, …, a]`` (each depends on the next), or None."""
        white, grey, black = 0, 1, 2
        color = dict.fromkeys(self._deps, white)
        for start in sorted(self._deps, key=key):
            if color[start] != white:
                continue
            path: list[N] = [start]
            iters = [iter(sorted(self._deps[start], key=key))]
            color[start] = grey
            while iters:
                nxt = next(iters[-1], None)
                if nxt is None:
                    color[path.pop()] = black
                    iters.pop()
                elif color[nxt] == grey:
                    return [*path[path.index(nxt) :], nxt]
                elif color[nxt] == white:
                    color[nxt] = grey
                    path.append(nxt)
                    iters.append(iter(sorted(self._deps[nxt], key=key)))
        return None

    def topological(self, key: Callable[[N], Any] = str) -> list[N]:
        """Dependencies first; ties broken by ``key``. Raises ValueError on a cycle."""
        missing = {n: len(d) for n, d in self._deps.items()}
        ready = [(key(n), i, n) for i, n in enumerate(n for n, c in missing.items() if c == 0)]
        heapq.heapify(ready)
        order: list[N] = []
        counter = len(ready)
        while ready:
            _, _, n = heapq.heappop(ready)
            order.append(n)
            for u in self._users[n]:
                missing[u] -= 1
                if missing[u] == 0:
                    counter += 1
                    heapq.heappush(ready, (key(u), counter, u))
        if len(order) != len(self._deps):
            raise ValueError("the graph has a cycle")
        return order


@dataclass
class WalkResult(Generic[N]):
    done: list[N] = field(default_factory=list)
    failed: dict[N, BaseException] = field(default_factory=dict)
    # Not started: a dependency failed, or the walk stopped after a failure.
    skipped: list[N] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def walk(
    graph: Graph[N],
    visit: Callable[[N], None],
    *,
    parallelism: int = 10,
    key: Callable[[N], Any] = str,
    stop_on_failure: bool = True,
    cancel: threading.Event | None = None,
) -> WalkResult[N]:
    """Visit every node after its dependencies, at most ``parallelism`` at a time.

    When a visit raises, nothing new starts (with ``stop_on_failure``; otherwise
    only the failed node's dependents are skipped); visits already running are
    allowed to finish. With parallelism 1 the order is ``graph.topological(key)``.
    """
    result: WalkResult[N] = WalkResult()
    if parallelism <= 1:
        return _walk_serial(graph, visit, key, stop_on_failure, result)
    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="kplan-walk") as pool:
        try:
            _walk_pool(graph, visit, pool, parallelism, key, stop_on_failure, cancel, result)
        except BaseException:
            # Ctrl-C in this thread: the pool waits for its visits on the way out, and
            # those must start nothing new meanwhile.
            if cancel is not None:
                cancel.set()
            raise
    finished_set = set(result.done) | set(result.failed)
    result.skipped = sorted((n for n in graph.nodes if n not in finished_set), key=key)
    return result


def _walk_pool(
    graph: Graph[N],
    visit: Callable[[N], None],
    pool: ThreadPoolExecutor,
    parallelism: int,
    key: Callable[[N], Any],
    stop_on_failure: bool,
    cancel: threading.Event | None,
    result: WalkResult[N],
) -> None:
    missing = {n: len(graph.dependencies(n)) for n in graph.nodes}
    height = heights(graph)

    def first(n: N) -> tuple[int, Any]:
        return (-height[n], key(n))

    ready = sorted((n for n, c in missing.items() if c == 0), key=first)
    blocked: set[N] = set()
    running: dict[Future[None], N] = {}
    stopped = False
    while ready or running:
        while ready and len(running) < parallelism and not stopped:
            n = ready.pop(0)
            running[pool.submit(visit, n)] = n
        if not running:
            break
        finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        newly: list[N] = []
        for fut in sorted(finished, key=lambda f: key(running[f])):
            n = running.pop(fut)
            exc = fut.exception()
            if exc is not None:
                result.failed[n] = exc
                stopped = stopped or stop_on_failure
                blocked.update(_descendants(graph, n))
                continue
            result.done.append(n)
            for u in graph.dependents(n):
                missing[u] -= 1
                if missing[u] == 0 and u not in blocked:
                    newly.append(u)
        if cancel is not None and cancel.is_set():
            stopped = True
        ready = sorted([*ready, *newly], key=first)


def _walk_serial(
    graph: Graph[N],
    visit: Callable[[N], None],
    key: Callable[[N], Any],
    stop_on_failure: bool,
    result: WalkResult[N],
) -> WalkResult[N]:
    blocked: set[N] = set()
    order = graph.topological(key)
    for i, n in enumerate(order):
        if n in blocked:
            continue
        try:
            visit(n)
        except Exception as exc:
            result.failed[n] = exc
            if stop_on_failure:
                done = set(result.done) | {n}
                result.skipped = [m for m in order[i + 1 :] if m not in done]
                return result
            blocked.update(_descendants(graph, n))
            continue
        result.done.append(n)
    result.skipped = [n for n in order if n in blocked]
    return result


def heights(graph: Graph[N]) -> dict[N, int]:
    """For each node, how many nodes lie on the longest chain of its dependents
    (a node nothing depends on: 0)."""
    height: dict[N, int] = {}
    order = graph.topological(key=lambda n: 0)
    for n in reversed(order):  # dependents come later in the order: done first here
        height[n] = max((height[u] + 1 for u in graph.dependents(n)), default=0)
    return height


def _descendants(graph: Graph[N], node: N) -> set[N]:
    seen: set[N] = set()
    stack = list(graph.dependents(node))
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(graph.dependents(n))
    return seen
