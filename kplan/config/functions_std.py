"""Expression functions over strings, numbers and collections (pure, no I/O).

Each ``fn_*`` takes plain values (secrets already revealed, no UNKNOWN unless
the function is registered as structural) and raises
:class:`~kplan.config.functions_base.FunctionError` for bad input. Error
messages name types and positions, never argument values.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kplan.config.functions_base import (
    FunctionError,
    equal,
    to_text,
    type_name,
    want_int,
    want_list,
    want_map,
    want_number,
    want_str,
)

MAX_RANGE = 100_000
_NO_DEFAULT: Any = object()
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_VERB = re.compile(r"%([-0]*)(\d*)(?:\.(\d+))?(.?)")


# -- strings ------------------------------------------------------------------


def _format_one(verb: str, prec: str, value: Any, index: int) -> str:
    if verb == "s":
        return to_text(value)
    if verb == "v":
        return "null" if value is None else to_text(value, containers=True)
    if verb == "q":
        return json.dumps(to_text(value), ensure_ascii=False)
    if verb == "d":
        return str(want_int("format", f"argument {index}", value))
    if verb == "f":
        num = want_number("format", f"argument {index}", value)
        return f"{num:.{int(prec) if prec else 6}f}"
    raise FunctionError(f'format(): unsupported verb "%{verb}" (use %s %d %f %v %q %%)')


def fn_format(spec: Any, *args: Any) -> str:
    """format(spec, values...): printf-style: %s %d %f (%.2f) %v %q %%, width (%5s, %-5s, %05d)."""
    text = want_str("format", "spec", spec)
    out: list[str] = []
    used = 0
    pos = 0
    for m in _VERB.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            raise FunctionError(f"format(): not enough arguments for verb %{verb}")
        used += 1
        piece = _format_one(verb, prec or "", args[used - 1], used + 1)
        if width:
            size = int(width)
            if "-" in flags:
                piece = piece.ljust(size)
            elif "0" in flags and verb in "df":
                piece = piece.zfill(size)
            else:
                piece = piece.rjust(size)
        out.append(piece)
    out.append(text[pos:])
    if used != len(args):
        raise FunctionError(f"format(): {len(args)} values given but the spec uses {used}")
    return "".join(out)


def fn_join(sep: Any, items: Any) -> str:
    """join(sep, list): the list's strings (numbers and bools converted) joined by sep."""
    separator = want_str("join", "sep", sep)
    parts = []
    for i, item in enumerate(want_list("join", "list", items)):
        if item is None or isinstance(item, list | tuple | dict):
            raise FunctionError(f"join(): element {i} is {type_name(item)}, not a string")
        parts.append(to_text(item))
    return separator.join(parts)


def fn_split(sep: Any, text: Any) -> list[str]:
    """split(sep, str): the parts of str between occurrences of sep."""
    separator = want_str("split", "sep", sep)
    if not separator:
        raise FunctionError("split(): sep must not be empty")
    return want_str("split", "str", text).split(separator)


def fn_replace(text: Any, sub: Any, repl: Any) -> str:
    """replace(str, substring, replacement): every occurrence replaced (plain text, no regex)."""
    return want_str("replace", "str", text).replace(
        want_str("replace", "substring", sub), want_str("replace", "replacement", repl)
    )


def fn_upper(text: Any) -> str:
    """upper(str): the string in upper case."""
    return want_str("upper", "str", text).upper()


def fn_lower(text: Any) -> str:
    """lower(str): the string in lower case."""
    return want_str("lower", "str", text).lower()


def fn_trim(text: Any, chars: Any = None) -> str:
    """trim(str, chars?): remove chars (default: whitespace) from both ends."""
    cut = None if chars is None else want_str("trim", "chars", chars)
    return want_str("trim", "str", text).strip(cut)


def fn_trimspace(text: Any) -> str:
    """trimspace(str): remove whitespace from both ends."""
    return want_str("trimspace", "str", text).strip()


def fn_startswith(text: Any, prefix: Any) -> bool:
    """startswith(str, prefix): whether str begins with prefix."""
    return want_str("startswith", "str", text).startswith(want_str("startswith", "prefix", prefix))


def fn_endswith(text: Any, suffix: Any) -> bool:
    """endswith(str, suffix): whether str ends with suffix."""
    return want_str("endswith", "str", text).endswith(want_str("endswith", "suffix", suffix))


