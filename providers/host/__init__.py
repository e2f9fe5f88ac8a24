"""The host provider: ``host_file``, ``host_directory``, ``host_etc_hosts``, ``host_sysctl``.

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

from kplan.provider_api import ConfigureRequest, PlanRequest, PlanResponse
from kplan.provider_sdk import TypeDispatcher

from ._common import HostContext, no_host
from .directory import HostDirectory
from .etc_hosts import HostEtcHosts
from .file import HostFile
from .sysctl import HostSysctl

__all__ = ["HostProvider", "provider"]


class HostProvider(TypeDispatcher):
    """Routes each request to the resource type it names; refuses instances without a host."""

    name = "host"

    def __init__(self) -> None:
        self.ctx = HostContext()
        super().__init__(
            [
                HostFile(self.ctx),
                HostDirectory(self.ctx),
                HostEtcHosts(self.ctx),
                HostSysctl(self.ctx),
            ]
        )

    def configure(self, req: ConfigureRequest) -> None:
        self.ctx.configure(req)

    def plan(self, req: PlanRequest) -> PlanResponse:
        if req.host is None and req.type_name in self._types:
            return PlanResponse(dict(req.config), diagnostics=[no_host(req.type_name)])
        return super().plan(req)


#: The entry point's object (``kplan_providers.host:provider``).
provider = HostProvider()
