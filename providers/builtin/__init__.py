"""The built-in provider: ``local_file``, ``secret_password``, ``null_resource``, ``time_sleep``.

Registered under the ``kplan.providers`` entry point as ``builtin`` (see
pyproject.toml), exactly as a third-party provider would be; the engine never
imports this package by name. :class:`BuiltinProvider` is a thin dispatcher:
each resource type lives in its own module as a
:class:`~providers.builtin._common.ResourceType`, and every request is routed
to the type it names. A request for a type this provider does not serve gets
an error diagnostic, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping

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

from ._common import ResourceType
from .local_file import LocalFile
from .null_resource import NullResource
from .secret_password import SecretPassword
from .time_sleep import TimeSleep

__all__ = ["BuiltinProvider", "provider"]


class BuiltinProvider(Provider):
    """Routes each request to the resource type it names."""

    name = "builtin"

    def __init__(self) -> None:
        types: list[ResourceType] = [LocalFile(), SecretPassword(), NullResource(), TimeSleep()]
        self._types: Mapping[str, ResourceType] = {t.type_name: t for t in types}
        self._schema = ProviderSchema({n: t.schema for n, t in sorted(self._types.items())})

    def schema(self) -> ProviderSchema:
        return self._schema

    def _unknown(self, type_name: str) -> Diagnostic:
        return Diagnostic.error(
            f'the builtin provider has no resource type "{type_name}"',
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


#: The entry point's object (``providers.builtin:provider``).
provider = BuiltinProvider()
