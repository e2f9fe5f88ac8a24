"""Values that flow between configuration, plan, state and providers.

Attribute values are plain JSON-like data (``None``, bool, int, float, str,
list, dict) plus two wrappers:

- :data:`UNKNOWN` — a value known only after apply. Any operation on it
  yields UNKNOWN; renderers print ``(known after apply)``.
- :class:`Secret` — a sensitive value. ``str()``, ``repr()`` and f-strings
  print ``(sensitive)``; only :meth:`Secret.reveal` (or :func:`reveal` on a
  whole structure) gives the raw value. Never reveal a value on its way to a
  log, a plan or a state file in plaintext.

Imports nothing of kplan.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

__all__ = [
    "UNKNOWN",
    "Path",
    "Secret",
    "Unknown",
    "contains_secret",
    "contains_unknown",
    "is_secret",
    "iter_paths",
    "mark_paths",
    "reveal",
    "secret_paths",
    "unknown_paths",
]

Path = tuple[str | int, ...]
SENSITIVE_TEXT: Final = "(sensitive)"


class Unknown:
    """The one value that stands for "known after apply"."""

    _instance: Unknown | None = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(known after apply)"

    __str__ = __repr__

    def __reduce__(self) -> str:
        return "UNKNOWN"

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return 0x5EC2E7


UNKNOWN: Final = Unknown()


class Secret:
    """A sensitive value: prints as ``(sensitive)``, compares by its content."""

    __slots__ = ("_value",)
    _value: Any

    def __init__(self, value: Any) -> None:
        while isinstance(value, Secret):
            value = value.reveal()
        self._value = value

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return SENSITIVE_TEXT

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return SENSITIVE_TEXT

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return bool(self._value == other._value)
        return False

    def __hash__(self) -> int:
        return hash(("secret", repr(type(self._value))))


def is_secret(value: object) -> bool:
    return isinstance(value, Secret)


def reveal(value: Any) -> Any:
    """Unwrap every :class:`Secret` inside ``value`` (a deep copy of containers)."""
    if isinstance(value, Secret):
        return reveal(value.reveal())
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reveal(v) for v in value]
    return value


def iter_paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Yield ``(path, leaf)`` for every leaf; a Secret or UNKNOWN is a leaf."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from iter_paths(v, (*path, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from iter_paths(v, (*path, i))
    else:
        yield path, value


def secret_paths(value: Any) -> list[Path]:
    return [p for p, v in iter_paths(value) if isinstance(v, Secret)]


def unknown_paths(value: Any) -> list[Path]:
    return [p for p, v in iter_paths(value) if v is UNKNOWN]


def contains_unknown(value: Any) -> bool:
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False


def contains_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_secret(v) for v in value)
    return False


def mark_paths(value: Any, paths: list[Path]) -> Any:
    """Return ``value`` with the leaves (or subtrees) at ``paths`` wrapped in Secret."""
    if not paths:
        return value
    if () in paths:
        return value if isinstance(value, Secret) or value is UNKNOWN else Secret(value)
    if isinstance(value, dict):
        return {
            k: mark_paths(v, [p[1:] for p in paths if p and p[0] == k]) for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            mark_paths(v, [p[1:] for p in paths if p and p[0] == i]) for i, v in enumerate(value)
        ]
    return value
