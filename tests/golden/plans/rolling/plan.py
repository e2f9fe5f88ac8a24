"""Two rolling blocks (serial 1; 40% in a module) and a block that does not roll."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange, Roll


def _restart(module: str | None, name: str, host: str) -> ResourceChange:
    base = ROOT if module is None else ROOT.child(module)
    attrs = {"id": f"{name}-{host}", "image": f"kolla/{name}:2024.1"}
    return ResourceChange(
        addr=base.resource("docker_container", name, host),
        provider="kplan/docker",
        action=Action.RESTART,
        before=attrs,
        after=attrs,
        reasons=(Reason("trigger", f"config {name}.conf changed"),),
        host=host,
    )


def build() -> Plan:
    keystone = [_restart(None, "keystone", h) for h in ("ctl1", "ctl2", "ctl3")]
    memcached = [_restart(None, "memcached", h) for h in ("ctl1", "ctl2")]
    mariadb = [_restart("db", "mariadb", h) for h in ("ctl1", "ctl2", "ctl3")]
    return Plan(
        changes=(*keystone, *memcached, *mariadb),
        rolls=(
            Roll("docker_container.keystone", 1, tuple((c.addr,) for c in keystone)),
            Roll("module.db.docker_container.mariadb", "40%", tuple((c.addr,) for c in mariadb)),
        ),
        kplan_version="0.1.0",
    )
