"""examples/openstack-aio on a real lab host, through the CLI: OpenStack from the catalog.

Deploy MariaDB, memcached, and Keystone, Glance and Placement behind
HAProxy on a keepalived virtual IP; a token through the virtual IP (real
HTTP), an image uploaded to Glance and listed back, Placement answering; a
second plan changes nothing; a keystone option restarts keystone and nothing
else; a database user and a keystone endpoint deleted by hand are drift that
apply repairs; keystone's own database user, dropped, is put back by a
targeted apply. The tests run in file order on one lab and one copy of the
example.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import run_kplan
from tests.integration.lab_fixture import Lab, lab_up
from tests.integration.openstack_helpers import (
    admin_token,
    changed,
    copy_example,
    delete_endpoint,
    placement_answers,
    sensitive_output,
    sh,
    shorten_token_lifetime,
    started,
    token,
    upload_and_list_image,
    wait_for,
)

pytestmark = pytest.mark.e2e

# A deploy pulls every image onto every host: minutes, not the CLI default of 120 s.
APPLY_TIMEOUT = 900

IMAGES = ("mariadb", "memcached", "keystone", "haproxy", "keepalived", "glance", "placement")
CONTAINERS = (*IMAGES[:5], "glance_api", "placement_api")


@pytest.fixture(scope="module")
def lab1() -> Iterator[Lab]:
    yield from lab_up(1, IMAGES)


@pytest.fixture(scope="module")
def root(lab1: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(lab1, "openstack-aio", tmp_path_factory.mktemp("example") / "aio")


def test_deploy_gives_a_token_through_the_virtual_ip(lab1: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    run_kplan(root, "validate", check=True)
    run_kplan(root, "plan", "-out", "aio.plan", check=True)
    run_kplan(root, "apply", "aio.plan", check=True, timeout=APPLY_TIMEOUT)
    names = set(sh(lab1, 0, "docker ps --format '{{.Names}}'").split())
    assert names == set(CONTAINERS)
    vip = lab1.hosts[0].address.rsplit(".", 1)[0] + ".250"
    auth_url = run_kplan(root, "output", "-raw", "auth_url", check=True).stdout.strip()
    assert auth_url == f"http://{vip}:5000/v3"
    assert f"inet {vip}/24" in sh(lab1, 0, "ip -4 addr show eth0")
    found = admin_token(root)
    assert found["project"]["name"] == "admin"
    assert "admin" in [r["name"] for r in found["roles"]]
    catalog = {e["type"]: e for e in found["catalog"]}
    urls = {e["interface"]: e["url"] for e in catalog["identity"]["endpoints"]}
    assert urls == dict.fromkeys(("public", "internal", "admin"), f"http://{vip}:5000")
    # The clouds.yaml output is what `openstack --os-cloud kplan` reads.
    cloud = yaml.safe_load(sensitive_output(root, "clouds_yaml"))["clouds"]["kplan"]
    assert token(cloud["auth"]["auth_url"], cloud["auth"]["password"])["user"]["name"] == "admin"
    # An image uploaded to Glance through the VIP is listed back; Placement answers.
    data = hashlib.sha256(b"kplan").digest() * 32768  # 1 MiB
    listed = upload_and_list_image(root, data)
    assert [(i["name"], i["status"], i["size"]) for i in listed] == [
        ("kplan-test", "active", len(data))
    ]
    assert placement_answers(root) == {"resource_providers": []}
    # The keys are owned by the image's keystone user (a fixed id) and readable by it only.
    keys = sh(
        lab1, 0, "stat -c '%u %a' /etc/kolla/keystone/fernet-keys/0 /etc/kolla/keystone/fernet-keys"
    )
    assert keys.split("\n")[:2] == ["42425 600", "42425 700"]
    # No secret in the saved plan or in what `show` prints.
    password = sensitive_output(root, "admin_password").strip()
    assert password not in run_kplan(root, "show", check=True).stdout
    assert password.encode() not in (root / "aio.plan").read_bytes()


def test_second_plan_has_no_changes(root: Path) -> None:
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_keystone_option_restarts_only_keystone(lab1: Lab, root: Path) -> None:
    shorten_token_lifetime(root)
    before = {n: started(lab1, 0, n) for n in CONTAINERS}
    plan = run_kplan(root, "plan", "-json", check=True)
    assert changed(plan.stdout) == {
        'module.keystone.host_file.keystone_conf["node1"]': "update",
        'module.keystone.docker_container.keystone["node1"]': "restart",
    }
    text = run_kplan(root, "plan", check=True).stdout
    assert "- expiration = 86400" in text and "+ expiration = 3600" in text
    assert '(because restart: module.keystone.host_file.keystone_conf["node1"] changed)' in text
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    after = {n: started(lab1, 0, n) for n in CONTAINERS}
    assert {n for n in CONTAINERS if after[n] != before[n]} == {"keystone"}
    assert "expiration = 3600" in sh(lab1, 0, "cat /etc/kolla/keystone/keystone.conf")
    assert admin_token(root)["user"]["name"] == "admin"
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_database_user_dropped_by_hand_is_drift_that_apply_repairs(lab1: Lab, root: Path) -> None:
    # Placement's user, not keystone's: without its database keystone cannot
    # answer, and the plan could not refresh the keystone objects to show the drift.
    sh(lab1, 0, "docker exec mariadb mariadb -e 'DROP USER placement'")
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "module.placement.mariadb_user.placement will be created" in plan.stdout, plan.stdout
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    assert placement_answers(root) == {"resource_providers": []}
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_keystone_endpoint_deleted_by_hand_is_drift_that_apply_repairs(root: Path) -> None:
    delete_endpoint(root, "image", "public")
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert 'module.glance.keystone_endpoint.glance["public"] will be created' in plan.stdout
    assert "Plan: 1 to add, 0 to change, 0 to restart, 0 to destroy." in plan.stdout, plan.stdout
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    catalog = {e["type"]: e for e in admin_token(root)["catalog"]}
    assert "public" in {e["interface"] for e in catalog["image"]["endpoints"]}
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_keystone_database_user_dropped_by_hand_is_put_back_by_a_targeted_apply(
    lab1: Lab, root: Path
) -> None:
    # keystone cannot answer without its database user, so a full plan cannot
    # refresh keystone's objects; it says which and why, and a targeted apply
    # of the user's grant (dropped with the user; it brings the user along and
    # refreshes only what it depends on) repairs it.
    sh(lab1, 0, "docker exec mariadb mariadb -e 'DROP USER keystone'")
    sh(lab1, 0, "docker restart keystone")  # its pooled connections would hide the loss a while
    plan = run_kplan(root, "plan")
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert "Error: refreshing module.keystone." in plan.stderr, plan.stderr
    auth_url = run_kplan(root, "output", "-raw", "auth_url", check=True).stdout.strip()
    assert f"keystone at {auth_url}" in plan.stderr, plan.stderr
    target = "module.keystone.mariadb_grant.keystone"
    applied = run_kplan(root, "apply", "-auto-approve", "-target", target, timeout=APPLY_TIMEOUT)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "module.keystone.mariadb_user.keystone: Creation complete" in applied.stdout
    assert f"{target}: Creation complete" in applied.stdout
    # keystone answers again once it reconnects (its container was never changed).
    assert wait_for(lambda: admin_token(root)["user"]["name"] == "admin", 90)
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
