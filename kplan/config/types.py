"""The variable type system: type strings, parsed and used to convert values.

A type is written as in Terraform: ``string``, ``number``, ``bool``, ``any``,
``list(T)``, ``set(T)``, ``map(T)`` and ``object({name = T, ...})`` (``name:
T`` works too). :func:`parse_type` turns the text into a :class:`TypeSpec`;
:func:`convert` checks a value against it and converts where Terraform would
("5" → 5 for a number, "true" → True for a bool, 5 → "5" for a string).
``null`` is valid for every type. :data:`~kplan.values.UNKNOWN` passes
through; a :class:`~kplan.values.Secret` is converted inside and re-wrapped,
and its value never appears in an error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from kplan.values import UNKNOWN, Secret

__all__ = [
    "ANY",
    "TYPE_FORMS",
    "TypeConversionError",
    "TypeParseError",
    "TypeSpec",
    "convert",
    "describe_value",
    "parse_type",
]

TYPE_FORMS = "string, number, bool, list(T), set(T), map(T), object({...}), any"
_PRIMITIVES = ("string", "number", "bool", "any")
_COLLECTIONS = ("list", "set", "map")
_TOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_-]*)|(?P<punct>[(){},=:]))")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class TypeParseError(ValueError):
    """A type string that is not a type; ``offset`` is the 0-based character of the problem."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class TypeConversionError(TypeError):
    """A value that does not fit a type; the message names the path and what was expected."""


@dataclass(frozen=True, slots=True)
class TypeSpec:
    kind: str  # string | number | bool | any | list | set | map | object
    elem: TypeSpec | None = None  # list, set, map
    attrs: tuple[tuple[str, TypeSpec], ...] = ()  # object, in written order

    def __str__(self) -> str:
        if self.kind in _COLLECTIONS:
            return f"{self.kind}({self.elem})"
        if self.kind == "object":
            inner = ", ".join(f"{k} = {t}" for k, t in self.attrs)
            return f"object({{{inner}}})"
        return self.kind


ANY = TypeSpec("any")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def peek(self) -> tuple[str, int]:
        m = _TOKEN.match(self.text, self.i)
        if m is None:
            rest = self.text[self.i :].lstrip()
            at = len(self.text) - len(rest)
            return ("" if not rest else "\0" + rest[0], at)
        return (m.group("name") or m.group("punct"), m.start(m.lastindex or 0))

    def next(self) -> tuple[str, int]:
        tok, at = self.peek()
        m = _TOKEN.match(self.text, self.i)
        self.i = m.end() if m else len(self.text)
        return tok, at

    def expect(self, want: str) -> None:
        tok, at = self.next()
        if tok != want:
            raise TypeParseError(f"expected {want!r} {_found(tok)}", at)

    def type(self) -> TypeSpec:
        tok, at = self.next()
        if tok in _PRIMITIVES:
            return ANY if tok == "any" else TypeSpec(tok)
        if tok in _COLLECTIONS:
            self.expect("(")
            elem = self.type()
            self.expect(")")
            return TypeSpec(tok, elem)
        if tok == "object":
            return self.object()
        raise TypeParseError(f"expected a type ({TYPE_FORMS}) {_found(tok)}", at)

    def object(self) -> TypeSpec:
        self.expect("(")
        self.expect("{")
        attrs: dict[str, TypeSpec] = {}
        while True:
            tok, at = self.next()
            if tok == "}":
                break
            if not tok or not (tok[0].isalpha() or tok[0] == "_"):
                raise TypeParseError(f"expected an attribute name or '}}' {_found(tok)}", at)
            if tok in attrs:
                raise TypeParseError(f"attribute {tok!r} is listed twice", at)
            sep, sep_at = self.next()
            if sep not in ("=", ":"):
                raise TypeParseError(f"expected '=' or ':' after {tok!r} {_found(sep)}", sep_at)
            attrs[tok] = self.type()
            if self.peek()[0] == ",":
                self.next()
        self.expect(")")
        return TypeSpec("object", attrs=tuple(attrs.items()))


