"""Unit tests of the JSON plan renderer: Terraform's shape, kplan's additions."""

from __future__ import annotations

import json

from kplan.addrs import ROOT
from kplan.plan.model import Action, OutputChange, Plan, Reason, ResourceChange
from kplan.plan.render_json import plan_to_json, render_plan_json
from kplan.values import UNKNOWN, Secret


def _change(action: Action, before: object, after: object, **kw: object) -> ResourceChange:
    return ResourceChange(ROOT.resource("t", "n", 0), "p", action, before, after, **kw)  # type: ignore[arg-type]


def test_actions_follow_terraform_and_restart_is_an_update() -> None:
    expect = {
        Action.NOOP: ["no-op"],
        Action.CREATE: ["create"],
        Action.UPDATE: ["update"],
        Action.RESTART: ["update"],
        Action.REPLACE: ["delete", "create"],
        Action.DELETE: ["delete"],
    }
    for action, actions in expect.items():
        before = None if action is Action.CREATE else {"a": 1}
        after = None if action is Action.DELETE else {"a": 1}
        rc = plan_to_json(Plan((_change(action, before, after),)))["resource_changes"][0]
        assert rc["change"]["actions"] == actions
        assert rc["kplan_action"] == action.value


def test_unknown_omitted_from_after_and_marked() -> None:
    after = {"id": UNKNOWN, "list": [1, UNKNOWN], "m": {"k": UNKNOWN}}
    change = plan_to_json(Plan((_change(Action.CREATE, None, after),)))["resource_changes"][0]
    assert change["change"]["after"] == {"list": [1, None], "m": {}}
    assert change["change"]["after_unknown"] == {
        "id": True,
        "list": [False, True],
        "m": {"k": True},
    }
    assert change["change"]["before_sensitive"] is False
    assert change["index"] == 0
    assert "module_address" not in change


def test_secrets_masked_and_marked() -> None:
    change = _change(Action.UPDATE, {"pw": Secret("raw-1")}, {"pw": Secret("raw-2")})
    plan = Plan((change,), variables={"v": Secret("raw-3")})
    doc = plan_to_json(plan)
    body = doc["resource_changes"][0]["change"]
    assert body["before"] == {"pw": "(sensitive)"}
    assert body["after_sensitive"] == {"pw": True}
    assert doc["variables"]["v"] == {"value": "(sensitive)"}
    assert "raw-" not in render_plan_json(plan)


def test_nested_secrets_and_unknowns_in_one_value() -> None:
    # Secrets and unknowns side by side at every depth: the values, both shadows and
    # planned_values' sensitive_values come from one walk of the value.
    after = {
        "env": {"PW": Secret("raw-1"), "ID": UNKNOWN, "N": 3},
        "args": ["a", Secret("raw-2"), UNKNOWN, {"k": Secret("raw-3")}],
        "plain": "x",
    }
    before = {"env": {"PW": Secret("raw-0"), "N": 2}, "args": []}
    doc = plan_to_json(Plan((_change(Action.UPDATE, before, after),)))
    body = doc["resource_changes"][0]["change"]
    assert body["before"] == {"args": [], "env": {"N": 2, "PW": "(sensitive)"}}
    assert body["before_sensitive"] == {"args": [], "env": {"PW": True}}
    assert body["after"] == {
        "args": ["a", "(sensitive)", None, {"k": "(sensitive)"}],
        "env": {"N": 3, "PW": "(sensitive)"},
        "plain": "x",
    }
    assert body["after_sensitive"] == {
        "args": [False, True, False, {"k": True}],
        "env": {"PW": True},
    }
    assert body["after_unknown"] == {"args": [False, False, True, {}], "env": {"ID": True}}
    planned = doc["planned_values"]["root_module"]["resources"][0]
    assert planned["values"] == body["after"]
    assert planned["sensitive_values"] == body["after_sensitive"]
    assert "raw-" not in json.dumps(doc)


def test_action_reasons() -> None:
    replace = _change(Action.REPLACE, {"a": 1}, {"a": 2}, replace_paths=(("a",),))
    requested = _change(Action.REPLACE, {"a": 1}, {"a": 1}, reasons=(Reason("requested", "x"),))
    orphan = _change(Action.DELETE, {"a": 1}, None, reasons=(Reason("orphan", "gone"),))
    got = [plan_to_json(Plan((c,)))["resource_changes"][0] for c in (replace, requested, orphan)]
    assert got[0]["action_reason"] == "replace_because_cannot_update"
    assert got[0]["change"]["replace_paths"] == [["a"]]
    assert got[1]["action_reason"] == "replace_by_request"
    assert got[2]["action_reason"] == "delete_because_no_resource_config"


def test_sensitive_output() -> None:
    out = OutputChange("o", Action.UPDATE, "raw-a", "raw-b", sensitive=True)
    body = plan_to_json(Plan((), outputs=(out,)))["output_changes"]["o"]
    assert body["before"] == body["after"] == "(sensitive)"
    assert body["before_sensitive"] is body["after_sensitive"] is True


def test_one_line_no_timestamp() -> None:
    text = render_plan_json(Plan((_change(Action.CREATE, None, {"a": 1}),)))
    assert text.endswith("}\n") and text.count("\n") == 1
    doc = json.loads(text)
    assert "timestamp" not in doc
    assert list(doc)[:2] == ["format_version", "kplan_version"]
