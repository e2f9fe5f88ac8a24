"""An in-place update of a rendered config file: a line-by-line heredoc diff."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange

_BEFORE = "\n".join(
    ["[DEFAULT]", "debug = False", "log_dir = /var/log/kolla/keystone", ""]
    + [f"# option {i}" for i in range(12)]
    + ["", "[token]", "expiration = 3600", "provider = fernet", ""]
)
_AFTER = _BEFORE.replace("debug = False", "debug = True").replace(
    "expiration = 3600\n", "expiration = 7200\nallow_expired_window = 172800\n"
)


def build() -> Plan:
    change = ResourceChange(
        addr=ROOT.resource("host_file", "keystone_conf"),
        provider="kplan/host",
        action=Action.UPDATE,
        before={
            "id": "ctl1:/etc/kolla/keystone/keystone.conf",
            "path": "/etc/kolla/keystone/keystone.conf",
            "mode": "0600",
            "owner": "keystone",
            "content": _BEFORE,
            "tags": ["kolla", "keystone"],
        },
        after={
            "id": "ctl1:/etc/kolla/keystone/keystone.conf",
            "path": "/etc/kolla/keystone/keystone.conf",
            "mode": "0640",
            "owner": "keystone",
            "content": _AFTER,
            "tags": ["kolla", "keystone"],
        },
        reasons=(
            Reason("attribute", "content changed", ("content",)),
            Reason("attribute", "mode changed", ("mode",)),
        ),
        host="ctl1",
    )
    return Plan(changes=(change,), lineage="lineage-1", serial=4, kplan_version="0.1.0")
