"""Golden tests for the planner: a module and a state in, the plan text out.

Each folder under tests/golden/planner/<case>/ holds ``before/`` (a module
whose plan from an empty state is recorded as if applied: the seed state),
``after/`` (the module as the operator changed it) and ``expected.txt``, the
text of the plan of ``after/`` against the seed state, followed by the plan's
warnings, if any, as ``kplan plan`` prints them. A case may also hold
``expected.json``: the same plan as ``kplan plan -json`` gives it (indented
here, for review); and ``expected-saved.txt``: the text of that plan after a
round trip through a saved plan file (``plan -out``, then ``show``). The real providers
plan (templates are rendered, restart triggers resolved); refresh is off, so
no host is contacted. Values a provider computes at apply (a container id)
are seeded as ``seeded:ADDRESS.ATTRIBUTE``.

To rewrite the expected files after an intended change, run:

    KPLAN_UPDATE_GOLDENS=1 pytest tests/unit/test_planner_golden.py

and review the diff (``git diff tests/golden``) before committing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from kplan.config.loader import load_module
from kplan.config.variables import resolve_variables
from kplan.diagnostics import Diagnostic
from kplan.graph.builder import build_graph
from kplan.plan.model import Action, Plan
from kplan.plan.planfile import read_planfile, write_planfile
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plan.render_json import render_plan_json
from kplan.plan.render_text import render_plan_text
from kplan.plugins import ProviderRegistry
from kplan.provider_api import ConfigureRequest, HostInfo
from kplan.state.crypto import Cipher
from kplan.state.records import ResourceRecord
from kplan.values import UNKNOWN

UPDATE = os.environ.get("KPLAN_UPDATE_GOLDENS") == "1"
CASES_DIR = Path(__file__).resolve().parents[1] / "golden" / "planner"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "after").is_dir())


def _no_connection(host: str) -> Any:
    raise AssertionError(f"a golden plan must not contact host {host}")


def plan_module(folder: Path, records: dict[str, ResourceRecord]) -> Plan:
    return plan_module_diags(folder, records)[0]


def plan_module_diags(
    folder: Path, records: dict[str, ResourceRecord]
) -> tuple[Plan, list[Diagnostic]]:
    """The plan of ``folder`` against ``records``, and its warnings."""
    os.chdir(folder)  # as kplan -chdir does: file() and templatefile() paths start here
    cfg, diags = load_module(".")
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, gdiags = build_graph(cfg)
    assert not gdiags.has_errors, [str(d) for d in gdiags]
    variables, vdiags = resolve_variables(cfg.variables, cli_args=(), environ={})
    assert not vdiags.has_errors, [str(d) for d in vdiags]
    registry = ProviderRegistry.from_entry_points()
    hosts = {
        h.name: HostInfo(h.name, h.address, h.connection, h.groups, h.vars)
        for h in cfg.hosts.values()
    }
    registry.configure(ConfigureRequest(hosts=hosts, connect=_no_connection))
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(folder),
        variables=variables,
        records=records,
        outputs={},
        registry=registry,
        workspace="default",
        lineage="golden",
        serial=1,
        input_checksum="golden",
    )
    plan, pdiags = make_plan(inputs, PlanOptions(refresh=False))
    assert not pdiags.has_errors, [str(d) for d in pdiags]
    return plan, list(pdiags)


def _seeded(address: str, attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"seeded:{address}.{k}" if v is UNKNOWN else v) for k, v in attributes.items()}


def seed_state(plan: Plan) -> dict[str, ResourceRecord]:
    """The state after applying ``plan``: every planned value, computed ones seeded."""
    records: dict[str, ResourceRecord] = {}
    for c in plan.changes:
        assert c.action is Action.CREATE and c.after is not None, c.address
        records[c.address] = ResourceRecord.from_addr(
            c.addr,
            provider=c.provider,
            attributes=_seeded(c.address, dict(c.after)),
            dependencies=tuple(str(d) for d in c.depends_on),
            host=c.host,
        )
    return records


@pytest.fixture(autouse=True)
def _keep_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(os.getcwd())  # restored after each test


def case_plan(name: str, tmp_path: Path) -> tuple[Plan, list[Diagnostic]]:
    # Copied so that both stages load as one folder would (file names in errors).
    before, after = tmp_path / "before", tmp_path / "after"
    shutil.copytree(CASES_DIR / name / "before", before)
    shutil.copytree(CASES_DIR / name / "after", after)
    state = seed_state(plan_module(before, {}))
    return plan_module_diags(after, state)


def _warnings_text(diags: list[Diagnostic]) -> str:
    out = ""
    for d in diags:
        out += f"\nWarning: {d.summary}\n" + (f"  {d.detail}\n" if d.detail else "")
    return out


def case_plan_text(name: str, tmp_path: Path) -> str:
    plan, diags = case_plan(name, tmp_path)
    return render_plan_text(plan) + _warnings_text(diags)


def _check(expected: Path, text: str) -> None:
    if UPDATE:
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_planner_golden(name: str, tmp_path: Path) -> None:
    plan, diags = case_plan(name, tmp_path)
    _check(CASES_DIR / name / "expected.txt", render_plan_text(plan) + _warnings_text(diags))
    if (CASES_DIR / name / "expected.json").exists():
        doc = json.loads(render_plan_json(plan))
        text = json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
        _check(CASES_DIR / name / "expected.json", text)
    if (CASES_DIR / name / "expected-saved.txt").exists():
        box = Cipher(bytes(32), "golden")
        path = str(tmp_path / "saved.plan")
        write_planfile(path, plan, box)
        saved = read_planfile(path, box, plan.lineage)
        _check(CASES_DIR / name / "expected-saved.txt", render_plan_text(saved))


def test_planner_goldens_are_deterministic(tmp_path: Path) -> None:
    name = "config-change-one-restart"
    assert case_plan_text(name, tmp_path / "a") == case_plan_text(name, tmp_path / "b")