def fn_substr(text: Any, offset: Any, length: Any) -> str:
    """substr(str, offset, length): length characters from offset (negative: from the end);
    length -1 means to the end."""
    value = want_str("substr", "str", text)
    start = want_int("substr", "offset", offset)
    size = want_int("substr", "length", length)
    if start < 0:
        start = max(0, len(value) + start)
    if size < -1:
        raise FunctionError("substr(): length must be -1 (to the end) or more")
    return value[start:] if size == -1 else value[start : start + size]


def fn_indent(spaces: Any, text: Any) -> str:
    """indent(n, str): add n spaces before every line but the first."""
    count = want_int("indent", "spaces", spaces)
    if not 0 <= count <= 1000:
        raise FunctionError("indent(): spaces must be between 0 and 1000")
    return want_str("indent", "str", text).replace("\n", "\n" + " " * count)


def fn_tostring(value: Any) -> str | None:
    """tostring(value): a string, number or bool as a string; null stays null."""
    return None if value is None else to_text(value)


def fn_tonumber(value: Any) -> int | float | None:
    """tonumber(value): a number or a numeric string as a number; null stays null."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    text = want_str("tonumber", "value", value).strip()
    if not _NUMBER.fullmatch(text):
        raise FunctionError('tonumber(): the string is not a number (like "42" or "-1.5e3")')
    if re.fullmatch(r"[+-]?\d+", text) and len(text) <= 4000:
        return int(text)
    return float(text)


# -- numbers --------------------------------------------------------------------


def _numbers(fn: str, args: tuple[Any, ...]) -> list[int | float]:
    items = list(args)
    if len(items) == 1 and isinstance(items[0], list | tuple):
        items = list(items[0])
    if not items:
        raise FunctionError(f"{fn}(): needs at least one number")
    return [want_number(fn, f"argument {i + 1}", v) for i, v in enumerate(items)]


def fn_min(*values: Any) -> int | float:
    """min(numbers...) or min(list): the smallest number."""
    return min(_numbers("min", values))


def fn_max(*values: Any) -> int | float:
    """max(numbers...) or max(list): the largest number."""
    return max(_numbers("max", values))


def fn_abs(value: Any) -> int | float:
    """abs(n): the absolute value."""
    return abs(want_number("abs", "n", value))


def fn_range(*args: Any) -> list[int]:
    """range(end), range(start, end), range(start, end, step): whole numbers, end excluded."""
    nums = [want_int("range", f"argument {i + 1}", a) for i, a in enumerate(args)]
    if not 1 <= len(nums) <= 3:
        raise FunctionError(f"range(): takes 1 to 3 arguments, got {len(nums)}")
    if len(nums) == 1:
        nums = [0, nums[0]]
    start, end, step = (*nums, 1) if len(nums) == 2 else nums
    if step == 0:
        raise FunctionError("range(): step must not be 0")
    rng = range(start, end, step)
    if len(rng) > MAX_RANGE:
        raise FunctionError(f"range(): more than {MAX_RANGE} elements")
    return list(rng)


# -- collections ---------------------------------------------------------------


def fn_length(value: Any) -> int:
    """length(list | map | str): the number of elements, keys or characters."""
    if isinstance(value, str | list | tuple | dict):
        return len(value)
    raise FunctionError(f"length(): needs a list, map or string, got {type_name(value)}")


def _key_order(key: Any) -> tuple[str, str]:
    return (type_name(key), str(key))


def fn_keys(value: Any) -> list[Any]:
    """keys(map): the map's keys, sorted."""
    return sorted(want_map("keys", "map", value), key=_key_order)


def fn_values(value: Any) -> list[Any]:
    """values(map): the map's values, in the order of its sorted keys."""
    mapping = want_map("values", "map", value)
    return [mapping[k] for k in sorted(mapping, key=_key_order)]


def fn_lookup(mapping: Any, key: Any, default: Any = _NO_DEFAULT) -> Any:
    """lookup(map, key, default?): map[key], or default when the key is missing."""
    data = want_map("lookup", "map", mapping)
    if not isinstance(key, str | int | float) or isinstance(key, bool):
        raise FunctionError(f"lookup(): key must be a string, got {type_name(key)}")
    if key in data:
        return data[key]
    if default is not _NO_DEFAULT:
        return default
    names = ", ".join(str(k) for k in sorted(data, key=_key_order)[:20]) or "(none)"
    raise FunctionError(
        f'lookup(): key "{key}" not found and no default given; keys: {names}',
        "lookup(): key not found and no default given",
    )


def fn_merge(*maps: Any) -> dict[Any, Any]:
    """merge(maps...): one map; a key in a later map wins. Null arguments are skipped."""
    out: dict[Any, Any] = {}
    for i, m in enumerate(maps):
        if m is not None:
            out.update(want_map("merge", f"argument {i + 1}", m))
    return out


