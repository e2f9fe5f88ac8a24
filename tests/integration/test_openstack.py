"""examples/openstack on three real lab hosts, through the CLI.

Keystone and Placement on every control host, Glance on one, behind HAProxy
and a keepalived virtual IP: a token through the VIP, an image uploaded and
listed back, Placement answering; a second plan changes nothing; a keystone option
restarts keystone one host at a time and nothing else; a new keystone
image runs db_sync once, then replaces keystone one host at a time; killing the
keepalived that holds the VIP moves it to another host while tokens keep
coming, and apply brings the killed one back. The tests run in file order
on one lab and one copy of the example.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import run_kplan
from tests.integration.amqp import amqp_login
from tests.integration.lab_fixture import Lab, lab_up
from tests.integration.openstack_helpers import (
    admin_token,
    changed,
    concurrent_answers,
    copy_example,
    placement_answers,
    sh,
    shorten_token_lifetime,
    started,
    upload_and_list_image,
)

pytestmark = pytest.mark.e2e

# A deploy pulls every image onto every host: minutes, not the CLI default of 120 s.
APPLY_TIMEOUT = 900

IMAGES = (
    *("mariadb", "memcached", "rabbitmq", "keystone"),
    *("haproxy", "keepalived", "glance", "placement"),
)
NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def lab3() -> Iterator[Lab]:
    yield from lab_up(3, IMAGES)


@pytest.fixture(scope="module")
def root(lab3: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(lab3, "openstack", tmp_path_factory.mktemp("example") / "openstack")


def _vip(lab: Lab) -> str:
    return lab.hosts[0].address.rsplit(".", 1)[0] + ".250"


def _vip_holders(lab: Lab) -> list[int]:
    vip = _vip(lab)
    return [i for i in range(3) if f"inet {vip}/" in sh(lab, i, "ip -4 addr show eth0")]


def test_deploy_gives_a_token_through_the_virtual_ip(lab3: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    run_kplan(root, "validate", check=True)
    run_kplan(root, "plan", "-out", "openstack.plan", check=True)
    run_kplan(root, "apply", "openstack.plan", check=True, timeout=APPLY_TIMEOUT)
    everywhere = {
        *("mariadb", "memcached", "rabbitmq", "keystone", "haproxy", "keepalived"),
        "placement_api",
    }
    first = set(sh(lab3, 0, "docker ps --format '{{.Names}}'").split())
    assert first == {*everywhere, "glance_api"}
    for i in (1, 2):
        assert set(sh(lab3, i, "docker ps --format '{{.Names}}'").split()) == everywhere
    assert len(_vip_holders(lab3)) == 1
    auth_url = run_kplan(root, "output", "-raw", "auth_url", check=True).stdout.strip()
    assert auth_url == f"http://{_vip(lab3)}:5000/v3"
    assert admin_token(root)["project"]["name"] == "admin"
    # Every keystone and placement is a backend behind the VIP; glance is on one host.
    haproxy_cfg = sh(lab3, 1, "cat /etc/kolla/haproxy/haproxy.cfg")
    for h in lab3.hosts:
        assert f"{h.address}:5000 check" in haproxy_cfg
        assert f"{h.address}:8778 check" in haproxy_cfg
    # MariaDB: one Galera cluster of three, all Synced; the services reach it
    # through the VIP, where one node takes the connections and two stand by.
    for i in range(3):
        status = sh(lab3, i, "docker exec mariadb mariadb -N -e \"SHOW STATUS LIKE 'wsrep_%'\"")
        wsrep = dict(line.split("\t", 1) for line in status.splitlines())
        assert wsrep["wsrep_cluster_size"] == "3" and wsrep["wsrep_local_state_comment"] == "Synced"
    db_lines = [line for line in haproxy_cfg.splitlines() if "server mariadb" in line]
    assert [line.split()[1:3] for line in db_lines] == [
        [f"mariadb{i + 1}", f"{h.address}:3306"] for i, h in enumerate(lab3.hosts)
    ]
    assert [line.split()[-1] == "backup" for line in db_lines] == [False, True, True]
    keystone_conf = sh(lab3, 2, "cat /etc/kolla/keystone/keystone.conf")
    assert f"@{_vip(lab3)}:3306/keystone" in keystone_conf
    # RabbitMQ: one cluster of three; its user logs in over AMQP on every node.
    ctl = "docker exec -u rabbitmq rabbitmq rabbitmqctl -q"
    status = sh(lab3, 1, f"{ctl} cluster_status --formatter json")
    assert sorted(json.loads(status)["running_nodes"]) == [f"rabbit@{n}" for n in NODES]
    url = run_kplan(root, "output", "-raw", "-show-sensitive", "transport_url", check=True).stdout
    assert amqp_login(url.strip()) == "ok"
    listed = upload_and_list_image(root, b"\0" * 65536)
    assert [(i["name"], i["status"]) for i in listed] == [("kplan-test", "active")]
    assert placement_answers(root) == {"resource_providers": []}


def test_second_plan_has_no_changes(root: Path) -> None:
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_keystone_option_restarts_keystone_one_host_at_a_time(lab3: Lab, root: Path) -> None:
    shorten_token_lifetime(root)
    others = ("memcached", "haproxy", "keepalived", "placement_api")
    before = {(i, n): started(lab3, i, n) for i in range(3) for n in ("keystone", *others)}
    plan = run_kplan(root, "plan", "-json", check=True)
    assert changed(plan.stdout) == {
        **{f'module.keystone.host_file.keystone_conf["{n}"]': "update" for n in NODES},
        **{f'module.keystone.docker_container.keystone["{n}"]': "restart" for n in NODES},
    }
    text = run_kplan(root, "plan", check=True).stdout
    rolls = (
        "# module.keystone.docker_container.keystone rolls 1 at a time: "
        '["node1"], then ["node2"], then ["node3"]'
    )
    assert rolls in text
    applied = run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT).stdout
    events = [
        line.split(": ", 1)
        for line in applied.splitlines()
        if line.startswith("module.keystone.docker_container.keystone[")
    ]
    assert [(a, e.split(" ")[0]) for a, e in events] == [
        (f'module.keystone.docker_container.keystone["{n}"]', word)
        for n in NODES
        for word in ("Restarting...", "Restart")
    ], applied
    for i in range(3):
        assert started(lab3, i, "keystone") != before[(i, "keystone")]
        for n in others:
            assert started(lab3, i, n) == before[(i, n)], (i, n)
    # A restarted keystone's first policy-checked requests, side by side, are all
    # answered (with threads they could race its policy setup and get 403).
    urls = [f"http://{h.address}:5000/v3/role_assignments" for h in lab3.hosts]
    assert set(concurrent_answers(root, urls)) == {200}
    assert admin_token(root)["user"]["name"] == "admin"
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def _new_keystone_image(lab: Lab, tag: str) -> None:
    """A keystone image with another digest (one more label), pushed as TAG: a new release."""
    image = f"{lab.registry}/kplan/keystone"
    sh(
        lab,
        0,
        f"docker create --name kplan-upgrade {image}:bookworm >/dev/null"
        f" && docker commit -c 'LABEL org.kplan.test=upgrade' kplan-upgrade {image}:{tag}"
        f" >/dev/null && docker rm kplan-upgrade >/dev/null && docker push -q {image}:{tag}",
    )


def test_new_keystone_image_runs_db_sync_once_then_replaces_one_host_at_a_time(
    lab3: Lab, root: Path
) -> None:
    _new_keystone_image(lab3, "upgrade")
    main = root / "main.kp.yaml"
    text = main.read_text()
    main.write_text(
        text.replace("      processes: 1\n", "      processes: 1\n      image_tag: upgrade\n", 1)
    )
    others = ("memcached", "haproxy", "keepalived", "placement_api")
    before = {(i, n): started(lab3, i, n) for i in range(3) for n in others}
    planned = changed(run_kplan(root, "plan", "-json", check=True).stdout)
    assert {a: x for a, x in planned.items() if ".docker_container." in a} == {
        f'module.keystone.docker_container.keystone["{n}"]': "replace" for n in NODES
    }
    assert "module.keystone.docker_job.db_sync" in planned
    assert not any(a.startswith(("module.glance.", "module.placement.")) for a in planned)
    applied = run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT).stdout
    events = [
        line
        for line in applied.splitlines()
        if line.startswith(
            ("module.keystone.docker_job.db_sync:", "module.keystone.docker_container.")
        )
    ]
    # db_sync once (started, then done), before the first container is replaced;
    # then the containers one host at a time, each done before the next begins.
    assert [e.split(": ", 1)[0] for e in events] == [
        "module.keystone.docker_job.db_sync",
        "module.keystone.docker_job.db_sync",
        *(f'module.keystone.docker_container.keystone["{n}"]' for n in NODES for _ in (1, 2)),
    ], applied
    assert all(" Replac" in e for e in events[2:]), events
    for i in range(3):
        labels = sh(lab3, i, "docker inspect -f '{{json .Config.Labels}}' keystone")
        assert '"org.kplan.test":"upgrade"' in labels
        for n in others:
            assert started(lab3, i, n) == before[(i, n)], (i, n)
    assert admin_token(root)["user"]["name"] == "admin"
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_killing_the_vip_holder_moves_the_vip_and_tokens_keep_coming(lab3: Lab, root: Path) -> None:
    (master,) = _vip_holders(lab3)
    sh(lab3, master, "docker kill keepalived")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        moved = [i for i in _vip_holders(lab3) if i != master]
        if moved:
            break
        time.sleep(0.5)
    assert moved, "no other host took the VIP within 30 s"
    assert admin_token(root)["user"]["name"] == "admin"
    # The killed keepalived is drift: apply starts it again, and it gives up
    # the stale address a SIGKILL left on the interface.
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2 and "container stopped outside kplan" in plan.stdout
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(_vip_holders(lab3)) != 1:
        time.sleep(0.5)
    assert _vip_holders(lab3) == moved[:1]
    assert admin_token(root)["user"]["name"] == "admin"
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
