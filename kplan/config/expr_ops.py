"""The semantics of expression operators on kplan values (used by the compiled closures).

Values are plain data (None, bool, int, float, str, list, dict) plus UNKNOWN
and Secret. The rules, everywhere: an UNKNOWN operand gives UNKNOWN; a
Secret operand is revealed for the operation and the result is a Secret.
Errors are :class:`EvalFailure` with a message naming types, never values.
Bools are not numbers here (``true + 1`` is an error, ``1 == true`` is false).

Nothing here evaluates Python code or touches Python attributes of values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from kplan.config.functions_base import (
    HAS_SECRET,
    HAS_UNKNOWN,
    FunctionError,
    as_secret,
    equal,
    special,
    to_text,
    type_name,
)
from kplan.values import UNKNOWN, Secret, reveal

__all__ = ["EvalFailure", "arith", "compare", "join_text", "negate", "truthy"]

MAX_SEQUENCE = 1_000_000
MAX_POW_BITS = 4096
_NUM = (int, float)


class EvalFailure(Exception):
    """An evaluation problem; the caller adds the position and the expression text."""

    def __init__(self, summary: str, code: str = "expression-type") -> None:
        super().__init__(summary)
        self.summary = summary
        self.code = code


def _is_num(v: Any) -> bool:
    return type(v) in _NUM


def truthy(value: Any) -> bool:
    """Python truthiness of plain data: null, false, 0, "" and empty collections are false."""
    return bool(value)


def _add(a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return a + b
    if type(a) is str and type(b) is str:
        return a + b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return [*a, *b]
    hint = "; use ~ or format() to build strings" if str in (type(a), type(b)) else ""
    raise EvalFailure(f"cannot add {type_name(a)} and {type_name(b)}{hint}")


def _repeat(seq: Any, times: Any) -> Any:
    if type(times) is not int:
        raise EvalFailure(f"cannot multiply {type_name(seq)} by {type_name(times)}")
    if len(seq) * max(times, 0) > MAX_SEQUENCE:
        raise EvalFailure(f"result of * would be longer than {MAX_SEQUENCE}")
    return list(seq) * times if isinstance(seq, list | tuple) else seq * times


def _mul(a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return a * b
    if isinstance(a, str | list | tuple):
        return _repeat(a, b)
    if isinstance(b, str | list | tuple):
        return _repeat(b, a)
    raise EvalFailure(f"cannot multiply {type_name(a)} and {type_name(b)}")


def _numbers(op: str, a: Any, b: Any) -> None:
    if not (_is_num(a) and _is_num(b)):
        hint = "; use format() to format strings" if op == "%" and type(a) is str else ""
        raise EvalFailure(
            f"operator {op} needs numbers, got {type_name(a)} and {type_name(b)}{hint}"
        )


def _div(a: Any, b: Any) -> Any:
    _numbers("/", a, b)
    if b == 0:
        raise EvalFailure("division by zero", "division-by-zero")
    return a / b


def _floordiv(a: Any, b: Any) -> Any:
    _numbers("//", a, b)
    if b == 0:
        raise EvalFailure("division by zero", "division-by-zero")
    return a // b


def _mod(a: Any, b: Any) -> Any:
    _numbers("%", a, b)
    if b == 0:
        raise EvalFailure("modulo by zero", "division-by-zero")
    return a % b


def _pow(a: Any, b: Any) -> Any:
    _numbers("**", a, b)
    big = type(a) is int and type(b) is int and b > 0 and abs(a) > 1
    if big and b * math.log2(abs(a)) > MAX_POW_BITS:
        raise EvalFailure("number too large: the result of ** has too many digits")
    if a == 0 and b < 0:
        raise EvalFailure("division by zero: 0 to a negative power", "division-by-zero")
    result = a**b
    if isinstance(result, complex):
        raise EvalFailure("a negative number to a fractional power has no real result")
    return result


def _sub(a: Any, b: Any) -> Any:
    _numbers("-", a, b)
    return a - b


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": _div,
    "//": _floordiv,
    "%": _mod,
    "**": _pow,
}


def arith(op: str, a: Any, b: Any) -> Any:
    """``a op b`` for + - * / // % **."""
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if type(a) is Secret or type(b) is Secret:
        return as_secret(arith(op, _open(a), _open(b)))
    try:
        return _ARITH[op](a, b)
    except OverflowError:
        raise EvalFailure(f"number too large: the result of {op} overflows") from None


def _open(v: Any) -> Any:
    return v.reveal() if type(v) is Secret else v


def negate(op: str, value: Any) -> Any:
    """Unary minus or plus."""
    if value is UNKNOWN:
        return UNKNOWN
    if type(value) is Secret:
        return as_secret(negate(op, value.reveal()))
    if not _is_num(value):
        raise EvalFailure(f"unary {op} needs a number, got {type_name(value)}")
    return -value if op == "-" else value


def _order(op: str, a: Any, b: Any) -> bool:
    if not ((_is_num(a) and _is_num(b)) or (type(a) is str and type(b) is str)):
        raise EvalFailure(
            f"cannot compare {type_name(a)} {op} {type_name(b)}; both must be numbers or strings"
        )
    if op == "<":
        return bool(a < b)
    if op == ">":
        return bool(a > b)
    if op == "<=":
        return bool(a <= b)
    return bool(a >= b)


def _member(a: Any, b: Any) -> bool:
    if type(b) is str:
        if type(a) is not str:
            raise EvalFailure(f"cannot test whether a {type_name(a)} is in a string")
        return a in b
    if isinstance(b, list | tuple):
        return any(equal(a, x) for x in b)
    if isinstance(b, dict):
        return isinstance(a, str | int | float) and a in b
    raise EvalFailure(f'"in" needs a list, map or string on the right, got {type_name(b)}')


def compare(op: str, a: Any, b: Any) -> Any:
    """``a op b`` for == != < > <= >= in "not in": a bool, UNKNOWN, or a Secret bool."""
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    flags = special(a) | special(b)
    if flags & HAS_UNKNOWN:
        return UNKNOWN
    if flags & HAS_SECRET:
        return as_secret(compare(op, reveal(a), reveal(b)))
    if op == "==":
        return equal(a, b)
    if op == "!=":
        return not equal(a, b)
    if op == "in":
        return _member(a, b)
    if op == "not in":
        return not _member(a, b)
    return _order(op, a, b)


def join_text(pieces: list[Any]) -> Any:
    """Interpolation: the pieces as one string; UNKNOWN if any is, a Secret if any is."""
    out: list[str] = []
    for p in pieces:
        kind = type(p)
        if kind is str:
            out.append(p)
        elif kind is int and -(10**15) < p < 10**15:
            out.append(str(p))
        else:
            break
    else:
        return "".join(out)
    flags = 0
    for p in pieces:
        flags |= special(p)
    if flags & HAS_UNKNOWN:
        return UNKNOWN
    if flags & HAS_SECRET:
        return as_secret(join_text([reveal(p) for p in pieces]))
    try:
        return "".join([_piece(p) for p in pieces])
    except FunctionError as exc:
        raise EvalFailure(exc.message) from None


def _piece(value: Any) -> str:
    if type(value) is str:
        return value
    if value is None:
        raise EvalFailure(
            'cannot interpolate null into a string; use coalesce(x, "") for a default',
            "interpolate-null",
        )
    return to_text(value, containers=True)
