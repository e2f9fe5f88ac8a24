"""A change planned with values unknown until apply, that turns out to be no change.

A config rendered from a value known only after apply is planned as an update
("known after apply"); when apply learns the value and the config comes out
the same, nothing is written and nothing that restarts on it restarts — a
change is what lands on the host.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from kplan.apply.executor import ApplyEvent, apply_plan
from kplan.config.loader import load_module
from kplan.graph.builder import build_graph
from kplan.plan.model import Action
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import ProviderRegistry
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    Attribute,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
)
from kplan.state.records import ResourceRecord

MODULE = """
resources:
  fake_source.s:
    version: ${var.version}
  fake_config.c:
    text: "out=${fake_source.s.out}"
  fake_container.app:
    image: img
    restart_on: ["fake_config.c"]
variables:
  version: {type: string}
"""


class Fakes(Provider):
    """``fake_source.out`` is computed at apply, and the same for every version."""

    name = "fake"

    def __init__(self) -> None:
        self.applied: list[tuple[str, str]] = []

    def schema(self) -> ProviderSchema:
        return ProviderSchema(
            {
                "fake_source": ResourceSchema(
                    "fake_source",
                    {
                        "version": Attribute("string", required=True),
                        "out": Attribute("string", computed=True),
                    },
                ),
                "fake_config": ResourceSchema(
                    "fake_config", {"text": Attribute("string", required=True)}
                ),
                "fake_container": ResourceSchema(
                    "fake_container",
                    {"image": Attribute("string", required=True)},
                    restartable=True,
                ),
            }
        )

    def read(self, req: ReadRequest) -> ReadResponse:
        return ReadResponse({i.address: i.state for i in req.instances})

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        self.applied.append((req.action, req.address))
        state = dict(req.planned or {})
        if req.type_name == "fake_source":
            state["out"] = "same"
        return ApplyResponse(state)


class Recorder:
    def __init__(self, rows: dict[str, ResourceRecord]) -> None:
        self.rows = dict(rows)

    def put(self, record: ResourceRecord) -> None:
        self.rows[record.address] = record

    def delete(self, address: str) -> None:
        self.rows.pop(address, None)


def _run(
    tmp_path: Path,
    version: str,
    rows: dict[str, ResourceRecord],
    provider: Fakes,
    replace: tuple[str, ...] = (),
) -> Any:
    (tmp_path / "main.kp.yaml").write_text(textwrap.dedent(MODULE))
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors, [str(d) for d in diags]
    cg, _ = build_graph(cfg)
    registry = ProviderRegistry([provider])
    variables = {"version": version}
    inputs = PlanInputs(
        cg=cg,
        root_dir=str(tmp_path),
        variables=variables,
        records=rows,
        outputs={},
        registry=registry,
        workspace="default",
        lineage="l",
        serial=1,
        input_checksum="x",
    )
    plan, pdiags = make_plan(inputs, PlanOptions(refresh=False, replace=replace))
    assert not pdiags.has_errors, [str(d) for d in pdiags]
    recorder = Recorder(rows)
    events: list[ApplyEvent] = []
    result = apply_plan(
        plan,
        cg=cg,
        variables=variables,
        records=rows,
        registry=registry,
        recorder=recorder,
        root_dir=str(tmp_path),
        parallelism=4,
        notify=events.append,
    )
    return plan, result, recorder.rows


def test_an_update_unknown_at_plan_that_renders_the_same_is_skipped_with_its_restart(
    tmp_path: Path,
) -> None:
    first = Fakes()
    _, result, rows = _run(tmp_path, "1", {}, first)
    assert result.ok and len(first.applied) == 3

    provider = Fakes()
    plan, result, after = _run(tmp_path, "2", rows, provider)
    actions = {c.address: c.action for c in plan.changes}
    # What the reviewer saw: the config's text is known only after apply, so the
    # config may change and the container may restart.
    assert actions == {
        "fake_source.s": Action.UPDATE,
        "fake_config.c": Action.UPDATE,
        "fake_container.app": Action.RESTART,
    }
    assert result.ok
    # Applied: only the source. The config came out the same: not written, no restart.
    assert provider.applied == [("update", "fake_source.s")]
    assert sorted(result.unchanged) == ["fake_config.c", "fake_container.app"]
    assert result.not_started == []
    assert after["fake_config.c"].attributes == {"text": "out=same"}


def test_a_known_update_still_restarts(tmp_path: Path) -> None:
    first = Fakes()
    _, _, rows = _run(tmp_path, "1", {}, first)
    rows = dict(rows)
    rec = rows["fake_config.c"]
    rows["fake_config.c"] = ResourceRecord.from_addr(
        rec.address, provider="fake", attributes={"text": "out=old"}
    )
    provider = Fakes()
    _, result, _ = _run(tmp_path, "1", rows, provider)
    assert result.ok
    assert provider.applied == [("update", "fake_config.c"), ("restart", "fake_container.app")]
    assert result.unchanged == []


def test_a_requested_replace_still_restarts_what_restarts_on_it(tmp_path: Path) -> None:
    """-replace is not in the configuration: apply's re-plan must still see it, or the
    restart the reviewer approved would be skipped as "no change after all"."""
    first = Fakes()
    _, result, rows = _run(tmp_path, "1", {}, first)
    assert result.ok
    provider = Fakes()
    plan, result, _ = _run(tmp_path, "1", rows, provider, replace=("fake_config.c",))
    actions = {c.address: c.action for c in plan.changes if c.action is not Action.NOOP}
    assert actions == {"fake_config.c": Action.REPLACE, "fake_container.app": Action.RESTART}
    assert result.ok
    assert provider.applied == [("replace", "fake_config.c"), ("restart", "fake_container.app")]
    assert result.unchanged == []


def test_a_trigger_naming_an_attribute_the_type_lacks_is_an_error(tmp_path: Path) -> None:
    """fake_config.c.txet would compare two absent values and never fire."""
    (tmp_path / "main.kp.yaml").write_text(
        textwrap.dedent(MODULE).replace(
            'restart_on: ["fake_config.c"]', 'restart_on: ["fake_config.c.txet"]'
        )
    )
    from kplan.plan.validate import validate_config

    cfg, _ = load_module(str(tmp_path))
    assert cfg is not None
    cg, _ = build_graph(cfg)
    diags = validate_config(cg, ProviderRegistry([Fakes()]), str(tmp_path))
    messages = [str(d) for d in diags if d.is_error]
    assert len(messages) == 1, messages
    assert 'invalid trigger "fake_config.c.txet"' in messages[0]
    assert 'fake_config has no attribute "txet" (it has: text)' in messages[0]
    assert "main.kp.yaml:" in messages[0]
