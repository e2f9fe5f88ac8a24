"""Unit tests of the text plan renderer (layout details the goldens do not isolate)."""

from __future__ import annotations

from kplan.addrs import ROOT
from kplan.plan.model import Action, OutputChange, Plan, Reason, ResourceChange
from kplan.plan.render_text import render_plan_text
from kplan.values import UNKNOWN, Secret


def _change(action: Action, before: object, after: object, **kw: object) -> ResourceChange:
    addr = ROOT.child("m", "k").resource("t", "n")
    return ResourceChange(addr, "p", action, before, after, **kw)  # type: ignore[arg-type]


def test_summary_line_always_counts_restarts() -> None:
    plan = Plan((_change(Action.CREATE, None, {"a": 1}),))
    assert "Plan: 1 to add, 0 to change, 0 to restart, 0 to destroy.\n" in render_plan_text(plan)


def test_module_address_in_comment_and_local_name_in_block() -> None:
    text = render_plan_text(Plan((_change(Action.CREATE, None, {"a": 1}),)))
    assert '  # module.m["k"].t.n will be created\n  + resource "t" "n" {\n' in text


def test_legend_lists_only_used_symbols() -> None:
    text = render_plan_text(Plan((_change(Action.RESTART, {"a": 1}, {"a": 1}),)))
    assert "  ↻ restart\n" in text
    assert "+ create" not in text and "- destroy" not in text


def test_reasons_are_comment_lines_and_forces_replacement_is_inline() -> None:
    change = _change(
        Action.REPLACE,
        {"image": "a", "id": "1"},
        {"image": "b", "id": UNKNOWN},
        reasons=(Reason("trigger", "config keystone.conf changed"),),
        replace_paths=(("image",),),
        host="ctl1",
    )
    text = render_plan_text(Plan((change,)))
    assert "  # (because config keystone.conf changed)\n  # on host ctl1\n" in text
    assert '      ~ image = "a" -> "b" # forces replacement\n' in text
    assert '      ~ id    = "1" -> (known after apply)\n' in text


def test_sensitive_values_print_as_sensitive_value() -> None:
    change = _change(Action.UPDATE, {"pw": Secret("old-raw")}, {"pw": Secret("new-raw")})
    out = OutputChange("o", Action.CREATE, None, "x", sensitive=True)
    text = render_plan_text(Plan((change,), outputs=(out,)))
    assert "~ pw = (sensitive value)" in text
    assert "  + o = (sensitive value)\n" in text
    assert "raw" not in text


def test_unchanged_secret_is_hidden_not_shown() -> None:
    change = _change(Action.UPDATE, {"pw": Secret("x"), "a": 1}, {"pw": Secret("x"), "a": 2})
    text = render_plan_text(Plan((change,)))
    assert "# (1 unchanged attribute hidden)" in text
    assert "pw" not in text


def test_color_only_when_asked() -> None:
    plan = Plan((_change(Action.CREATE, None, {"a": 1}),))
    assert "\x1b[" not in render_plan_text(plan)
    colored = render_plan_text(plan, color=True)
    assert "\x1b[32m+\x1b[0m" in colored


def test_no_changes_message() -> None:
    text = render_plan_text(Plan((_change(Action.NOOP, {"a": 1}, {"a": 1}),)))
    assert text.startswith("No changes. Your infrastructure matches the configuration.\n")
    assert "found no differences, so no changes are needed." in text


def test_no_trailing_whitespace() -> None:
    change = _change(Action.UPDATE, {"c": "a\n\nb\n"}, {"c": "a\n\nc\n"})
    text = render_plan_text(Plan((change,)))
    assert all(line == line.rstrip() for line in text.splitlines())


def test_a_create_first_replace_shows_plus_minus_and_its_legend() -> None:
    first = _change(Action.REPLACE, {"p": "/a"}, {"p": "/b"}, replace_order="create_before_destroy")
    other = ResourceChange(ROOT.resource("t", "o"), "p", Action.REPLACE, {"p": "/a"}, {"p": "/b"})
    text = render_plan_text(Plan((first, other)))
    assert "-/+ destroy and then create replacement\n" in text
    assert "+/- create replacement and then destroy\n" in text
    assert '\n+/- resource "t" "n" {\n' in text and '\n-/+ resource "t" "o" {\n' in text
    only_first = render_plan_text(Plan((first,)))
    assert "-/+" not in only_first and "+/- create replacement and then destroy" in only_first


def test_map_keys_print_in_text_order_whatever_their_type() -> None:
    # The fast paths (string keys sorted as themselves, labels cached for strings)
    # must keep the order and quoting of the general one: by text, quoted when not
    # an identifier, "10" before "9".
    after = {"m": {9: "a", 10: "b"}, "s": {"b": 1, "a b": 2, "a": True}, "x": {1: 1, "1": 2}}
    text = render_plan_text(Plan((_change(Action.CREATE, None, after),)))
    assert '+ "10" = "b"\n' in text and text.index('"10"') < text.index('"9"')
    assert text.index("+ a     = true") < text.index('+ "a b" = 2') < text.index("+ b     = 1")
    assert text.count("1 = ") == 0 and text.count('"1" = ') == 2  # both keys, label quoted


def test_scalars_print_as_json_does() -> None:
    after = {"f": 1.5, "i": -3, "n": float("nan"), "q": 'say "hi"\t', "t": False, "u": "é"}
    text = render_plan_text(Plan((_change(Action.CREATE, None, after),)))
    for line in ("f = 1.5", "i = -3", "n = NaN", 'q = "say \\"hi\\"\\t"', "t = false", 'u = "é"'):
        assert f"+ {line}\n" in text
