"""A resource removed from the configuration is destroyed (an orphan)."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange


def build() -> Plan:
    orphan = ResourceChange(
        addr=ROOT.resource("docker_container", "horizon"),
        provider="kplan/docker",
        action=Action.DELETE,
        before={
            "id": "c0ffee",
            "name": "horizon",
            "image": "kolla/horizon:2024.1",
            "environment": {"ENABLE_DESIGNATE": "no"},
            "ports": [80, 443],
            "motd": "Welcome\nto horizon\n",
        },
        after=None,
        reasons=(Reason("orphan", "docker_container.horizon is not in the configuration"),),
        host="ctl1",
    )
    return Plan(changes=(orphan,), kplan_version="0.1.0")
