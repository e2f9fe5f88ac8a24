"""The registry's guard around every call into a provider, with a deliberately broken one."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from kplan.config.loader import load_module
from kplan.diagnostics import KplanError
from kplan.graph.builder import build_graph
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import GuardedProvider, ProviderRegistry
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    Attribute,
    ConfigureRequest,
    PlanRequest,
    PlanResponse,
    Provider,
    ProviderSchema,
    ReadInstance,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
    ValidateRequest,
    default_plan,
)
from kplan.values import Secret

PASSWORD = "hunter2-very-secret"

SCHEMA = ResourceSchema(
    "broken_thing",
    {
        "name": Attribute("string", required=True),
        "size": Attribute("number", optional=True),
        "mode": Attribute("string", optional=True, normalized=True),
        "password": Attribute("string", optional=True, sensitive=True),
        "id": Attribute("string", computed=True),
    },
)


class Broken(Provider):
    """Does what ``how`` says: "raise", "extra", "change", "drop", "normalize", "none", "ok"."""

    name = "broken"

    def __init__(self, how: str = "ok") -> None:
        self.how = how

    def schema(self) -> ProviderSchema:
        if self.how == "schema":
            raise RuntimeError("no schema today")
        return ProviderSchema({"broken_thing": SCHEMA})

    def configure(self, req: ConfigureRequest) -> None:
        if self.how == "configure":
            raise OSError("cannot configure")

    def _boom(self, config: Any = None) -> None:
        pw = (config or {}).get("password")
        shown = pw.reveal() if isinstance(pw, Secret) else "nothing"
        raise ValueError(f"kaput while using {shown}")

    def validate(self, req: ValidateRequest) -> Any:
        if self.how == "raise":
            self._boom(req.config)
        return super().validate(req)

    def read(self, req: ReadRequest) -> ReadResponse:
        if self.how == "raise":
            self._boom()
        return ReadResponse({i.address: i.state for i in req.instances})

    def plan(self, req: PlanRequest) -> Any:
        if self.how == "raise":
            self._boom(req.config)
        if self.how == "none":
            return None
        resp = default_plan(SCHEMA, req)
        planned = dict(resp.planned)
        if self.how == "extra":
            planned["surprise"] = 1
        elif self.how == "change":
            planned["size"] = 99
        elif self.how == "drop":
            del planned["size"]
        elif self.how == "normalize":
            planned["mode"] = "0" + str(planned["mode"])
        elif self.how == "reveal":
            planned["password"] = Secret(planned["password"]).reveal()
        return PlanResponse(planned, resp.requires_replace)

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        if self.how == "raise":
            self._boom(req.planned)
        return ApplyResponse(req.planned)


CONFIG = {"name": "a", "size": 1, "mode": "644", "password": Secret(PASSWORD)}


def guarded(how: str) -> GuardedProvider:
    provider, _ = ProviderRegistry([Broken(how)]).get("broken_thing")
    return provider


def plan_req(config: dict[str, Any] = CONFIG) -> PlanRequest:
    return PlanRequest("broken_thing", 'broken_thing.x["k"]', None, None, config)


def test_every_exception_becomes_a_diagnostic_naming_what_failed() -> None:
    p = guarded("raise")
    responses = {
        "validate": p.validate(ValidateRequest("broken_thing", CONFIG)).diagnostics,
        "read": p.read(
            ReadRequest("broken_thing", [ReadInstance("broken_thing.x", None, {"name": "a"})])
        ).diagnostics,
        "plan": p.plan(plan_req()).diagnostics,
        "apply": p.apply(
            ApplyRequest("broken_thing", "broken_thing.x", None, "create", None, CONFIG)
        ).diagnostics,
    }
    for verb, diags in responses.items():
        (d,) = diags
        assert d.is_error and d.code == "provider-error", verb
        assert d.summary.startswith(
            f'provider "broken" failed to {verb if verb != "apply" else "create"}'
        )
        assert "broken_thing" in d.summary
        assert d.detail.startswith("ValueError: kaput while using"), verb
        assert PASSWORD not in d.summary + d.detail, verb  # a revealed Secret is masked
        assert "Traceback" not in d.detail
    assert 'broken_thing.x["k"]' in responses["plan"][0].summary
    assert "broken_thing.x" in responses["read"][0].summary
    assert "(sensitive)" in responses["plan"][0].detail


def test_a_failed_plan_keeps_the_config_and_a_failed_apply_the_prior_state() -> None:
    p = guarded("raise")
    assert dict(p.plan(plan_req()).planned) == CONFIG
    prior = {"name": "old"}
    resp = p.apply(ApplyRequest("broken_thing", "broken_thing.x", None, "update", prior, CONFIG))
    assert resp.new_state == prior
    assert p.read(ReadRequest("broken_thing", [])).states == {}


def test_schema_and_configure_failures_stop_with_the_provider_named() -> None:
    with pytest.raises(KplanError, match='provider "broken" failed to give its schema'):
        ProviderRegistry([Broken("schema")]).types()
    with pytest.raises(KplanError, match="OSError: cannot configure"):
        ProviderRegistry([Broken("configure")]).configure(
            ConfigureRequest(hosts={}, connect=lambda h: None)  # type: ignore[arg-type,return-value]
        )


def test_a_response_of_the_wrong_type_is_a_provider_error() -> None:
    (d,) = guarded("none").plan(plan_req()).diagnostics
    assert d.code == "provider-error" and "returned NoneType instead of a PlanResponse" in d.summary


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("extra", 'it planned "surprise", which is not an attribute of broken_thing'),
        ("change", 'it changed the configured value of "size"'),
        ("drop", 'it left out the configured value of "size"'),
    ],
)
def test_an_invalid_plan_is_refused(how: str, words: str) -> None:
    diags = guarded(how).plan(plan_req()).diagnostics
    (d,) = diags
    assert d.code == "provider-invalid-plan"
    assert d.summary == 'provider "broken" produced an invalid plan for broken_thing.x["k"]'
    assert words in d.detail
    assert "99" not in d.detail and PASSWORD not in d.detail  # values are never printed


@pytest.mark.parametrize("how", ["ok", "normalize", "reveal"])
def test_valid_plans_pass_untouched(how: str) -> None:
    """Normalised attributes may differ; a Secret planned as its plain value is the same
    value (the planner marks sensitive attributes again)."""
    resp = guarded(how).plan(plan_req())
    assert list(resp.diagnostics) == []


def test_unknown_and_null_configured_values_are_not_compared() -> None:
    from kplan.values import UNKNOWN

    resp = guarded("change").plan(plan_req({"name": "a", "size": UNKNOWN}))
    assert list(resp.diagnostics) == []
    resp = guarded("change").plan(plan_req({"name": "a", "size": None}))
    assert list(resp.diagnostics) == []


def test_the_planner_places_a_provider_failure_at_the_resource(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text(
        textwrap.dedent(
            """
            resources:
              broken_thing.x:
                name: a
                size: 1
            """
        )
    )
    cfg, diags = load_module(str(tmp_path))
    assert cfg is not None and not diags.has_errors
    cg, _ = build_graph(cfg)
    for how, code in (("raise", "provider-error"), ("change", "provider-invalid-plan")):
        inputs = PlanInputs(
            cg=cg,
            root_dir=str(tmp_path),
            variables={},
            records={},
            outputs={},
            registry=ProviderRegistry([Broken(how)]),
            workspace="default",
            lineage="l",
            serial=1,
            input_checksum="x",
        )
        _, pdiags = make_plan(inputs, PlanOptions(refresh=False))
        (d,) = pdiags.errors
        assert d.code == code
        assert str(d.pos) == f"{tmp_path}/main.kp.yaml:3:3"
        assert "broken_thing.x" in d.summary
