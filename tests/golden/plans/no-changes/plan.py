"""Nothing to do: only no-op changes."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, OutputChange, Plan, ResourceChange


def build() -> Plan:
    attrs = {"id": "k1", "name": "keystone"}
    noop = ResourceChange(
        ROOT.resource("docker_container", "keystone"), "kplan/docker", Action.NOOP, attrs, attrs
    )
    out = OutputChange("region", Action.NOOP, "RegionOne", "RegionOne")
    return Plan(changes=(noop,), outputs=(out,), lineage="l", serial=3, kplan_version="0.1.0")
