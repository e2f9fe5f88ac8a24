"""One look at a service for all the types a refresh reads from it.

A refresh asks each resource type for its instances separately, types in
parallel. Where several types of a provider read the same thing — RabbitMQ's
users, vhosts and permissions all come from one ``export_definitions``, each
run of which starts an Erlang VM — every type asking again makes the plan
wait as long, and loads the host as much, as many times over.

The engine names each refresh (``ReadRequest.snapshot``); the dispatcher makes
that name current while a type reads (:func:`reading`), in the threads it
reads hosts in too. Inside, :func:`shared_read` runs ``fetch`` once per key for
the whole refresh: the first caller runs it, the others (other types, other
threads) wait for its answer and get the same. A refresh reads what is there
before any change is made, so one answer is as true for every type.

What is shared is kept only for the current refresh: a read with another name
drops it, and a read with none (a test, a provider called on its own) shares
nothing. A failed fetch is not shared: each caller then runs its own, so each
type reports its failure naming its own instances.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["current_snapshot", "reading", "shared_read"]

T = TypeVar("T")

_snapshot: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kplan_read_snapshot", default=None
)
_lock = threading.Lock()
# The refresh the entries belong to, and each key's answer (or the fetch in flight).
_entries: dict[Hashable, Future[Any]] = {}
_entries_of: list[str | None] = [None]


@contextlib.contextmanager
def reading(snapshot: str | None) -> Iterator[None]:
    """Make ``snapshot`` (the refresh's name; None: no refresh) current in the block."""
    token = _snapshot.set(snapshot)
    try:
        yield
    finally:
        _snapshot.reset(token)


def current_snapshot() -> str | None:
    """The name of the refresh being read, or None."""
    return _snapshot.get()


def shared_read(key: Hashable, fetch: Callable[[], T]) -> T:
    """``fetch()``, run once per ``key`` for every read of the current refresh.

    ``key`` must say everything the answer depends on (the provider, the host,
    the container, the command). Outside a refresh it simply calls ``fetch``.
    """
    snapshot = _snapshot.get()
    if snapshot is None:
        return fetch()
    with _lock:
        if _entries_of[0] != snapshot:
            _entries.clear()
            _entries_of[0] = snapshot
        future = _entries.get(key)
        owner = future is None
        if future is None:
            future = _entries[key] = Future()
    if not owner:
        try:
            answer: T = future.result()
            return answer
        except BaseException:
            return fetch()  # its own failure, naming its own instances
    try:
        answer = fetch()
    except BaseException as exc:
        with _lock:
            if _entries.get(key) is future:
                del _entries[key]
        future.set_exception(exc)
        raise
    future.set_result(answer)
    return answer