def fn_concat(*lists: Any) -> list[Any]:
    """concat(lists...): one list with the elements of all."""
    out: list[Any] = []
    for i, items in enumerate(lists):
        out.extend(want_list("concat", f"argument {i + 1}", items))
    return out


def fn_contains(items: Any, value: Any) -> bool:
    """contains(list, value): whether the list has an element equal to value."""
    return any(equal(x, value) for x in want_list("contains", "list", items))


def _flatten(items: list[Any], out: list[Any]) -> None:
    for item in items:
        if isinstance(item, list | tuple):
            _flatten(list(item), out)
        else:
            out.append(item)


def fn_flatten(items: Any) -> list[Any]:
    """flatten(list): nested lists replaced by their elements, at any depth."""
    out: list[Any] = []
    _flatten(want_list("flatten", "list", items), out)
    return out


def _identity(value: Any) -> tuple[str, str]:
    return (type_name(value), json.dumps(value, sort_keys=True, default=repr))


def fn_distinct(items: Any) -> list[Any]:
    """distinct(list): the list without repeated elements (first occurrences kept)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for item in want_list("distinct", "list", items):
        ident = _identity(item)
        if ident not in seen:
            seen.add(ident)
            out.append(item)
    return out


def fn_sort(items: Any) -> list[Any]:
    """sort(list): strings in lexical order, or numbers in numeric order."""
    values = want_list("sort", "list", items)
    kinds = {type_name(v) for v in values}
    if kinds - {"string"} and kinds - {"number"}:
        raise FunctionError("sort(): elements must be all strings or all numbers")
    return sorted(values)


def fn_toset(items: Any) -> list[Any]:
    """toset(list): the distinct elements, sorted (strings or numbers naturally, others by JSON)."""
    values = fn_distinct(items)
    kinds = {type_name(v) for v in values}
    if kinds <= {"string"} or kinds <= {"number"}:
        return sorted(values)
    return sorted(values, key=_identity)


def fn_element(items: Any, index: Any) -> Any:
    """element(list, i): the i-th element; i wraps around the list's length."""
    values = want_list("element", "list", items)
    if not values:
        raise FunctionError("element(): the list is empty")
    return values[want_int("element", "index", index) % len(values)]


def fn_zipmap(keys: Any, values: Any) -> dict[str, Any]:
    """zipmap(keys, values): a map from a list of string keys and a list of values."""
    names = want_list("zipmap", "keys", keys)
    vals = want_list("zipmap", "values", values)
    if len(names) != len(vals):
        raise FunctionError(
            f"zipmap(): {len(names)} keys but {len(vals)} values; the lengths must match"
        )
    return {
        want_str("zipmap", f"key {i}", k): v
        for i, (k, v) in enumerate(zip(names, vals, strict=True))
    }


def fn_formatlist(spec: Any, *args: Any) -> list[str]:
    """formatlist(spec, values...): format() per element; lists go in step, others repeat."""
    lengths = {len(a) for a in args if isinstance(a, list)}
    if len(lengths) > 1:
        raise FunctionError(
            "formatlist(): the list arguments have different lengths "
            f"({', '.join(map(str, sorted(lengths)))}); they must match"
        )
    count = lengths.pop() if lengths else 1
    return [
        fn_format(spec, *(a[i] if isinstance(a, list) else a for a in args)) for i in range(count)
    ]


def fn_pick(mapping: Any, keys: Any) -> list[Any]:
    """pick(map, keys): the values of these keys, in the order of the keys."""
    values = want_map("pick", "map", mapping)
    out = []
    for i, key in enumerate(want_list("pick", "keys", keys)):
        name = want_str("pick", f"key {i}", key)
        if name not in values:
            known = ", ".join(sorted(map(str, values)))
            raise FunctionError(f'pick(): key "{name}" not found; keys: {known}')
        out.append(values[name])
    return out


def fn_pluck(items: Any, key: Any) -> list[Any]:
    """pluck(list, key): the value of one key in each map of the list."""
    name = want_str("pluck", "key", key)
    out = []
    for i, item in enumerate(want_list("pluck", "list", items)):
        element = want_map("pluck", f"element {i}", item)
        if name not in element:
            raise FunctionError(f'pluck(): element {i} has no key "{name}"')
        out.append(element[name])
    return out


def fn_coalesce(*values: Any) -> Any:
    """coalesce(values...): the first argument that is neither null nor an empty string."""
    for value in values:
        if value is not None and value != "":
            return value
    raise FunctionError("coalesce(): every argument is null or an empty string")
