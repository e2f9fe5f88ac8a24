"""Create only: nested maps and lists, unknown values, a secret, a multi-line string."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange
from kplan.values import UNKNOWN, Secret


def build() -> Plan:
    container = ResourceChange(
        addr=ROOT.resource("docker_container", "keystone"),
        provider="kplan/docker",
        action=Action.CREATE,
        before=None,
        after={
            "id": UNKNOWN,
            "name": "keystone",
            "image": "quay.io/openstack.kolla/keystone:2024.1",
            "environment": {
                "KOLLA_CONFIG_STRATEGY": "COPY_ALWAYS",
                "KEYSTONE_DB_PASSWORD": Secret("s3cr3t-db-pw"),
            },
            "ports": [5000, 35357],
            "volumes": [
                {"source": "/etc/kolla/keystone", "target": "/var/lib/kolla/config_files"},
                {"source": "kolla_logs", "target": "/var/log/kolla"},
            ],
            "healthcheck": {"test": ["CMD", "healthcheck_curl", "http://10.0.0.11:5000"]},
            "labels": {},
            "command": [],
            "restart_policy": None,
        },
        reasons=(Reason("new", "not in state yet"),),
        host="ctl1",
    )
    conf = ResourceChange(
        addr=ROOT.resource("host_file", "keystone_conf"),
        provider="kplan/host",
        action=Action.CREATE,
        before=None,
        after={
            "path": "/etc/kolla/keystone/keystone.conf",
            "mode": "0600",
            "content": "[DEFAULT]\ndebug = False\n\n[database]\nmax_retries = -1\n",
            "sha256": UNKNOWN,
        },
        host="ctl1",
    )
    return Plan(
        changes=(container, conf),
        workspace="default",
        lineage="7b3e1c2a-0000-4000-8000-000000000001",
        serial=0,
        input_checksum="sha256:0f1e2d",
        variables={"release": "2024.1", "db_password": Secret("s3cr3t-db-pw")},
        kplan_version="0.1.0",
    )
