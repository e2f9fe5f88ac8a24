"""A replace forced by one attribute (the image), and one requested with -replace."""

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange
from kplan.values import UNKNOWN


def build() -> Plan:
    image = ResourceChange(
        addr=ROOT.resource("docker_container", "glance_api"),
        provider="kplan/docker",
        action=Action.REPLACE,
        before={
            "id": "4f1c0d9e",
            "name": "glance_api",
            "image": "quay.io/openstack.kolla/glance-api:2023.2",
            "privileged": False,
            "ports": [9292],
        },
        after={
            "id": UNKNOWN,
            "name": "glance_api",
            "image": "quay.io/openstack.kolla/glance-api:2024.1",
            "privileged": False,
            "ports": [9292],
        },
        reasons=(Reason("attribute", "image changed", ("image",)),),
        replace_paths=(("image",),),
        host="ctl1",
    )
    requested = ResourceChange(
        addr=ROOT.resource("docker_container", "memcached"),
        provider="kplan/docker",
        action=Action.REPLACE,
        before={"id": "9a8b7c", "name": "memcached", "image": "memcached:1.6"},
        after={"id": UNKNOWN, "name": "memcached", "image": "memcached:1.6"},
        reasons=(Reason("requested", "replacement requested with -replace"),),
        host="ctl1",
    )
    return Plan(changes=(requested, image), kplan_version="0.1.0")
