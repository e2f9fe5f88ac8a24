"""The variable type system: parsing type strings and converting values."""

from __future__ import annotations

from typing import Any

import pytest

from kplan.config.types import (
    TypeConversionError,
    TypeParseError,
    TypeSpec,
    convert,
    parse_type,
)
from kplan.values import UNKNOWN, Secret


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("string", "string"),
        (" number ", "number"),
        ("list(string)", "list(string)"),
        ("set( number )", "set(number)"),
        ("map(list(bool))", "map(list(bool))"),
        ("object({a = string, b: number})", "object({a = string, b = number})"),
        ("object({\n  a = string,\n  b = map(any),\n})", "object({a = string, b = map(any)})"),
        ("object({})", "object({})"),
    ],
)
def test_parse_type(text: str, canonical: str) -> None:
    spec = parse_type(text)
    assert str(spec) == canonical
    assert parse_type(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        (
            "integer",
            "expected a type (string, number, bool, list(T), set(T), map(T), "
            "object({...}), any) but found 'integer'",
            0,
        ),
        ("list(string", "expected ')' but the type ends here", 11),
        ("list(string))", "unexpected ')' after the type list(string)", 12),
        ("map()", "but found ')'", 4),
        ("object({a = string a = number})", "attribute 'a' is listed twice", 19),
        ("object({a string})", "expected '=' or ':' after 'a' but found 'string'", 10),
        ("list[string]", "expected '(' but found '['", 4),
        ("", "expected a type", 0),
    ],
)
def test_parse_type_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(TypeParseError) as err:
        parse_type(text)
    assert message in str(err.value)
    assert err.value.offset == offset


def test_deeply_nested_type_is_an_error_not_a_crash() -> None:
    with pytest.raises(TypeParseError, match="nested too deeply"):
        parse_type("list(" * 5000 + "string" + ")" * 5000)


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("number", "5", 5),
        ("number", "-2.5", -2.5),
        ("number", 7, 7),
        ("bool", "true", True),
        ("bool", "false", False),
        ("string", 5, "5"),
        ("string", 2.0, "2"),
        ("string", 2.5, "2.5"),
        ("string", True, "true"),
        ("list(number)", ["1", 2], [1, 2]),
        ("set(string)", ["a", "b", "a"], ["a", "b"]),
        ("map(number)", {"a": "1"}, {"a": 1}),
        ("object({a = number})", {"a": "1", "extra": 2}, {"a": 1}),
        ("any", {"x": [1]}, {"x": [1]}),
        ("number", None, None),
        ("list(string)", UNKNOWN, UNKNOWN),
        ("list(string)", [UNKNOWN, None], [UNKNOWN, None]),
    ],
)
def test_convert(type_: str, value: Any, expected: Any) -> None:
    assert convert(value, parse_type(type_), "var.x") == expected


@pytest.mark.parametrize(
    ("type_", "value", "message"),
    [
        ("list(number)", [1, 2, "x"], 'var.x[2]: expected number, got string "x"'),
        ("number", "five", 'var.x: expected number, got string "five"'),
        ("number", True, "var.x: expected number, got bool true"),
        ("bool", "yes", 'var.x: expected bool, got string "yes"'),
        ("bool", 1, "var.x: expected bool, got number 1"),
        ("string", [1], "var.x: expected string, got list"),
        ("list(string)", "a", 'var.x: expected list(string), got string "a"'),
        ("map(bool)", {"k": "no"}, 'var.x["k"]: expected bool, got string "no"'),
        (
            "object({a = string, b = number})",
            {"a": "x"},
            "var.x: attribute 'b' is required (object({a = string, b = number}))",
        ),
        (
            "object({a = list(number)})",
            {"a": [1, "z"]},
            'var.x.a[1]: expected number, got string "z"',
        ),
        ("object({a = string})", [1], "var.x: expected object, got list"),
    ],
)
def test_convert_errors(type_: str, value: Any, message: str) -> None:
    with pytest.raises(TypeConversionError) as err:
        convert(value, parse_type(type_), "var.x")
    assert str(err.value) == message


def test_secret_is_converted_inside_and_never_shown() -> None:
    converted = convert(Secret("5"), parse_type("number"), "var.p")
    assert isinstance(converted, Secret) and converted.reveal() == 5
    with pytest.raises(TypeConversionError) as err:
        convert(Secret("hunter2"), parse_type("number"), "var.p")
    assert str(err.value) == "var.p: expected number, got string"
    assert "hunter2" not in str(err.value)


def test_typespec_shapes() -> None:
    spec = parse_type("object({a = list(number)})")
    assert spec == TypeSpec("object", attrs=(("a", TypeSpec("list", TypeSpec("number"))),))
