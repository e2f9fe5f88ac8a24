"""Fuzzing: whatever a configuration string holds, expressions give a value or an ExprError."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kplan.config.expr import ExprError, check_syntax, evaluate, references
from kplan.config.model import Positions
from kplan.diagnostics import Diagnostic, SourcePos
from kplan.values import UNKNOWN, Secret

SCOPE: dict[str, Any] = {
    "var": {"a": 1, "s": "text", "l": [1, "x", None], "m": {"k": [True]}, "u": UNKNOWN},
    "local": {"p": Secret("hunter2"), "z": 0},
    "module": {"db": {"out": "v"}},
    "local_file": {"conf": {"sha256": "abc"}},
    "path": {"module": "/nonexistent"},
}
POS = Positions(SourcePos("fuzz.kp.yaml", 1, 1))

TOKENS = [
    "var", "local", "module", "each", "count", "self", "local_file", "conf", "a", "s", "l", "m",
    "k", "u", "p", "z", "db", "out", "sha256", ".", "[", "]", "(", ")", "{", "}", ",", ":", "'",
    '"', "+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", " in ", " not ",
    " and ", " or ", " if ", " else ", "|", " is ", "0", "1", "-1", "2.5", "1e999", "null",
    "true", "none", "upper", "join", "length", "lookup", "format", "range", "tonumber",
    "cidrhost", "file", "templatefile", "jsondecode", "element", "'%s'", "'x'", "$", "${", "$${",
    "\\", "\n", " ", "__class__", "_", "0x", "[:]", "**99999",
]  # fmt: skip

expression = st.lists(st.sampled_from(TOKENS), max_size=25).map("".join)
template = st.lists(
    st.one_of(st.text(max_size=10), expression.map(lambda e: "${" + e + "}")), max_size=4
).map("".join)
raw_values = st.recursive(
    st.one_of(template, st.text(max_size=20), st.integers(), st.none(), st.booleans()),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(template, children, max_size=3)
    ),
    max_leaves=8,
)


def _check_evaluate(raw: Any) -> None:
    try:
        evaluate(raw, SCOPE, POS)
    except ExprError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.pos is not None
            assert "internal error" not in d.summary, d
            assert "hunter2" not in str(d)
            assert "Traceback" not in str(d)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_values)
def test_random_values_evaluate_or_raise_expr_error(raw: Any) -> None:
    _check_evaluate(raw)
    assert all(isinstance(d, Diagnostic) for d in check_syntax(raw, POS))
    assert isinstance(references(raw, POS), list)


@settings(max_examples=600, deadline=None)
@given(expression)
def test_random_expressions(expr: str) -> None:
    raw = "${" + expr + "}"
    _check_evaluate(raw)
    _check_evaluate("x" + raw)
    diags = check_syntax(raw, POS)
    assert all(d.code in ("expression-syntax", "unknown-function") for d in diags)
    assert isinstance(references(raw), list)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_random_text(text: str) -> None:
    _check_evaluate(text)
    _check_evaluate("${" + text + "}")
    check_syntax(text, POS)
    references(text)
