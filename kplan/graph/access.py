"""Which instances of a multi-instance resource an expression actually used.

A resource with ``for_each`` or ``count`` is seen by expressions as a map
(or list) of its instances. Wrapped in :class:`TrackedMap` / :class:`TrackedList`,
every lookup between :func:`start` and :func:`stop` is logged: ``x[each.key].path``
depends on one instance, ``keys(x)`` on all of them. That is what lets
``destroy -target`` of one host's file leave the other hosts' services alone.

During apply an instance's value may still be in the making (a :class:`Later`):
a :class:`WaitingMap` waits for the one value a lookup needs, so one host's
slow change does not hold up what only needs another host's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from kplan.addrs import Key, ResourceConfigAddr

__all__ = [
    "ALL",
    "Later",
    "LazyTrackedMap",
    "TrackedList",
    "TrackedMap",
    "WaitingMap",
    "start",
    "stop",
]

ALL: Any = object()
Access = set[tuple[ResourceConfigAddr, Any]]
_ACCESS: ContextVar[Access | None] = ContextVar("kplan_access", default=None)


def _log(owner: ResourceConfigAddr, key: Key | object) -> None:
    log = _ACCESS.get()
    if log is not None:
        log.add((owner, key))


def start() -> tuple[Access, Any]:
    """Begin logging lookups: returns (the log, a token for stop)."""
    log: Access = set()
    return log, _ACCESS.set(log)


def stop(token: Any) -> None:
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


class LazyTrackedMap(TrackedMap):
    """A TrackedMap some of whose values are only read when used.

    A host-targeted plan leaves out the other hosts' instances; their values
    (recorded state) are fetched one by one if an expression looks them up,
    and all at once if one iterates over the map.
    """

    __slots__ = ("_load", "_order", "_pending")

    def __init__(
        self,
        owner: ResourceConfigAddr,
        present: dict[Any, Any],
        order: list[Any],
        pending: set[Any],
        load: Callable[[Any], Any],
    ) -> None:
        super().__init__(owner, present)
        self._order, self._pending, self._load = order, pending, load

    def __missing__(self, key: Any) -> Any:
        if key not in self._pending:
            raise KeyError(key)
        value = self._load(key)
        dict.__setitem__(self, key, value)
        self._pending.discard(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def _fill(self) -> None:
        if self._pending:
            for key in list(self._pending):
                self.__missing__(key)
            ordered = [(k, dict.__getitem__(self, k)) for k in self._order]
            dict.clear(self)
            dict.update(self, ordered)

    def __iter__(self) -> Iterator[Any]:
        self._fill()
        return super().__iter__()

    def keys(self) -> Any:
        self._fill()
        return dict.keys(self)

    def values(self) -> Any:
        self._fill()
        return super().values()

    def items(self) -> Any:
        self._fill()
        return super().items()


class Later:
    """A value still being made (an instance whose change is in flight): get() waits."""

    __slots__ = ()

    def get(self) -> Any:
        raise NotImplementedError


class WaitingMap(TrackedMap):
    """A TrackedMap whose values may be :class:`Later`: a lookup waits for its value only.

    Keys are all present (for_each is known), in order; a value is replaced by
    what it became on first use. Anything that reads every value (items,
    values, a copy) waits for them all.
    """

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, Later):
            value = value.get()
            dict.__setitem__(self, key, value)  # an existing key: the order stays
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        _log(self.owner, key)
        return self[key] if dict.__contains__(self, key) else default

    def _settle(self) -> None:
        for key, value in list(dict.items(self)):
            if isinstance(value, Later):
                dict.__setitem__(self, key, value.get())

    def values(self) -> Any:
        self._settle()
        return super().values()

    def items(self) -> Any:
        self._settle()
        return super().items()

    def copy(self) -> dict[Any, Any]:
        self._settle()
        return dict(dict.items(self))
