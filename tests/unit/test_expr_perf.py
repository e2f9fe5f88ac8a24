"""The compiled evaluation of a block's attributes (compile_value / evaluate_fast) gives
exactly what evaluate() gives: the same values, UNKNOWN and Secret propagation, shared
values, access tracking, and on any problem the same diagnostics with positions."""

from __future__ import annotations

from typing import Any

import pytest

from kplan.addrs import ROOT, ResourceConfigAddr
from kplan.config.expr import ExprError, compile_text, compile_value, evaluate, evaluate_fast
from kplan.config.model import Positions
from kplan.diagnostics import SourcePos
from kplan.graph import access
from kplan.graph.access import ALL, TrackedList, TrackedMap
from kplan.values import UNKNOWN, Secret

WEB = ResourceConfigAddr(ROOT, "null_resource", "web")
LIST = ResourceConfigAddr(ROOT, "null_resource", "list")


def _scope() -> dict[str, Any]:
    return {
        "var": {"release": "zed", "n": 3, "later": UNKNOWN, "pw": Secret("hunter2"), "none": None},
        "local": {"settings": {"svc": "port=9000"}, "names": ["a", "b"]},
        "host": {"h1": {"address": "10.0.0.1", "name": "h1"}},
        "hosts": ["h1"],
        "groups": {},
        "path": {"module": ".", "root": "."},
        "each": {"key": "h1", "value": "h1"},
        "null_resource": {
            "web": TrackedMap(WEB, {"h1": {"id": "w1"}, "h2": {"id": "w2"}}),
            "list": TrackedList(LIST, [{"id": "l0"}, {"id": "l1"}]),
        },
        "secret_password": {"db": {"value": Secret("s3cr3t")}},
    }


RAWS: list[Any] = [
    {
        "triggers": {
            "host": "${each.key}",
            "address": "${host[each.key].address}",
            "release": "${var.release}",
            "config": "${local.settings.svc}",
            "db": "${secret_password.db.value}",
            "url": "http://${host[each.key].address}:9000/health",
            "web": "${null_resource.web[each.key].id}",
            "first": "${null_resource.list[0].id}",
            "image": "registry/${var.release}",
            "tail": "${var.release}-x",
            "three": "${var.release}/${var.n}/${each.key}",
        },
        "n": 3,
        "flag": True,
        "nothing": None,
        "list": ["${var.n}", "a$${b}", ["${each.key}"]],
        "${each.key}-key": "v",
        "num-${var.n}": 1,
    },
    {"later": "${var.later}", "joined": "x${var.later}", "pw": "pw=${var.pw}"},
    {"${var.later}": "unknown key", "other": "${null_resource.web[each.key].id}"},
    {"all": "${keys(null_resource.web)}", "len": "${length(local.names)}"},
    {"sl": "${local.names[0:1]}", "cond": "${var.n if var.n > 2 else 0}"},
    ["${var.release}", {"k": "${each.value}"}],
    "${var.release}",
    "plain",
    5,
]


@pytest.mark.parametrize("raw", RAWS)
def test_same_values_and_accesses(raw: Any) -> None:
    scope = _scope()
    log, token = access.start()
    try:
        want = evaluate(raw, scope, shared={})
    finally:
        access.stop(token)
    fast = compile_value(raw, {})
    assert fast is not None
    got_log, token = access.start()
    try:
        got = evaluate_fast(fast, raw, scope)
    finally:
        access.stop(token)
    assert got == want
    assert type(got) is type(want)
    assert got_log == log


def test_unknown_and_secret_propagate() -> None:
    fast = compile_value(RAWS[1])
    assert fast is not None
    got = fast(_scope())
    assert got["later"] is UNKNOWN and got["joined"] is UNKNOWN
    assert isinstance(got["pw"], Secret) and got["pw"].reveal() == "pw=hunter2"
    fast = compile_value(RAWS[2])
    assert fast is not None
    assert fast(_scope()) is UNKNOWN  # an unknown key makes the map unknown, as evaluate()


def test_tracked_lookups_are_logged() -> None:
    fast = compile_value(
        {"a": "${null_resource.web[each.key].id}", "b": "${keys(null_resource.web)}"}
    )
    assert fast is not None
    log, token = access.start()
    try:
        fast(_scope())
    finally:
        access.stop(token)
    assert log == {(WEB, "h1"), (WEB, ALL)}


def test_shared_values_are_computed_once_per_block() -> None:
    shared: dict[str, Any] = {}
    raw = {"r": "${var.release}", "k": "${each.key}", "u": "${upper(var.release)}"}
    fast = compile_value(raw, shared)
    assert fast is not None
    scope = _scope()
    first = fast(scope)
    assert shared == {"${var.release}": "zed", "${upper(var.release)}": "ZED"}
    scope["var"] = {**scope["var"], "release": "changed"}  # shared: not read again
    assert fast(scope)["r"] == first["r"] == "zed"
    # evaluate() with the same cache agrees (it is what a failing instance falls back to)
    assert evaluate(raw, scope, shared=shared) == first


def test_syntax_errors_are_not_compiled() -> None:
    assert compile_value({"a": "${var.release"}) is None
    assert compile_value({"a": "${nosuchfunction(1)}"}) is None
    assert compile_text("${ }") is None
    assert compile_value({"a": "${var.release}"}) is not None


POS = Positions(
    SourcePos("main.kp.yaml", 3, 5),
    {
        ("a",): SourcePos("main.kp.yaml", 4, 8),
        ("b",): SourcePos("main.kp.yaml", 5, 8),
        ("c",): SourcePos("main.kp.yaml", 6, 8),
        ("c", "${var.n}"): SourcePos("main.kp.yaml", 7, 10),
    },
)

BROKEN: list[Any] = [
    {"a": "${var.nope}", "b": "${var.release + 1}"},  # two problems, both reported
    {"a": 'x ${null_resource.web["h9"].id}'},  # no such instance
    {"a": "${var.none}", "b": "${var.release}"},  # null interpolated is fine natively
    {"a": "x${var.none}"},  # ...but not in a string
    {"c": {"${var.n}": 1, "3": 2}},  # duplicate key after evaluation
    {"c": {"${var.pw}": 1}},  # a sensitive key
    {"a": "${var.release"},  # syntax
    {"a": "${local.names[1.5]}"},
]


@pytest.mark.parametrize("raw", BROKEN)
def test_problems_give_the_same_diagnostics(raw: Any) -> None:
    def outcome(run: Any) -> Any:
        try:
            return ("ok", run())
        except ExprError as exc:
            return ("error", [(d.summary, d.detail, d.pos, d.code) for d in exc.diagnostics])

    want = outcome(lambda: evaluate(raw, _scope(), POS, shared={}))
    fast = compile_value(raw, {})
    got = outcome(lambda: evaluate_fast(fast, raw, _scope(), POS, shared={}))
    assert got == want
    if want[0] == "error":
        assert all(pos is not None for _, _, pos, _ in want[1])


def test_error_position_points_into_the_string() -> None:
    raw = {"a": "abc ${var.nope}"}
    with pytest.raises(ExprError) as info:
        evaluate_fast(compile_value(raw), raw, _scope(), POS)
    (d,) = info.value.diagnostics
    assert d.pos == SourcePos("main.kp.yaml", 4, 12)
    assert d.code == "unknown-variable"
