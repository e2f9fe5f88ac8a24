"""Output changes only: added, changed, removed, unknown and sensitive outputs."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, OutputChange, Plan, ResourceChange
from kplan.values import UNKNOWN, Secret


def build() -> Plan:
    noop = ResourceChange(
        ROOT.resource("docker_container", "keystone"),
        "kplan/docker",
        Action.NOOP,
        {"id": "k1", "name": "keystone"},
        {"id": "k1", "name": "keystone"},
    )
    outputs = (
        OutputChange("auth_url", Action.UPDATE, "http://10.0.0.11:5000", "https://10.0.0.11:5000"),
        OutputChange("admin_password", Action.UPDATE, "old-admin-pw", "new-admin-pw", True),
        OutputChange("db_password", Action.CREATE, None, Secret("db-pw-raw"), False),
        OutputChange(
            "endpoints", Action.CREATE, None, {"public": "https://x", "internal": UNKNOWN}
        ),
        OutputChange("fernet_key_id", Action.CREATE, None, UNKNOWN),
        OutputChange("legacy_url", Action.DELETE, "http://old", None),
        OutputChange("region", Action.NOOP, "RegionOne", "RegionOne"),
    )
    return Plan(changes=(noop,), outputs=outputs, kplan_version="0.1.0")
