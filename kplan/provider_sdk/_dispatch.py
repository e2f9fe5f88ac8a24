"""The provider made of resource types: each request goes to the type it names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    PlanRequest,
    PlanResponse,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ValidateRequest,
    ValidateResponse,
)

from ._resource import ResourceType
from ._shared import reading

__all__ = ["TypeDispatcher"]


class TypeDispatcher(Provider):
    """A provider made of :class:`ResourceType` objects: each request goes to the type it
    names; a type this provider does not serve gets an error diagnostic, never an exception.

    Subclass it, set ``name``, pass the types to ``__init__`` and, for hosted types,
    override ``configure`` to hand the request to the types' shared :class:`Inventory`.
    """

    def __init__(self, types: Sequence[ResourceType[Any]]) -> None:
        self._types: Mapping[str, ResourceType[Any]] = {t.type_name: t for t in types}
        self._schema = ProviderSchema({n: t.schema for n, t in sorted(self._types.items())})

    def schema(self) -> ProviderSchema:
        return self._schema

    def _unknown(self, type_name: str) -> Diagnostic:
        return Diagnostic.error(
            f'the {self.name} provider has no resource type "{type_name}"',
            "it serves: " + ", ".join(sorted(self._types)),
            code="unsupported-resource-type",
        )

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ValidateResponse([self._unknown(req.type_name)])
        return ValidateResponse(rtype.validate(req.config))

    def read(self, req: ReadRequest) -> ReadResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            states = {i.address: i.state for i in req.instances}
            return ReadResponse(states, [self._unknown(req.type_name)])
        with reading(req.snapshot):
            return rtype.read(req.instances)

    def plan(self, req: PlanRequest) -> PlanResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return PlanResponse(dict(req.config), diagnostics=[self._unknown(req.type_name)])
        return rtype.plan(req)

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ApplyResponse(req.prior, [self._unknown(req.type_name)])
        return rtype.apply(req)
