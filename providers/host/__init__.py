"""The host provider: ``host_file``, ``host_directory`` and ``host_etc_hosts``.

Registered under the ``kplan.providers`` entry point as ``host``. Every
instance lives on one host of the inventory (the resource's ``host:`` key);
``configure()`` gives the provider the inventory and ``connect(host)``, the
shared :class:`~kplan.transport.base.Connection` to a host. Reads are
batched: a constant number of commands per host, whatever the number of
instances (see ``_reader``). Nothing here raises for a host that cannot be
reached: read and apply return a ``host-unreachable`` diagnostic for that
host's instances only. Shell commands quote every configured value.
"""

from __future__ import annotations

from collections.abc import Mapping

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    ConfigureRequest,
    PlanRequest,
    PlanResponse,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ValidateRequest,
    ValidateResponse,
)

from ._common import HostContext, HostResourceType, no_host
from .directory import HostDirectory
from .etc_hosts import HostEtcHosts
from .file import HostFile

__all__ = ["HostProvider", "provider"]


class HostProvider(Provider):
    """Routes each request to the resource type it names; refuses instances without a host."""

    name = "host"

    def __init__(self) -> None:
        self.ctx = HostContext()
        types: list[HostResourceType] = [
            HostFile(self.ctx),
            HostDirectory(self.ctx),
            HostEtcHosts(self.ctx),
        ]
        self._types: Mapping[str, HostResourceType] = {t.type_name: t for t in types}
        self._schema = ProviderSchema({n: t.schema for n, t in sorted(self._types.items())})

    def schema(self) -> ProviderSchema:
        return self._schema

    def configure(self, req: ConfigureRequest) -> None:
        self.ctx.configure(req)

    def _unknown(self, type_name: str) -> Diagnostic:
        return Diagnostic.error(
            f'the host provider has no resource type "{type_name}"',
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
            return ReadResponse({}, [self._unknown(req.type_name)])
        return rtype.read(req.instances)

    def plan(self, req: PlanRequest) -> PlanResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return PlanResponse(dict(req.config), diagnostics=[self._unknown(req.type_name)])
        if req.host is None:
            return PlanResponse(dict(req.config), diagnostics=[no_host(req.type_name)])
        return rtype.plan(req)

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ApplyResponse(req.prior, [self._unknown(req.type_name)])
        return rtype.apply(req)


#: The entry point's object (``providers.host:provider``).
provider = HostProvider()
