"""What every expression function shares: its error type, argument checks, text conversion.

:class:`FunctionError` is the one exception a function of the expression
library raises for bad input; the evaluator adds the file position. Its
message never contains an argument's value, only types, counts and names
(a value may be a revealed secret); ``safe_message`` is used instead of
``message`` when the arguments held secrets.

Nothing here does I/O or evaluates anything.
"""

from __future__ import annotations

import json
import math
from typing import Any

from kplan.diagnostics import KplanError
from kplan.values import UNKNOWN, Secret, Unknown, contains_unknown

__all__ = [
    "HAS_SECRET",
    "HAS_UNKNOWN",
    "FunctionError",
    "as_secret",
    "equal",
    "special",
    "to_json",
    "to_text",
    "type_name",
    "want_int",
    "want_list",
    "want_map",
    "want_number",
    "want_str",
]


class FunctionError(KplanError):
    """A function was called with arguments it cannot use."""

    def __init__(self, message: str, safe_message: str | None = None) -> None:
        super().__init__(message, code="function-call")
        self.message = message
        self.safe_message = message if safe_message is None else safe_message


def type_name(value: Any) -> str:
    """The kplan name of a value's type: string, number, bool, list, map, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, Secret):
        return "sensitive value"
    if isinstance(value, Unknown):
        return "unknown value"
    return type(value).__name__


def _bad(fn: str, arg: str, expected: str, value: Any) -> FunctionError:
    return FunctionError(f"{fn}(): {arg} must be {expected}, got {type_name(value)}")


def want_str(fn: str, arg: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(fn, arg, "a string", value)
    return value


def want_number(fn: str, arg: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(fn, arg, "a number", value)
    number: int | float = value
    return number


def want_int(fn: str, arg: str, value: Any) -> int:
    num = want_number(fn, arg, value)
    if isinstance(num, float):
        if not num.is_integer():
            raise FunctionError(f"{fn}(): {arg} must be a whole number")
        return int(num)
    return num


def want_list(fn: str, arg: str, value: Any) -> list[Any]:
    if isinstance(value, tuple):
        return list(value)
    if not isinstance(value, list):
        raise _bad(fn, arg, "a list", value)
    return value


def want_map(fn: str, arg: str, value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _bad(fn, arg, "a map", value)
    return value


def _number_text(value: int | float) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise FunctionError("cannot convert NaN or infinity to a string")
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    try:
        return str(value)
    except ValueError:  # more digits than Python will convert
        raise FunctionError("number too large to convert to a string") from None


def to_text(value: Any, *, containers: bool = False) -> str:
    """A value as text: bools as true/false, 2.0 as 2; lists and maps as JSON if allowed.

    Raises :class:`FunctionError` for null and, unless ``containers``, lists and maps.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if containers and isinstance(value, list | tuple | dict):
        return to_json(value)
    raise FunctionError(f"cannot convert {type_name(value)} to a string")


def to_json(value: Any) -> str:
    """Compact JSON, keys in their written order, non-ASCII kept."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise FunctionError(
            "value cannot be encoded as JSON (NaN, infinity, or a non-data value)"
        ) from None
    except RecursionError:
        raise FunctionError("value is nested too deeply to encode as JSON") from None


def as_secret(value: Any) -> Any:
    """Wrap a result in :class:`Secret`; a value with unknown parts stays UNKNOWN."""
    if isinstance(value, Secret) or value is UNKNOWN:
        return value
    if contains_unknown(value):
        return UNKNOWN
    return Secret(value)


def mark_sensitive(value: Any) -> Any:
    """A sensitive variable's or output's value: Secret, also while parts are unknown.

    A whole Secret cannot hold UNKNOWN (nothing unknown is ever sealed into a
    plan or a state), so a value with unknown parts stays a map or list whose
    known leaves are each a Secret.
    """
    if isinstance(value, Secret) or value is UNKNOWN:
        return value
    if not contains_unknown(value):
        return Secret(value)
    if isinstance(value, dict):
        return {k: mark_sensitive(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mark_sensitive(v) for v in value]
    return Secret(value)


def equal(a: Any, b: Any) -> bool:
    """Equality as the language sees it: true is not 1, [1] is not [true]."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equal(v, b[k]) for k, v in a.items())
    return bool(a == b)


_PLAIN = frozenset({str, int, float, bool, type(None)})
HAS_UNKNOWN = 1
HAS_SECRET = 2


def special(value: Any) -> int:
    """Which special values ``value`` holds, at any depth: HAS_UNKNOWN | HAS_SECRET bits."""
    kind = type(value)
    if kind in _PLAIN:
        return 0
    if value is UNKNOWN:
        return HAS_UNKNOWN
    if kind is Secret:
        return HAS_SECRET
    if kind is list or kind is tuple or isinstance(value, list):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    else:
        return 0
    flags = 0
    for item in items:
        if type(item) not in _PLAIN:
            flags |= special(item)
            if flags == HAS_UNKNOWN | HAS_SECRET:
                break
    return flags
