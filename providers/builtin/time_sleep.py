"""``time_sleep``: waits at create and at destroy; used to test interrupted applies.

Attributes: ``create_duration`` and ``destroy_duration`` (Go-style durations:
``"500ms"``, ``"2s"``, ``"1m30s"``, ``"1.5h"``; default ``"0s"``),
``triggers`` (a map; any change replaces it), computed ``id`` (random hex).
Changing a duration is an in-place update that does not sleep and keeps the
id; a replace sleeps the old destroy_duration, then the new create_duration.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    PlanRequest,
    PlanResponse,
    ResourceSchema,
    default_plan,
)
from kplan.provider_sdk import (
    DurationError,
    ResourceType,
    Target,
    attr_error,
    new_id,
    parse_duration,
    plain,
)

__all__ = ["DurationError", "TimeSleep", "parse_duration"]

_DURATION_HELP = 'a number and a unit (ms, s, m, h), e.g. "500ms", "2s", "1m30s"'

SCHEMA = ResourceSchema(
    type_name="time_sleep",
    description="Sleeps at create and at destroy.",
    attributes={
        "create_duration": Attribute(
            "string", optional=True, default="0s", description="how long create sleeps"
        ),
        "destroy_duration": Attribute(
            "string", optional=True, default="0s", description="how long destroy sleeps"
        ),
        "triggers": Attribute(
            "map", optional=True, force_new=True, description="any change replaces the resource"
        ),
        "id": Attribute("string", computed=True, description="random hex chosen at create"),
    },
)


def _check_duration(name: str, value: Any) -> Diagnostic | None:
    if not isinstance(value, str):
        return None  # UNKNOWN, absent or mistyped: the generic check speaks
    try:
        parse_duration(value)
    except DurationError as e:
        return attr_error(name, f"{name}: {e}", f"expected {_DURATION_HELP}", "invalid-duration")
    return None


class TimeSleep(ResourceType[Target]):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        names = ("create_duration", "destroy_duration")
        diags = [_check_duration(n, plain(config.get(n))) for n in names]
        return [d for d in diags if d is not None]

    def plan(self, req: PlanRequest) -> PlanResponse:
        """Like the default, but an in-place update keeps the id."""
        resp = default_plan(self.schema, req)
        if req.prior is None or resp.requires_replace:
            return resp
        planned = {**resp.planned, "id": req.prior.get("id")}
        return PlanResponse(planned, resp.requires_replace, resp.diagnostics)

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        problem = self._sleep("create_duration", planned)
        if problem is not None:
            return ApplyResponse(None, [problem])
        return ApplyResponse({**planned, "id": new_id()})

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        problem = self._sleep("destroy_duration", prior)
        return ApplyResponse(prior, [problem]) if problem is not None else ApplyResponse(None)

    @staticmethod
    def _sleep(name: str, state: Mapping[str, Any]) -> Diagnostic | None:
        value = plain(state.get(name))
        value = "0s" if value is None else value
        problem = _check_duration(name, value)
        if problem is None and not isinstance(value, str):
            problem = attr_error(
                name, f"{name} is not a duration at apply", code="invalid-duration"
            )
        if problem is not None:
            return problem
        time.sleep(parse_duration(value))
        return None
