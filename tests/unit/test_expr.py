"""Expressions in configuration strings: evaluation, references, syntax checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kplan.config.expr import (
    ExprError,
    Reference,
    check_syntax,
    compile_text,
    contains_expression,
    evaluate,
    parse_reference,
    references,
)
from kplan.config.model import Positions
from kplan.diagnostics import Diagnostic, KplanError, SourcePos
from kplan.values import UNKNOWN, Secret, contains_secret

SCOPE: dict[str, Any] = {
    "var": {
        "release": "zed",
        "n": 3,
        "f": 2.5,
        "tls": True,
        "hosts": ["ctl1", "ctl2"],
        "m": {"k": {"x": 5}, "with-dash": 1},
        "nothing": None,
        "later": UNKNOWN,
        "pw": Secret("hunter2"),
        "creds": Secret({"user": "admin", "pass": "hunter2"}),
        "partly": ["a", UNKNOWN],
    },
    "local": {"vip": "10.0.0.1"},
    "module": {"db": {"endpoint": "mysql://db:3306", "port": 3306}},
    "hosts": ["ctl1", "ctl2"],
    "groups": {"control": ["ctl1", "ctl2"]},
    "path": {"module": "/mod", "root": "/root"},
    "local_file": {"conf": {"sha256": "abc", "content": "x"}},
    "secret_password": {"db": {"result": Secret("s3cr3t-value")}},
}


def ev(raw: Any, scope: dict[str, Any] | None = None, positions: Positions | None = None) -> Any:
    return evaluate(raw, SCOPE if scope is None else scope, positions)


def err(raw: Any, scope: dict[str, Any] | None = None, positions: Positions | None = None) -> str:
    with pytest.raises(ExprError) as info:
        ev(raw, scope, positions)
    assert isinstance(info.value, KplanError)
    return str(info.value)


# -- native values and interpolation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${var.release}", "zed"),
        ("${ var.n }", 3),
        ("${var.hosts}", ["ctl1", "ctl2"]),
        ("${var.m}", {"k": {"x": 5}, "with-dash": 1}),
        ("${var.tls}", True),
        ("${var.nothing}", None),
        ("${null}", None),
        ("${ [1, 'a', true, none] }", [1, "a", True, None]),
        ("${ {'a': {'b': 1}} }", {"a": {"b": 1}}),
        ("${ (1, 2) }", [1, 2]),
        ("plain text", "plain text"),
        ("", ""),
    ],
)
def test_native_values(raw: str, expected: Any) -> None:
    assert ev(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("release=${var.release}", "release=zed"),
        ("${var.n}${var.n}", "33"),
        ("tls: ${var.tls}", "tls: true"),
        ("f=${var.f} h=${4 / 2}", "f=2.5 h=2"),
        ("hosts=${var.hosts}", 'hosts=["ctl1","ctl2"]'),
        ("m=${var.m.k}", 'm={"x":5}'),
        (" ${var.n} ", " 3 "),
        ("http://${local.vip}:5000/v3", "http://10.0.0.1:5000/v3"),
    ],
)
def test_interpolation(raw: str, expected: str) -> None:
    assert ev(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$${var.n}", "${var.n}"),
        ("a $${b} ${var.n}", "a ${b} 3"),
        ("$$${var.n}", "$${var.n}"),
        ("cost: $5 ${var.n}", "cost: $5 3"),
        ("{{ jinja }} ${var.n}", "{{ jinja }} 3"),
        ("${ '}' }", "}"),
        ("${ \"a}b\" ~ '{' }", "a}b{"),
    ],
)
def test_escapes_and_braces(raw: str, expected: str) -> None:
    assert ev(raw) == expected


def test_walks_structures_and_keys() -> None:
    raw = {
        "name": "${var.release}",
        "list": ["${var.n}", 1, None, {"deep": "x${var.n}"}],
        "${var.release}-key": "${local.vip}",
        "${var.n}": "numeric key",
        7: "int key kept",
    }
    assert ev(raw) == {
        "name": "zed",
        "list": [3, 1, None, {"deep": "x3"}],
        "zed-key": "10.0.0.1",
        "3": "numeric key",
        7: "int key kept",
    }


def test_raw_value_is_not_modified() -> None:
    raw = {"a": ["${var.n}"]}
    ev(raw)
    assert raw == {"a": ["${var.n}"]}


# -- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("2 ** 10", 1024),
        ("-var.n", -3),
        ("'a' ~ 1 ~ true", "a1true"),
        ("'a' + 'b'", "ab"),
        ("[1] + [2]", [1, 2]),
        ("'-' * 3", "---"),
        ("var.n == 3 and var.release != 'x'", True),
        ("1 == true", False),
        ("1 < 2 < 3", True),
        ("3 > 2 > 2", False),
        ("'ctl1' in var.hosts", True),
        ("'k' in var.m", True),
        ("'ed' in var.release", True),
        ("'x' not in var.hosts", True),
        ("not var.tls", False),
        ("var.nothing or 'default'", "default"),
        ("var.n and 'yes'", "yes"),
        ("'a' if var.tls else 'b'", "a"),
        ("'a' if false", None),
        ("var.hosts[1]", "ctl2"),
        ("var.hosts[-1]", "ctl2"),
        ("var.hosts.0", "ctl1"),
        ("var.hosts[0:1]", ["ctl1"]),
        ("var.release[1:]", "ed"),
        ("var.m['with-dash']", 1),
        ("var.m.k['x']", 5),
        ("groups.control", ["ctl1", "ctl2"]),
        ("hosts", ["ctl1", "ctl2"]),
        ("path.module", "/mod"),
        ("module.db.endpoint", "mysql://db:3306"),
        ("local_file.conf.sha256", "abc"),
        ("join(',', var.hosts if true else [])", "ctl1,ctl2"),
    ],
)
def test_operators(expr: str, expected: Any) -> None:
    assert ev("${" + expr + "}") == expected


def test_each_and_count_when_in_scope() -> None:
    scope = dict(SCOPE, each={"key": "k1", "value": {"port": 1}}, count={"index": 2})
    assert ev("${each.key}-${each.value.port}-${count.index}", scope) == "k1-1-2"
    assert ev("${host.address}", dict(SCOPE, host={"address": "10.0.0.5"})) == "10.0.0.5"


def test_file_function_uses_module_path(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("content")
    scope = dict(SCOPE, path={"module": str(tmp_path)})
    assert ev("${file('f.txt')}", scope) == "content"
    assert ev("${upper(file('f.txt'))}", scope) == "CONTENT"


# -- UNKNOWN and Secret ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "${var.later}",
        "${var.later.attr}",
        "${var.later[0]}",
        "${var.later + 1}",
        "${upper(var.later)}",
        "prefix-${var.later}",
        "${'a' if var.later else 'b'}",
        "${var.later == 1}",
        "${not var.later}",
        "${var.later and true}",
        "${join(',', var.partly)}",
        "${var.partly == ['a', 'b']}",
        "${'b' in var.partly}",
        "${ {var.later: 1} }",
        "x${var.partly}",
    ],
)
def test_unknown_propagates(raw: str) -> None:
    assert ev(raw) is UNKNOWN


def test_unknown_inside_collections_stays_partial() -> None:
    assert ev("${length(var.partly)}") == 2
    assert ev("${[var.later, 1]}") == [UNKNOWN, 1]
    assert ev("${var.partly[0]}") == "a"
    assert ev({"a": "${var.later}", "b": 1}) == {"a": UNKNOWN, "b": 1}
    assert ev({"${var.later}": 1}) is UNKNOWN


@pytest.mark.parametrize(
    ("raw", "revealed"),
    [
        ("${var.pw}", "hunter2"),
        ("pw=${var.pw}", "pw=hunter2"),
        ("${upper(var.pw)}", "HUNTER2"),
        ("${var.pw ~ '!'}", "hunter2!"),
        ("${var.pw + '!'}", "hunter2!"),
        ("${var.creds.pass}", "hunter2"),
        ("${var.creds['user']}", "admin"),
        ("${length(var.pw)}", 7),
        ("${var.pw == 'hunter2'}", True),
        ("${'yes' if var.pw else 'no'}", "yes"),
        ("${secret_password.db.result}", "s3cr3t-value"),
        ("${join(':', ['u', var.pw])}", "u:hunter2"),
        ("${var.pw[0:3]}", "hun"),
    ],
)
def test_secret_propagates(raw: str, revealed: Any) -> None:
    result = ev(raw)
    assert isinstance(result, Secret)
    assert result.reveal() == revealed
    assert "hunter2" not in str(result) and "hunter2" not in repr(result)
    assert "hunter2" not in f"{result}"


def test_secret_elements_stay_secret() -> None:
    result = ev("${[var.pw, 'x']}")
    assert result[1] == "x" and isinstance(result[0], Secret)
    assert contains_secret(ev({"a": ["${var.pw}"]}))


@pytest.mark.parametrize(
    "raw",
    [
        "${var.pw + 1}",
        "${var.creds.nope}",
        "${var.pw.x}",
        "${var.pw[99]}",
        "${tonumber(var.pw)}",
        "${lookup(var.creds, 'missing')}",
        "${cidrhost(var.pw, 1)}",
        "${var.m[var.pw]}",
        "${ {var.pw: 1} }",
        "${var.pw > 1}",
    ],
)
def test_errors_never_reveal_secrets(raw: str) -> None:
    message = err(raw)
    assert "hunter2" not in message and "admin" not in message
    assert "Traceback" not in message


# -- errors ------------------------------------------------------------------------------------

POS = Positions(SourcePos("main.kp.yaml", 10, 3), {(): SourcePos("main.kp.yaml", 10, 9)})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("${var.nope}", 'unknown variable "nope"; declared: creds, f, hosts, later, m, n'),
        ("${local.nope}", 'unknown local value "nope"; declared: vip'),
        ("${module.nope.x}", 'unknown module "nope"; module calls: db'),
        ("${module.db.nope}", 'module "db" has no output "nope"; outputs: endpoint, port'),
        ("${local_file.nope.x}", 'unknown resource "local_file.nope"; local_file resources: conf'),
        ("${local_file.conf.nope}", 'local_file.conf has no attribute "nope"; available: co'),
        ("${groups.nope}", 'unknown group "nope"; groups: control'),
        ("${each.key}", "each.key and each.value are only available in a resource or module"),
        ("${count.index}", "count.index is only available in a resource or module with count"),
        ("${self.x}", '"self" is not available here'),
        ("${host.address}", '"host" is only available where a host is set'),
        ("${lcal_file.conf}", 'unknown name "lcal_file": did you mean "local_file"?'),
        ("${var.n.x}", 'var.n is number; it has no attribute "x"'),
        ("${var.nothing.x}", 'var.nothing is null; it has no attribute "x"'),
        ("${var.hosts[5]}", "index 5 out of range for var.hosts (a list of 2)"),
        (
            "${var.hosts.first}",
            'var.hosts is a list; index it with a whole number, not attribute "first"',
        ),
        ("${var.m[1.5]}", "var.m is a map; its keys are strings, not number"),
        ("${1 / 0}", "division by zero"),
        ("${1 % 0}", "modulo by zero"),
        ("${var.n + 'a'}", "cannot add number and string; use ~ or format() to build strings"),
        ("${true + 1}", "cannot add bool and number"),
        ("${'a' % 1}", "operator % needs numbers, got string and number; use format()"),
        ("${-'a'}", "unary - needs a number, got string"),
        ("${1 < 'a'}", "cannot compare number < string"),
        ("${1 in 5}", '"in" needs a list, map or string on the right, got number'),
        ("${10 ** 100000}", "number too large"),
        ("${'a' * 10000000}", "result of * would be longer than 1000000"),
        ("${join(1, 2)}", "join(): sep must be a string, got number"),
        ("${upper()}", "upper(text) takes 1 argument, got 0"),
        ("x${var.nothing}", "cannot interpolate null into a string"),
        ("${ {[1]: 2} }", "map keys must be strings, got list"),
        ("${var.hosts[1:2:0]}", "slice step must not be 0"),
    ],
)
def test_error_messages(raw: str, message: str) -> None:
    text = err(raw)
    assert message in text
    assert "Traceback" not in text and "jinja" not in text.lower()


def test_errors_carry_position_and_code() -> None:
    with pytest.raises(ExprError) as info:
        ev("url=${var.nope}", positions=POS)
    [diag] = info.value.diagnostics
    assert diag.code == "unknown-variable"
    assert diag.pos == SourcePos("main.kp.yaml", 10, 9 + 4)
    assert str(diag).startswith("main.kp.yaml:10:13: unknown variable")
    assert diag.detail == "in ${var.nope}"


def test_errors_in_nested_values_use_node_positions() -> None:
    positions = Positions(
        SourcePos("f.kp.yaml", 1, 1),
        {("env",): SourcePos("f.kp.yaml", 4, 3), ("env", 1): SourcePos("f.kp.yaml", 6, 7)},
    )
    raw = {"env": ["ok", "${1/0}", "${var.nope}"], "other": "${2/0}"}
    with pytest.raises(ExprError) as info:
        evaluate(raw, SCOPE, positions)
    diags = info.value.diagnostics
    assert [str(d.pos) for d in diags] == ["f.kp.yaml:6:7", "f.kp.yaml:4:3", "f.kp.yaml:1:1"]
    assert [d.code for d in diags] == ["division-by-zero", "unknown-variable", "division-by-zero"]


def test_duplicate_keys_after_evaluation() -> None:
    assert 'duplicate key "zed"' in err({"zed": 1, "${var.release}": 2})


# -- syntax ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("${}", "empty expression"),
        ("${ 1 + }", "unexpected end of expression"),
        ("${ a b }", "unexpected 'b' after the expression"),
        ("${ var.x", "unterminated expression"),
        ("${ 'abc }", "unterminated expression"),
        ("${ var.x | upper }", 'filters ("| upper") are not supported; call upper(...) instead'),
        ("${ var.x is defined }", 'tests ("is defined") are not supported'),
        ("${ uper(1) }", 'unknown function "uper"; did you mean "upper"?'),
        ("${ var.f() }", "only functions can be called"),
        ("${ upper(x=1) }", "upper(text) takes positional arguments only"),
        ("${ upper }", '"upper" is a function; call it as upper(text)'),
        ("${ # }", "unexpected character '#'"),
        ("${ [1, 2 }", "unexpected"),
    ],
)
def test_syntax_errors(raw: str, message: str) -> None:
    diags = check_syntax({"a": [raw]}, POS)
    assert len(diags) == 1
    assert message in diags[0].summary
    assert diags[0].code in ("expression-syntax", "unknown-function")
    assert diags[0].pos is not None and diags[0].pos.file == "main.kp.yaml"
    assert message in err(raw)


def test_check_syntax_reports_all_errors_with_columns() -> None:
    positions = Positions(SourcePos("m.kp.yaml", 1, 1), {("a",): SourcePos("m.kp.yaml", 2, 6)})
    diags = check_syntax({"a": "x ${ 1 + } ${ # }", "b": "${ok}"}, positions)
    assert [d.summary for d in diags] == [
        "unexpected end of expression",
        "unexpected character '#'",
    ]
    assert all(isinstance(d, Diagnostic) for d in diags)
    assert diags[0].pos == SourcePos("m.kp.yaml", 2, 6 + len("x ${"))
    assert diags[1].pos is not None and diags[1].pos.col > diags[0].pos.col
    assert check_syntax({"ok": ["${var.x}", "$${not an expr"]}) == []


# -- references --------------------------------------------------------------------------------


def refs(raw: Any) -> list[tuple[str, tuple[str | int, ...]]]:
    return [(r.root, r.parts) for r in references(raw)]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("${var.release}", [("var", ("release",))]),
        ("${var.m['k'].x}", [("var", ("m", "k", "x"))]),
        ("${var.hosts[0]}", [("var", ("hosts", 0))]),
        ("${var.hosts.1}", [("var", ("hosts", 1))]),
        ("${local.vip}", [("local", ("vip",))]),
        ("${module.db.endpoint}", [("module", ("db", "endpoint"))]),
        ("${module.db['endpoint'].x}", [("module", ("db", "endpoint", "x"))]),
        ("${each.key}${each.value.port}", [("each", ("key",)), ("each", ("value", "port"))]),
        ("${count.index}", [("count", ("index",))]),
        ("${host.address}", [("host", ("address",))]),
        ("${hosts}", [("hosts", ())]),
        ("${groups.control}", [("groups", ("control",))]),
        ("${path.module}", [("path", ("module",))]),
        ("${self.id}", [("self", ("id",))]),
        ("${local_file.conf.sha256}", [("resource", ("local_file", "conf", "sha256"))]),
        (
            "${docker_container.api['ctl1'].id}",
            [("resource", ("docker_container", "api", "ctl1", "id"))],
        ),
        ("${secret_password.db}", [("resource", ("secret_password", "db"))]),
        ("${var.m[local.k].x}", [("var", ("m",)), ("local", ("k",))]),
        ("${join(',', var.hosts)}", [("var", ("hosts",))]),
        ("${lookup(var.m, 'k').x}", [("var", ("m",))]),
        ("${[1, 2][0]}", []),
        ("${null} $${var.escaped} ${true}", []),
        (
            "${var.a if local.c else module.m.o}",
            [("local", ("c",)), ("var", ("a",)), ("module", ("m", "o"))],
        ),
        (
            {"${var.k}": ["${local.a}"], "x": "${count.index}"},
            [("var", ("k",)), ("local", ("a",)), ("count", ("index",))],
        ),
    ],
)
def test_references(raw: Any, expected: list[tuple[str, tuple[str | int, ...]]]) -> None:
    assert refs(raw) == expected


def test_references_carry_positions_and_print() -> None:
    [ref] = references("a ${local_file.conf.sha256}", POS)
    assert ref == Reference("resource", ("local_file", "conf", "sha256"))
    assert ref.pos == SourcePos("main.kp.yaml", 10, 11)
    assert str(ref) == "local_file.conf.sha256"
    assert str(Reference("var", ("m", "with-dash", 0))) == 'var.m["with-dash"][0]'


def test_references_never_raise_on_bad_syntax() -> None:
    assert refs(["${ 1 + }", "${var.ok}", "${ unterminated", "${ f( }"]) == [("var", ("ok",))]
    assert refs("${ upper(var.a) | upper }") == [("var", ("a",))]


def test_parse_reference() -> None:
    assert parse_reference("local_file.conf") == Reference("resource", ("local_file", "conf"))
    assert parse_reference("module.db.endpoint").parts == ("db", "endpoint")
    with pytest.raises(ExprError, match="is not a reference"):
        parse_reference("1 + 2")
    with pytest.raises(ExprError):
        parse_reference("var.m[local.k]")


def test_contains_expression() -> None:
    assert contains_expression({"a": ["${var.x}"]})
    assert not contains_expression({"a": ["$${var.x}", "plain", 1]})


# -- speed -------------------------------------------------------------------------------------


def test_an_expression_text_is_compiled_once_and_reused() -> None:
    # Speed is measured by benchmarks/scale.py, not asserted here: what a test
    # can show is that the second evaluation reuses the first one's compilation.
    exprs = ["${var.release}", "${module.db.port}", "${local_file.conf.sha256}", "${var.n + 1}"]
    first = [ev(e) for e in exprs]
    compiled = [compile_text(e) for e in exprs]
    assert all(c is not None for c in compiled)
    assert all(a is b for a, b in zip(compiled, [compile_text(e) for e in exprs], strict=True))
    assert [ev(e) for e in exprs] == first
