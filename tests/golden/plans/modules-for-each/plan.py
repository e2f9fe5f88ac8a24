"""Nested module instances with for_each and count keys; -target recorded in the plan."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, PlanMode, ResourceChange
from kplan.values import UNKNOWN


def build() -> Plan:
    changes = []
    for host in ("ctl2", "ctl1"):
        keystone = ROOT.child("keystone", host)
        changes.append(
            ResourceChange(
                keystone.resource("docker_container", "api"),
                "kplan/docker",
                Action.CREATE,
                None,
                {"id": UNKNOWN, "name": "keystone", "image": "kolla/keystone:2024.1"},
                host=host,
            )
        )
        tls = keystone.child("tls")
        for i in (1, 0):
            changes.append(
                ResourceChange(
                    tls.resource("tls_cert", "backend", i),
                    "kplan/tls",
                    Action.UPDATE,
                    {"id": f"c{i}", "dns_names": ["a"], "validity_days": 365},
                    {"id": f"c{i}", "dns_names": ["a", host], "validity_days": 365},
                    host=host,
                )
            )
    changes.append(
        ResourceChange(
            ROOT.resource("secret_password", "keystone_db"),
            "kplan/secret",
            Action.CREATE,
            None,
            {"id": UNKNOWN, "length": 32, "result": UNKNOWN},
        )
    )
    return Plan(
        changes=tuple(changes),
        mode=PlanMode.NORMAL,
        workspace="staging",
        targets=('module.keystone["ctl1"]', 'module.keystone["ctl2"]', "secret_password"),
        excludes=('module.keystone["ctl3"]',),
        kplan_version="0.1.0",
    )
