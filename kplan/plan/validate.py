"""``kplan validate``: the configuration checked as ``plan`` checks it, with no state or host.

The configuration graph is walked as for a plan, but every root variable
and every resource's value is UNKNOWN: nothing is read from state, nothing is
refreshed, no host is contacted (providers are configured with the
inventory and a ``connect`` that refuses). A ``for_each`` or ``count`` whose
keys are known expands; one that is not known yet evaluates the block once
with ``each.*`` / ``count.index`` unknown. Every instance's attributes go
through its provider's ``validate``, and every independent error is
reported, each with its file:line:col, in the words ``plan`` uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplan.addrs import ResourceAddr, ResourceConfigAddr
from kplan.config.model import Host
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.graph.builder import ConfigGraph
from kplan.graph.evaluate import Evaluator, Instance, collect
from kplan.plan.decide import placed, trigger_attribute_errors
from kplan.plugins import ProviderRegistry
from kplan.provider_api import ConfigureRequest, HostInfo, ValidateRequest
from kplan.transport.base import Connection, HostUnreachable
from kplan.values import UNKNOWN

__all__ = ["validate_config"]


def validate_config(cg: ConfigGraph, registry: ProviderRegistry, root_dir: str) -> Diagnostics:
    """Every error of the configuration that needs no state or host, without duplicates."""
    root = cg.modules[()]
    registry.configure(ConfigureRequest(hosts=_inventory(root.hosts), connect=_no_connection))
    handler = _Validator(registry)
    variables = dict.fromkeys(root.variables, UNKNOWN)  # valid for any value given later
    ev = Evaluator(cg, variables, handler, root_dir=root_dir, validating=True)
    found = collect(ev.run(parallelism=1, stop_on_failure=False))
    found.extend(handler.diags)
    out = Diagnostics()
    seen: set[tuple[object, ...]] = set()
    for d in sorted(found, key=_order):  # instances of one block share their errors
        k = (d.severity, d.summary, d.detail, d.pos, d.code)
        if k not in seen:
            seen.add(k)
            out.add(d)
    return out


class _Validator:
    """The resource handler: the provider's validate on each instance; values UNKNOWN."""

    def __init__(self, registry: ProviderRegistry) -> None:
        self.registry = registry
        self.diags: list[Diagnostic] = []

    def resource(
        self, addr: ResourceConfigAddr, instances: list[Instance]
    ) -> Mapping[ResourceAddr, Any]:
        values: dict[ResourceAddr, Any] = {inst.addr: UNKNOWN for inst in instances}
        if not instances:
            return values
        try:
            provider, _ = self.registry.get(addr.type, instances[0].resource.pos)
        except KplanError as exc:  # an unknown resource type: said once for the block
            self.diags.extend(exc.diagnostics)
            return values
        self.diags.extend(trigger_attribute_errors(instances[0].resource, self.registry))
        for inst in instances:
            try:
                config = inst.config()
            except KplanError as exc:  # an expression that cannot be evaluated
                self.diags.extend(exc.diagnostics)
                continue
            req = ValidateRequest(addr.type, config, str(inst.addr))
            self.diags.extend(placed(provider.validate(req).diagnostics, inst.resource))
        return values


def _inventory(hosts: Mapping[str, Host]) -> dict[str, HostInfo]:
    return {
        h.name: HostInfo(h.name, h.address, h.connection, h.groups, h.vars) for h in hosts.values()
    }


def _no_connection(host: str) -> Connection:
    raise HostUnreachable(host, "kplan validate does not connect to hosts")


def _order(d: Diagnostic) -> tuple[object, ...]:
    p = d.pos
    return (p is None, p.file if p else "", p.line if p else 0, p.col if p else 0)
