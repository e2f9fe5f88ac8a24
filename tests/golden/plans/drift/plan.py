"""Drift found by refresh (a stopped container, a deleted file), then the plan that repairs it."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange


def build() -> Plan:
    running = {"id": "ab12", "name": "rabbitmq", "state": "running", "restart_count": 0}
    stopped = {"id": "ab12", "name": "rabbitmq", "state": "exited", "restart_count": 3}
    conf = {"path": "/etc/kolla/rabbitmq/rabbitmq.conf", "content": "loopback_users = none\n"}
    container = ROOT.resource("docker_container", "rabbitmq")
    file = ROOT.resource("host_file", "rabbitmq_conf")
    drift = (
        ResourceChange(
            container,
            "kplan/docker",
            Action.UPDATE,
            running,
            stopped,
            reasons=(Reason("drift", "container stopped outside kplan"),),
            host="ctl1",
        ),
        ResourceChange(file, "kplan/host", Action.DELETE, conf, None, host="ctl1"),
    )
    changes = (
        ResourceChange(
            container,
            "kplan/docker",
            Action.UPDATE,
            stopped,
            {**stopped, "state": "running"},
            reasons=(Reason("drift", "drift: container stopped outside kplan"),),
            host="ctl1",
        ),
        ResourceChange(
            file,
            "kplan/host",
            Action.CREATE,
            None,
            conf,
            reasons=(Reason("drift", "drift: file deleted outside kplan"),),
            host="ctl1",
        ),
    )
    return Plan(changes=changes, drift=drift, serial=12, kplan_version="0.1.0")
