"""Restarts triggered by restart_on (a changed config file, a rotated secret)."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange


def _container(name: str, host: str, reasons: tuple[Reason, ...]) -> ResourceChange:
    attrs = {"id": f"{name}-{host}", "name": name, "image": f"kolla/{name}:2024.1"}
    return ResourceChange(
        addr=ROOT.resource("docker_container", name, host),
        provider="kplan/docker",
        action=Action.RESTART,
        before=attrs,
        after=attrs,
        reasons=reasons,
        host=host,
    )


def build() -> Plan:
    conf = Reason("trigger", "config keystone.conf changed")
    secret = Reason("trigger", "secret keystone_db_password rotated")
    noop = ResourceChange(
        addr=ROOT.resource("docker_container", "memcached", "ctl1"),
        provider="kplan/docker",
        action=Action.NOOP,
        before={"id": "m1"},
        after={"id": "m1"},
    )
    return Plan(
        changes=(
            _container("keystone", "ctl2", (conf, secret)),
            _container("keystone", "ctl1", (conf, secret)),
            _container("keystone_fernet", "ctl1", (conf,)),
            noop,
        ),
        kplan_version="0.1.0",
    )
