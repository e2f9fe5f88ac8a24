"""A plan too large for one pull-request comment: the Markdown is trimmed."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange

# Markdown for this case is rendered with this limit instead of the default.
MARKDOWN_MAX_CHARS = 4000


def build() -> Plan:
    changes = []
    for n in range(30):
        module = ROOT.child("nova_compute", f"cmp{n:02d}")
        changes.append(
            ResourceChange(
                module.resource("host_file", "nova_conf"),
                "kplan/host",
                Action.UPDATE,
                {"path": "/etc/kolla/nova-compute/nova.conf", "content": "[DEFAULT]\ndebug = 0\n"},
                {"path": "/etc/kolla/nova-compute/nova.conf", "content": "[DEFAULT]\ndebug = 1\n"},
                reasons=(Reason("attribute", "content changed", ("content",)),),
                host=f"cmp{n:02d}",
            )
        )
        changes.append(
            ResourceChange(
                module.resource("docker_container", "nova_compute"),
                "kplan/docker",
                Action.RESTART,
                {"id": f"n{n}", "name": "nova_compute"},
                {"id": f"n{n}", "name": "nova_compute"},
                reasons=(Reason("trigger", "config nova.conf changed"),),
                host=f"cmp{n:02d}",
            )
        )
    return Plan(changes=tuple(changes), kplan_version="0.1.0")
