"""Shared pieces of the built-in resource types: the per-type base class and helpers.

A :class:`ResourceType` holds one type's schema and its validate, read, plan
and apply steps; the dispatcher in ``providers.builtin`` routes each request
to one of them. Apply steps never raise for an expected failure (a file that
cannot be written, a bad value): they return diagnostics naming the
attribute concerned.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ReadResponse,
    ResourceSchema,
    default_plan,
    validate_against_schema,
)
from kplan.values import UNKNOWN, Secret, reveal

__all__ = [
    "ResourceType",
    "attr_error",
    "attr_warning",
    "is_known",
    "keep_secret",
    "new_id",
    "plain",
]


def attr_error(attribute: str, summary: str, detail: str = "", code: str = "") -> Diagnostic:
    """An error about one attribute (the engine places it in the file)."""
    return Diagnostic(Severity.ERROR, summary, detail, None, code, (attribute,))


def attr_warning(attribute: str, summary: str, detail: str = "", code: str = "") -> Diagnostic:
    return Diagnostic(Severity.WARNING, summary, detail, None, code, (attribute,))


def plain(value: Any) -> Any:
    """``value`` with every Secret unwrapped, for checks and for writing; never for state."""
    return reveal(value)


def is_known(value: Any) -> bool:
    """True unless ``value`` is UNKNOWN (or a Secret wrapping UNKNOWN)."""
    return plain(value) is not UNKNOWN


def new_id() -> str:
    """A random identifier: 16 hex digits."""
    return secrets.token_hex(8)


def _missing_with_attribute(schema: ResourceSchema, diags: list[Diagnostic]) -> list[Diagnostic]:
    """validate_against_schema's missing-attribute errors carry no attribute path: add it."""
    out = []
    for d in diags:
        if d.code == "missing-attribute" and not d.attribute:
            name = d.summary.split('"')[1] if d.summary.count('"') >= 2 else ""
            if name in schema.attributes:
                d = Diagnostic(d.severity, d.summary, d.detail, d.pos, d.code, (name,))
        out.append(d)
    return out


class ResourceType(abc.ABC):
    """One resource type of the built-in provider."""

    schema: ResourceSchema

    @property
    def type_name(self) -> str:
        return self.schema.type_name

    # ---- validate -----------------------------------------------------------------

    def validate(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        """The schema's checks, then the type's own; one diagnostic per attribute at most."""
        generic = _missing_with_attribute(self.schema, validate_against_schema(self.schema, config))
        known = {n: v for n, v in config.items() if n in self.schema.attributes}
        specific = self.check(known)
        flagged = {d.attribute for d in specific}
        return specific + [d for d in generic if d.attribute not in flagged]

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        """Type-specific value checks; UNKNOWN and mistyped values pass. Override where needed.

        A diagnostic returned here replaces the generic one for the same attribute.
        """
        return []

    # ---- read ---------------------------------------------------------------------

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        """Default for types with nothing outside kplan's state: the prior state as it is."""
        return ReadResponse(states={i.address: dict(i.state) for i in instances})

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        return default_plan(self.schema, req)

    # ---- apply --------------------------------------------------------------------

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        """Route by action; ``replace`` is delete-then-create unless a type overrides it."""
        if req.action == "delete":
            return self.delete(req.prior) if req.prior is not None else ApplyResponse(None)
        if req.planned is None:
            return ApplyResponse(
                req.prior,
                [Diagnostic.error(f"{req.action} of {self.type_name} needs a planned state")],
            )
        if req.action == "create" or req.prior is None:
            return self.create(req.planned)
        if req.action == "update":
            return self.update(req.prior, req.planned)
        if req.action == "replace":
            return self.replace(req.prior, req.planned)
        return ApplyResponse(
            req.prior,
            [
                Diagnostic.error(
                    f'{self.type_name} does not support the action "{req.action}"',
                    "plan it as a replace instead",
                    code="unsupported-action",
                )
            ],
        )

    @abc.abstractmethod
    def create(self, planned: Mapping[str, Any]) -> ApplyResponse: ...

    def update(self, prior: Mapping[str, Any], planned: Mapping[str, Any]) -> ApplyResponse:
        """Default in-place update: the planned values, computed ones kept from the prior."""
        state = dict(planned)
        for name, attr in self.schema.attributes.items():
            if attr.computed and not is_known(state.get(name, UNKNOWN)):
                state[name] = prior.get(name)
        return ApplyResponse(state)

    def replace(self, prior: Mapping[str, Any], planned: Mapping[str, Any]) -> ApplyResponse:
        deleted = self.delete(prior)
        if any(d.is_error for d in deleted.diagnostics):
            return ApplyResponse(prior, deleted.diagnostics)
        created = self.create(planned)
        return ApplyResponse(created.new_state, [*deleted.diagnostics, *created.diagnostics])

    def delete(self, prior: Mapping[str, Any]) -> ApplyResponse:
        """Default: nothing outside kplan's state to remove."""
        return ApplyResponse(None)


def keep_secret(value: Any, like: Any) -> Any:
    """``value`` wrapped in Secret when ``like`` is one (and value is not already)."""
    if isinstance(like, Secret) and not isinstance(value, Secret) and value is not None:
        return Secret(value)
    return value
