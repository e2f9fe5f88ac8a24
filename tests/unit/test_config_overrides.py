"""config_overrides(): kolla-ansible style override files, and the plan's warning for a
file under the folder that no config reads."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kplan.config.functions import FunctionError, call_function
from kplan.config.overrides import OverrideReads
from kplan.plan.model import Action
from kplan.plan.planner import PlanOptions, make_plan
from kplan.plan.render_markdown import render_plan_markdown
from kplan.values import UNKNOWN
from tests.unit.test_planner_golden import CASES_DIR, plan_module_diags

ORDER = ["global.conf", "keystone.conf", "keystone/keystone.conf", "keystone/ctl1/keystone.conf"]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # where kplan runs: the root module
    (tmp_path / "config/keystone/ctl1").mkdir(parents=True)
    (tmp_path / "config/keystone.conf").write_text("[token]\nexpiration = 3600\n")
    (tmp_path / "config/global.conf").write_text("[DEFAULT]\ndebug = True\n")
    (tmp_path / "config/keystone/ctl1/keystone.conf").write_text("[a]\nb = c\n")
    return tmp_path


def test_the_files_that_exist_in_the_order_given(folder: Path) -> None:
    got = call_function("config_overrides", ["config", ORDER])
    assert got == [
        {"path": "config/global.conf", "template": "[DEFAULT]\ndebug = True\n"},
        {"path": "config/keystone.conf", "template": "[token]\nexpiration = 3600\n"},
        {"path": "config/keystone/ctl1/keystone.conf", "template": "[a]\nb = c\n"},
    ]
    # An absolute folder (an existing /etc/kolla/config) is named as it is.
    absolute = call_function("config_overrides", [str(folder / "config"), ["global.conf"]])
    assert absolute[0]["path"] == str(folder / "config/global.conf")


def test_no_folder_is_no_overrides(folder: Path) -> None:
    assert call_function("config_overrides", [None, ORDER]) == []
    assert call_function("config_overrides", ["no-such-folder", ORDER]) == []
    assert call_function("config_overrides", [UNKNOWN, ORDER]) is UNKNOWN


@pytest.mark.parametrize("bad", ["/etc/x.conf", "../x.conf", "a/./b", "", "a//b"])
def test_a_path_must_stay_inside_the_folder(folder: Path, bad: str) -> None:
    with pytest.raises(FunctionError, match=r"paths\[0\] must be a relative path"):
        call_function("config_overrides", ["config", [bad]])


def test_a_file_is_not_a_folder(folder: Path) -> None:
    with pytest.raises(FunctionError, match="is not a folder"):
        call_function("config_overrides", ["config/global.conf", ORDER])


def test_unused_files_are_warned_with_the_nearest_expected_name(folder: Path) -> None:
    (folder / "config/keystone/keystone-api.conf").write_text("[DEFAULT]\n")
    (folder / "config/keystone/ctl9").mkdir()
    (folder / "config/keystone/ctl9/keystone.conf").write_text("[DEFAULT]\n")
    (folder / "config/nova.conf").write_text("[DEFAULT]\n")
    (folder / "config/.keystone.conf.swp").write_text("editor")
    reads = OverrideReads()
    call_function("config_overrides", ["config", ORDER], reads=reads)
    warnings = reads.unused()
    assert [w.summary for w in warnings] == [
        "override file config/keystone/ctl9/keystone.conf is not read by any config",
        "override file config/keystone/keystone-api.conf is not read by any config",
        "override file config/nova.conf is not read by any config",
    ]
    assert {w.code for w in warnings} == {"unused-override"}
    assert "did you mean config/keystone/ctl1/keystone.conf?" in warnings[0].detail
    assert "did you mean config/keystone/keystone.conf?" in warnings[1].detail
    assert "did you mean" not in warnings[2].detail


@pytest.mark.parametrize("args", [[UNKNOWN, ORDER], ["config", [ORDER[0], UNKNOWN]]])
def test_a_call_not_known_yet_leaves_no_file_called_unread(folder: Path, args: list) -> None:
    # What a call with an unknown folder or name will read is not known: warning
    # of an unread file then would be a guess (often wrong: a per-host path).
    (folder / "config/nova.conf").write_text("[DEFAULT]\n")
    reads = OverrideReads()
    call_function("config_overrides", ["config", ORDER], reads=reads)
    assert len(reads.unused()) == 1
    assert call_function("config_overrides", args, reads=reads) is UNKNOWN
    assert reads.unused() == []


def test_one_folder_named_two_ways_is_checked_once(folder: Path) -> None:
    reads = OverrideReads()
    call_function("config_overrides", ["config", ["global.conf"]], reads=reads)
    call_function("config_overrides", [str(folder / "config"), ORDER[1:]], reads=reads)
    assert reads.unused() == []


def _copy_case(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(CASES_DIR / "config-overrides" / "after", root)
    return root


def test_the_plan_warns_of_an_unread_file_and_a_targeted_plan_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(os.getcwd())
    root = _copy_case(tmp_path)
    plan, diags = plan_module_diags(root, {})
    assert [d.code for d in diags] == ["unused-override"]
    assert all(c.action is Action.CREATE for c in plan.changes)
    notes = [r.message for c in plan.changes for r in c.reasons if r.kind == "source"]
    assert "[token] expiration from config/keystone.conf" in notes
    # A plan that looks at part of the configuration cannot tell what the rest reads.
    from kplan.config.loader import load_module
    from kplan.config.variables import resolve_variables
    from kplan.graph.builder import build_graph
    from kplan.plan.planner import PlanInputs
    from kplan.plugins import ProviderRegistry

    cfg, _ = load_module(".")
    assert cfg is not None
    cg, _ = build_graph(cfg)
    variables, _ = resolve_variables(cfg.variables, cli_args=(), environ={})
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(root),
        variables=variables,
        records={},
        outputs={},
        registry=ProviderRegistry.from_entry_points(),
        workspace="default",
        lineage="t",
        serial=0,
        input_checksum="t",
    )
    targeted = PlanOptions(refresh=False, targets=('host_file.keystone_conf["ctl1"]',))
    _, tdiags = make_plan(inputs, targeted)
    assert not tdiags.has_errors
    assert [d.code for d in tdiags] == []
    excluded = PlanOptions(refresh=False, excludes=("host:ctl2",))
    _, ediags = make_plan(inputs, excluded)
    assert not ediags.has_errors
    assert [d.code for d in ediags] == []
    _, whole = make_plan(inputs, PlanOptions(refresh=False))
    assert [d.code for d in whole] == ["unused-override"]


def test_the_markdown_plan_lists_where_changed_keys_come_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(os.getcwd())
    plan, _ = plan_module_diags(_copy_case(tmp_path), {})
    text = render_plan_markdown(plan)
    assert "  - content: [token] expiration from config/keystone.conf" in text
    assert "because [token]" not in text


def test_files_read_by_every_host_leave_nothing_to_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(os.getcwd())
    root = _copy_case(tmp_path)
    (root / "config/keystone/keystone-api.conf").unlink()
    (root / "config/keystone/ctl1").mkdir()
    (root / "config/keystone/ctl1/keystone.conf").write_text("[token]\nexpiration = 60\n")
    plan, diags = plan_module_diags(root, {})
    assert diags == []
    by_host = {
        c.addr.key: [r.message for r in c.reasons if r.kind == "source"]
        for c in plan.changes
        if c.addr.type == "host_file"
    }
    assert "[token] expiration from config/keystone/ctl1/keystone.conf" in by_host["ctl1"]
    assert "[token] expiration from config/keystone.conf" in by_host["ctl2"]
