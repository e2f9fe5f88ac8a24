"""Which instances of a multi-instance resource an expression actually used.

A resource with ``for_each`` or ``count`` is seen by expressions as a map
(or list) of its instances. Wrapped in :class:`TrackedMap` / :class:`TrackedList`,
every lookup while :func:`tracking` is active is logged: ``x[each.key].path``
depends on one instance, ``keys(x)`` on all of them. That is what lets
``destroy -target`` of one host's file leave the other hosts' services alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from kplan.addrs import Key, ResourceConfigAddr

__all__ = ["ALL", "TrackedList", "TrackedMap", "start", "stop", "tracking"]

ALL: Any = object()
Access = set[tuple[ResourceConfigAddr, Any]]
_ACCESS: ContextVar[Access | None] = ContextVar("kplan_access", default=None)


def _log(owner: ResourceConfigAddr, key: Key | object) -> None:
    log = _ACCESS.get()
    if log is not None:
        log.add((owner, key))


def start() -> tuple[Access, Any]:
    """Begin logging (the cheap form of :func:`tracking` for hot paths): (log, token)."""
    log: Access = set()
    return log, _ACCESS.set(log)


def stop(token: Any) -> None:
    _ACCESS.reset(token)


@contextmanager
def tracking() -> Iterator[Access]:
    log: Access = set()
    token = _ACCESS.set(log)
    try:
        yield log
    finally:
        _ACCESS.reset(token)


class TrackedMap(dict[Any, Any]):
    __slots__ = ("owner",)

    def __init__(self, owner: ResourceConfigAddr, items: dict[Any, Any]) -> None:
        super().__init__(items)
        self.owner = owner

    def __getitem__(self, key: Any) -> Any:
        _log(self.owner, key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        _log(self.owner, key)
        return super().get(key, default)

    # How many keys, and whether one exists, is known from for_each alone; iterating
    # (which is how a copy or a conversion starts) counts as using every value.

    def __iter__(self) -> Iterator[Any]:
        _log(self.owner, ALL)
        return super().__iter__()

    def values(self) -> Any:
        _log(self.owner, ALL)
        return super().values()

    def items(self) -> Any:
        _log(self.owner, ALL)
        return super().items()


class TrackedList(list[Any]):
    __slots__ = ("owner",)

    def __init__(self, owner: ResourceConfigAddr, items: list[Any]) -> None:
        super().__init__(items)
        self.owner = owner

    def __getitem__(self, index: Any) -> Any:
        _log(self.owner, index if isinstance(index, int) and index >= 0 else ALL)
        return super().__getitem__(index)

    def __iter__(self) -> Iterator[Any]:
        _log(self.owner, ALL)
        return super().__iter__()
