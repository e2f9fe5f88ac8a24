"""The expression function library, called directly through call_function()."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest

from kplan.config.functions import FUNCTIONS, FunctionError, call_function
from kplan.values import UNKNOWN, Secret


def call(name: str, *args: Any, base_dir: str | None = None) -> Any:
    return call_function(name, list(args), base_dir=base_dir)


def error_of(name: str, *args: Any) -> str:
    with pytest.raises(FunctionError) as info:
        call(name, *args)
    return info.value.message


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("format", ("%s-%d", "a", 3), "a-3"),
        ("format", ("%v|%v|%v", [1, "a"], True, None), '[1,"a"]|true|null'),
        ("format", ("%q", 'a"b'), '"a\\"b"'),
        ("format", ("%.2f%%", 1.5), "1.50%"),
        ("format", ("[%5s][%-3s][%03d]", "ab", "x", 7), "[   ab][x  ][007]"),
        ("format", ("%s", 2.0), "2"),
        ("join", (",", ["a", 1, True]), "a,1,true"),
        ("join", ("-", []), ""),
        ("split", (",", "a,b,,c"), ["a", "b", "", "c"]),
        ("replace", ("a.b.c", ".", "/"), "a/b/c"),
        ("upper", ("abc",), "ABC"),
        ("lower", ("AbC",), "abc"),
        ("trim", ("  a \n",), "a"),
        ("trim", ("xxaxx", "x"), "a"),
        ("trimspace", ("\t a b \n",), "a b"),
        ("startswith", ("keystone", "key"), True),
        ("endswith", ("keystone", "key"), False),
        ("substr", ("hello", 1, 3), "ell"),
        ("substr", ("hello", -3, -1), "llo"),
        ("indent", (2, "a\nb\nc"), "a\n  b\n  c"),
        ("tostring", (5,), "5"),
        ("tostring", (False,), "false"),
        ("tostring", (None,), None),
        ("tonumber", ("42",), 42),
        ("tonumber", ("-1.5e3",), -1500.0),
        ("tonumber", (7,), 7),
        ("min", (3, 1, 2), 1),
        ("max", ([3, 9, 2],), 9),
        ("abs", (-4,), 4),
        ("range", (3,), [0, 1, 2]),
        ("range", (1, 7, 2), [1, 3, 5]),
        ("range", (3, 0, -1), [3, 2, 1]),
        ("length", ([1, 2, 3],), 3),
        ("length", ({"a": 1},), 1),
        ("length", ("héllo",), 5),
        ("keys", ({"b": 1, "a": 2},), ["a", "b"]),
        ("values", ({"b": 1, "a": 2},), [2, 1]),
        ("lookup", ({"a": 1}, "a"), 1),
        ("lookup", ({"a": 1}, "b", "d"), "d"),
        ("merge", ({"a": 1, "b": 1}, None, {"b": 2}), {"a": 1, "b": 2}),
        ("concat", ([1], [], [2, 3]), [1, 2, 3]),
        ("contains", (["a", "b"], "b"), True),
        ("contains", ([1], True), False),
        ("flatten", ([1, [2, [3, []]], 4],), [1, 2, 3, 4]),
        ("distinct", ([1, 2, 1, "1", True],), [1, 2, "1", True]),
        ("sort", (["b", "a", "c"],), ["a", "b", "c"]),
        ("sort", ([3, 1.5, 2],), [1.5, 2, 3]),
        ("toset", (["b", "a", "b"],), ["a", "b"]),
        ("element", (["a", "b", "c"], 4), "b"),
        ("zipmap", (["a", "b"], [1, 2]), {"a": 1, "b": 2}),
        ("coalesce", (None, "", "x", "y"), "x"),
        ("formatlist", ("%s:%d", ["a", "b"], 5), ["a:5", "b:5"]),
        ("formatlist", ("%s=%s", ["a", "b"], [1, 2]), ["a=1", "b=2"]),
        ("formatlist", ("%s", []), []),
        ("pick", ({"a": 1, "b": 2, "c": 3}, ["c", "a"]), [3, 1]),
        ("pluck", ([{"x": 1}, {"x": 2, "y": 3}], "x"), [1, 2]),
        ("tojson", ({"b": [1, True, None], "a": "é"},), '{"b":[1,true,null],"a":"é"}'),
        ("jsonencode", ([1],), "[1]"),
        ("jsondecode", ('{"a": [1, 2.5]}',), {"a": [1, 2.5]}),
        ("yamlencode", ({"a": [1, "x"]},), "a:\n- 1\n- x\n"),
        ("yamldecode", ("a: [1, x]\n",), {"a": [1, "x"]}),
        ("base64encode", ("héllo",), base64.b64encode("héllo".encode()).decode()),
        ("base64decode", ("aMOpbGxv",), "héllo"),
        ("sha256", ("abc",), hashlib.sha256(b"abc").hexdigest()),
        ("cidrhost", ("10.0.0.0/24", 5), "10.0.0.5"),
        ("cidrhost", ("10.0.0.0/24", -2), "10.0.0.254"),
        ("cidrhost", ("fd00::/64", 17), "fd00::11"),
        ("cidrsubnet", ("10.0.0.0/16", 8, 2), "10.0.2.0/24"),
        ("cidrsubnet", ("10.1.0.0/16", 4, 15), "10.1.240.0/20"),
        ("cidrsubnet", ("fd00::/48", 16, 1), "fd00:0:0:1::/64"),
    ],
)
def test_function_results(name: str, args: tuple[Any, ...], expected: Any) -> None:
    assert call(name, *args) == expected


def test_every_function_has_a_docstring_and_is_tested() -> None:
    for fn in FUNCTIONS.values():
        assert fn.doc, fn.name
        assert fn.usage.startswith(fn.name + "(")
    assert "uuid" not in FUNCTIONS and "timestamp" not in FUNCTIONS


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("join", (1, ["a"]), "join(): sep must be a string, got number"),
        ("join", (",", [["a"]]), "element 0 is list"),
        ("upper", (None,), "must be a string, got null"),
        ("split", ("", "a"), "sep must not be empty"),
        ("length", (5,), "needs a list, map or string, got number"),
        ("lookup", ({"a": 1, "b": 2}, "c"), 'key "c" not found and no default given; keys: a, b'),
        ("merge", ({}, [1]), "argument 2 must be a map, got list"),
        ("range", (0, 10, 0), "step must not be 0"),
        ("range", (10**6,), "more than 100000 elements"),
        ("sort", ([1, "a"],), "all strings or all numbers"),
        ("element", ([], 0), "the list is empty"),
        ("zipmap", (["a"], [1, 2]), "1 keys but 2 values"),
        ("coalesce", (None, ""), "every argument is null or an empty string"),
        ("formatlist", ("%s%s", ["a"], ["b", "c"]), "different lengths (1, 2)"),
        ("pick", ({"a": 1}, ["b"]), 'key "b" not found; keys: a'),
        ("pluck", ([{"x": 1}, {"y": 2}], "x"), 'element 1 has no key "x"'),
        ("pluck", ([1], "x"), "element 0 must be a map, got number"),
        ("tonumber", ("12abc",), "not a number"),
        ("tonumber", (True,), "must be a string, got bool"),
        ("min", (), "needs at least one number"),
        ("min", (1, "2"), "argument 2 must be a number, got string"),
        ("format", ("%s %s", "a"), "not enough arguments"),
        ("format", ("%s", "a", "b"), "2 values given but the spec uses 1"),
        ("format", ("%d", 1.5), "must be a whole number"),
        ("format", ("%y", 1), 'unsupported verb "%y"'),
        ("jsondecode", ("{bad",), "invalid JSON at line 1 column 2"),
        ("yamldecode", ("a: [1",), "invalid YAML"),
        ("base64decode", ("!!",), "not valid Base64"),
        ("cidrhost", ("10.0.0.0/30", 4), "out of range for a prefix with 4 addresses"),
        ("cidrhost", ("nonsense", 1), "prefix must be an address prefix"),
        ("cidrsubnet", ("10.0.0.0/30", 4, 0), "newbits must be between 0 and 2"),
        ("cidrsubnet", ("10.0.0.0/16", 2, 4), "netnum must be between 0 and 3"),
        ("tojson", (float("nan"),), "cannot be encoded as JSON"),
        ("substr", ("abc", 0, -2), "length must be -1"),
        ("indent", (-1, "a"), "spaces must be between 0 and 1000"),
    ],
)
def test_function_errors(name: str, args: tuple[Any, ...], fragment: str) -> None:
    assert fragment in error_of(name, *args)


def test_argument_count_is_checked() -> None:
    assert error_of("join", ",") == "join(sep, items) takes 2 arguments, got 1"
    assert error_of("lookup", {}) == "lookup(mapping, key, default?) takes 2 to 3 arguments, got 1"
    assert error_of("format") == "format(spec, args...) takes at least 1 argument, got 0"


def test_unknown_function_suggests_a_name() -> None:
    assert error_of("uppr", "a") == 'unknown function "uppr"; did you mean "upper"?'


def test_unknown_argument_gives_unknown() -> None:
    assert call("upper", UNKNOWN) is UNKNOWN
    assert call("join", ",", ["a", UNKNOWN]) is UNKNOWN
    assert call("lookup", {"a": UNKNOWN}, "a") is UNKNOWN


def test_structural_functions_keep_unknown_elements() -> None:
    assert call("length", [UNKNOWN, 1]) == 2
    assert call("keys", {"a": UNKNOWN}) == ["a"]
    assert call("concat", [UNKNOWN], [1]) == [UNKNOWN, 1]
    assert call("lookup", {"a": UNKNOWN, "b": 2}, "b") == 2


def test_secret_arguments_give_secret_results() -> None:
    result = call("upper", Secret("hunter2"))
    assert isinstance(result, Secret)
    assert result.reveal() == "HUNTER2"
    assert "HUNTER2" not in str(result) and "hunter2" not in repr(result)
    joined = call("join", ":", ["user", Secret("hunter2")])
    assert isinstance(joined, Secret) and joined.reveal() == "user:hunter2"
    assert call("length", Secret([1, 2])) == Secret(2)
    # Structural functions keep secret elements as they are.
    assert call("concat", [Secret("a")], ["b"]) == [Secret("a"), "b"]
    assert call("lookup", {"pw": Secret("x")}, "pw") == Secret("x")


def test_errors_with_secret_arguments_hide_values() -> None:
    with pytest.raises(FunctionError) as info:
        call("lookup", Secret({"hunter2": 1}), "nope")
    assert "hunter2" not in str(info.value) and "nope" not in info.value.message
    with pytest.raises(FunctionError) as info2:
        call("file", Secret("/nonexistent/hunter2"))
    assert "hunter2" not in info2.value.message


def test_file_reads_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello\n")
    assert call("file", "a.txt", base_dir=str(tmp_path)) == "hello\n"
    assert call("file", str(tmp_path / "a.txt")) == "hello\n"
    with pytest.raises(FunctionError, match=r"cannot read .*missing\.txt: No such file"):
        call("file", "missing.txt", base_dir=str(tmp_path))
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(FunctionError, match="is not UTF-8 text"):
        call("file", "bin", base_dir=str(tmp_path))


def test_templatefile_renders_in_sandbox(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text(
        "[db]\nhost = {{ host }}\n{% for p in ports %}port={{ p }}\n{% endfor %}"
        "{{ join(',', names) }} {{ names | length }}\n"
    )
    out = call("templatefile", "t.j2", {"host": "h1", "ports": [1, 2], "names": ["a", "b"]},
               base_dir=str(tmp_path))  # fmt: skip
    assert out == "[db]\nhost = h1\nport=1\nport=2\na,b 2\n"


def test_templatefile_errors_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "u.j2").write_text("line1\nline2 {{ missing }}\n")
    (tmp_path / "s.j2").write_text("a\n{% if x %}\n")
    (tmp_path / "x.j2").write_text("{{ ''.__class__.__mro__ }}\n")
    with pytest.raises(FunctionError) as info:
        call("templatefile", str(tmp_path / "u.j2"), {})
    assert f"{tmp_path / 'u.j2'}:2:" in info.value.message
    assert "'missing' is undefined" in info.value.message
    with pytest.raises(FunctionError, match=r"s\.j2:\d+: syntax error"):
        call("templatefile", str(tmp_path / "s.j2"), {"x": 1})
    with pytest.raises(FunctionError, match="unsafe"):
        call("templatefile", str(tmp_path / "x.j2"), {})
    with pytest.raises(FunctionError, match="not found"):
        call("templatefile", str(tmp_path / "none.j2"), {})


def test_templatefile_with_secret_vars(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("pw={{ pw }}\n")
    (tmp_path / "bad.j2").write_text("{{ pw | int + 'x' }}\n")
    result = call("templatefile", str(tmp_path / "t.j2"), {"pw": Secret("hunter2")})
    assert isinstance(result, Secret) and result.reveal() == "pw=hunter2\n"
    with pytest.raises(FunctionError) as info:
        call("templatefile", str(tmp_path / "bad.j2"), {"pw": Secret("hunter2")})
    assert "hunter2" not in info.value.message


def test_a_sensitive_value_with_unknown_parts_keeps_its_known_parts_secret() -> None:
    from kplan.config.functions_base import mark_sensitive
    from kplan.values import contains_unknown

    value = mark_sensitive({"url": "http://x", "password": UNKNOWN, "list": [1, UNKNOWN]})
    assert value["password"] is UNKNOWN and value["list"][1] is UNKNOWN
    assert isinstance(value["url"], Secret) and value["url"].reveal() == "http://x"
    assert isinstance(value["list"][0], Secret)
    whole = mark_sensitive({"a": 1})
    assert isinstance(whole, Secret) and not contains_unknown(whole.reveal())