def _found(tok: str) -> str:
    if not tok:
        return "but the type ends here"
    return f"but found {tok.lstrip(chr(0))!r}"


def parse_type(text: str) -> TypeSpec:
    """Parse a type string; raises :class:`TypeParseError` with a readable message."""
    if not isinstance(text, str) or not text.strip():
        raise TypeParseError(f"expected a type ({TYPE_FORMS})")
    parser = _Parser(text)
    try:
        spec = parser.type()
    except RecursionError:
        raise TypeParseError("the type is nested too deeply") from None
    tok, at = parser.peek()
    if tok:
        raise TypeParseError(f"unexpected {tok.lstrip(chr(0))!r} after the type {spec}", at)
    return spec


def describe_value(value: Any, *, show: bool = True) -> str:
    """``string "x"``, ``number 5``, ``bool true``, ``null``, ``list``, ``map``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {str(value).lower()}" if show else "bool"
    if isinstance(value, int | float):
        return f"number {value}" if show else "number"
    if isinstance(value, str):
        if not show:
            return "string"
        shown = value if len(value) <= 40 else value[:37] + "..."
        return "string " + json.dumps(shown, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def _fail(path: str, want: str, value: Any, show: bool) -> TypeConversionError:
    return TypeConversionError(f"{path}: expected {want}, got {describe_value(value, show=show)}")


def _to_string(value: Any, path: str, show: bool) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise _fail(path, "string", value, show)


def _to_number(value: Any, path: str, show: bool) -> int | float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        if re.fullmatch(r"[+-]?\d+", value):
            return int(value)
        number = float(value)
        if math.isfinite(number):
            return number
    raise _fail(path, "number", value, show)


def _to_bool(value: Any, path: str, show: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise _fail(path, "bool", value, show)


def _key_path(path: str, key: str) -> str:
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _to_collection(value: Any, spec: TypeSpec, path: str, show: bool) -> Any:
    elem = spec.elem or ANY
    if spec.kind == "map":
        if not isinstance(value, dict):
            raise _fail(path, str(spec), value, show)
        return {str(k): _convert(v, elem, _key_path(path, str(k)), show) for k, v in value.items()}
    if not isinstance(value, list | tuple):
        raise _fail(path, str(spec), value, show)
    items = [_convert(v, elem, f"{path}[{i}]", show) for i, v in enumerate(value)]
    if spec.kind == "set":
        unique: list[Any] = []
        for item in items:
            if item not in unique:
                unique.append(item)
        items = unique
    return items


def _to_object(value: Any, spec: TypeSpec, path: str, show: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "object", value, show)
    out: dict[str, Any] = {}
    for name, attr in spec.attrs:
        if name not in value:
            raise TypeConversionError(f"{path}: attribute {name!r} is required ({spec})")
        out[name] = _convert(value[name], attr, f"{path}.{name}", show)
    return out


def _convert(value: Any, spec: TypeSpec, path: str, show: bool) -> Any:
    if value is None or value is UNKNOWN:
        return value
    if isinstance(value, Secret):
        return Secret(_convert(value.reveal(), spec, path, False))
    kind = spec.kind
    if kind == "any":
        return value
    if kind == "string":
        return _to_string(value, path, show)
    if kind == "number":
        return _to_number(value, path, show)
    if kind == "bool":
        return _to_bool(value, path, show)
    if kind == "object":
        return _to_object(value, spec, path, show)
    return _to_collection(value, spec, path, show)


def convert(value: Any, spec: TypeSpec, path: str = "value") -> Any:
    """Return ``value`` converted to ``spec``; raises :class:`TypeConversionError`.

    ``path`` names the value in the error, e.g. ``var.ports`` gives
    ``var.ports[2]: expected number, got string "x"``.
    """
    try:
        return _convert(value, spec, path, True)
    except RecursionError:
        raise TypeConversionError(f"{path}: the value is nested too deeply") from None
