"""Drift found by the docker provider's refresh, as the planner shows it (fake Docker API).

A stopped container plans an update that starts it; one removed plans a
create; one whose spec label changed plans a replace; a tag that moved in the
registry plans an update (a new pull). The last two rely on the engine asking
the provider about records that refresh changed and showing the provider's
``PlanResponse.reasons``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from kplan.config.loader import load_module
from kplan.graph.builder import build_graph
from kplan.plan.model import Action, Plan
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import ProviderRegistry
from kplan.state.records import ResourceRecord
from tests.unit.test_docker_provider import DIGEST_A, DIGEST_B, IMAGE, World

MODULE = f"""
hosts:
  node1: {{address: 10.0.0.1}}
resources:
  docker_image.base:
    host: node1
    name: {IMAGE}
    tag: bookworm
  docker_container.web:
    host: node1
    name: web
    image: ${{docker_image.base.repo_digest}}
    command: [sleep, infinity]
    healthcheck: {{test: "test -e /tmp/ok", interval: 1s}}
    health_timeout: 2
"""
IMG = "docker_image.base"
WEB = "docker_container.web"


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.world = World("node1")
        self.api = self.world.apis["node1"]
        self.api.registry[f"{IMAGE}:bookworm"] = DIGEST_A
        (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(MODULE))
        cfg, diags = load_module(str(tmp_path))
        assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
        self.cg, gdiags = build_graph(cfg)
        assert not gdiags.has_errors, [str(d) for d in gdiags]
        self.tmp_path = tmp_path
        self.records: dict[str, ResourceRecord] = {}
        image = self.world.converge(
            "docker_image", IMG, "node1", {"name": IMAGE, "tag": "bookworm"}
        )
        self._record(IMG, image)
        config = {
            "name": "web",
            "image": image["repo_digest"],
            "command": ["sleep", "infinity"],
            "healthcheck": {"test": "test -e /tmp/ok", "interval": "1s"},
            "health_timeout": 2,
        }
        self._record(WEB, self.world.converge("docker_container", WEB, "node1", config))

    def _record(self, addr: str, attrs: dict[str, Any]) -> None:
        self.records[addr] = ResourceRecord.from_addr(
            addr, provider="docker", attributes=attrs, host="node1"
        )

    def plan(self) -> Plan:
        inputs = PlanInputs(
            cg=self.cg,
            root_dir=str(self.tmp_path),
            variables={},
            records=self.records,
            outputs={},
            registry=ProviderRegistry([self.world.provider]),
            workspace="default",
            lineage="l",
            serial=1,
            input_checksum="x",
        )
        plan, diags = make_plan(inputs, PlanOptions())
        assert not diags.has_errors, [str(d) for d in diags]
        return plan

    def change(self, plan: Plan, addr: str) -> tuple[Action, list[str]]:
        c = next(c for c in plan.changes if c.address == addr)
        return c.action, [r.message for r in c.reasons]

    @property
    def web_id(self) -> str:
        return str(self.records[WEB].attributes["container_id"])


def test_nothing_changed_is_a_noop(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    plan = s.plan()
    assert {c.action for c in plan.changes} == {Action.NOOP}
    assert s.api.calls["containers"] >= 1


def test_stopped_outside_kplan_plans_an_update(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.api.stop(s.web_id)
    action, reasons = s.change(s.plan(), WEB)
    assert action is Action.UPDATE
    # One cause, one reason: not also "running changed outside kplan; restoring it".
    assert reasons == ["container stopped outside kplan"]


def test_removed_outside_kplan_plans_a_create(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.api.remove_container(s.web_id)
    action, reasons = s.change(s.plan(), WEB)
    assert (action, reasons) == (Action.CREATE, ["deleted outside kplan"])


def test_stopped_reason_is_in_words(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.api.stop(s.web_id)
    _, reasons = s.change(s.plan(), WEB)
    assert reasons[0] == "container stopped outside kplan"


def test_spec_changed_outside_kplan_plans_a_replace(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.api.containers_[s.web_id]["Labels"]["kplan.spec"] = "0" * 64
    action, reasons = s.change(s.plan(), WEB)
    assert action is Action.REPLACE
    assert reasons[0] == "container changed outside kplan (its kplan.spec label differs)"


def test_moved_tag_plans_a_pull_and_replaces_the_container(tmp_path: Path) -> None:
    s = Setup(tmp_path)
    s.api.registry[f"{IMAGE}:bookworm"] = DIGEST_B
    plan = s.plan()
    action, reasons = s.change(plan, IMG)
    assert action is Action.UPDATE
    assert reasons[0] == (
        f"tag bookworm of {IMAGE} moved in the registry: {DIGEST_A[7:19]} → {DIGEST_B[7:19]}"
    )
    action, reasons = s.change(plan, WEB)
    assert action is Action.REPLACE  # its image follows the pull
