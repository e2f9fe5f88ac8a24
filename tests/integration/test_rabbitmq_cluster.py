"""kplan/rabbitmq on three real lab hosts: a RabbitMQ cluster, through the CLI.

All three nodes are created at once and form one cluster (the others wait
for the seed, then classic peer discovery joins them); a user logs in over
AMQP 0-9-1 with the password kplan generated (the transport URL output),
from this machine to each node; a second plan changes nothing; a user
deleted by hand and a password changed by hand are planned back and apply
restores them; a changed rabbitmq.conf restarts the nodes one at a time, each
back in the full cluster before the next.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import run_kplan
from tests.integration.amqp import amqp_login
from tests.integration.lab_fixture import Lab, check, kplan_lab, lab_up
from tests.integration.openstack_helpers import sh, started

pytestmark = pytest.mark.e2e

# A deploy pulls the image onto every host and boots three Erlang nodes: minutes.
APPLY_TIMEOUT = 900
# A refresh runs rabbitmqctl (an Erlang VM each time) on a busy machine.
PLAN_TIMEOUT = 300

MODULE = """\
variables:
  watermark: {type: string, default: 256MiB}
modules:
  rabbitmq:
    source: kplan/rabbitmq
    hosts: ${hosts}
    inputs:
      memory_high_watermark: ${var.watermark}
      vhosts: ["/", openstack]
      users:
        openstack: {}
        nova: {vhost: openstack, tags: [monitoring]}
outputs:
  nova_url:
    value: ${module.rabbitmq.transport_urls["nova"]}
    sensitive: true
  openstack_url:
    value: ${module.rabbitmq.transport_urls["openstack"]}
    sensitive: true
"""


@pytest.fixture(scope="module")
def lab3() -> Iterator[Lab]:
    yield from lab_up(3, ("rabbitmq",))


@pytest.fixture(scope="module")
def root(lab3: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("rabbitmq")
    (dst / "main.kp.yaml").write_text(MODULE)
    check(kplan_lab("up", "--name", lab3.name, "--inventory", str(dst / "inventory.kp.yaml")))
    return dst


def _ctl(lab: Lab, i: int, args: str) -> str:
    return sh(lab, i, f"docker exec -u rabbitmq rabbitmq rabbitmqctl -q {args}")


def _running_nodes(lab: Lab, i: int) -> list[str]:
    status = json.loads(_ctl(lab, i, "cluster_status --formatter json"))
    return sorted(status["running_nodes"])


ALL = ["rabbit@node1", "rabbit@node2", "rabbit@node3"]


def _url(root: Path, name: str) -> str:
    return run_kplan(root, "output", "-raw", "-show-sensitive", name, check=True).stdout.strip()


# ---- the tests -----------------------------------------------------------------------


def test_a_new_cluster_of_three(lab3: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    plan = run_kplan(root, "plan", "-out", "rabbitmq.plan", check=True, timeout=PLAN_TIMEOUT)
    assert "rolls" not in plan.stdout, "creates are not rolled"
    run_kplan(root, "apply", "rabbitmq.plan", check=True, timeout=APPLY_TIMEOUT)
    for i in range(3):
        assert _running_nodes(lab3, i) == ALL
    # The seed started alone; the others waited for it, then joined.
    assert "waiting for the seed" not in sh(lab3, 0, "docker logs rabbitmq 2>&1")
    for i in (1, 2):
        logs = sh(lab3, i, "docker logs rabbitmq 2>&1")
        assert "the seed answers: starting, to join its cluster" in logs
    # The cookie is kplan's, the same on every node, and no longer the image's.
    cookies = {
        sh(lab3, i, "docker exec rabbitmq sha256sum /var/lib/rabbitmq/.erlang.cookie")
        for i in range(3)
    }
    assert len(cookies) == 1
    assert "-r-------- 1 rabbitmq rabbitmq" in sh(
        lab3, 0, "docker exec rabbitmq ls -l /var/lib/rabbitmq/.erlang.cookie"
    )
    assert "nova\t[monitoring]" in _ctl(lab3, 2, "list_users")
    assert "nova\t.*\t.*\t.*" in _ctl(lab3, 1, "list_permissions -p openstack")


def test_users_log_in_over_amqp_on_every_node(root: Path) -> None:
    nova = _url(root, "nova_url")
    assert nova.startswith("rabbit://nova:") and nova.endswith(":5672/openstack")
    assert nova.count("@10.231.") == 3
    assert amqp_login(nova) == "ok"
    openstack = _url(root, "openstack_url")
    assert openstack.endswith(":5672//")
    assert amqp_login(openstack) == "ok"
    # A wrong password is refused: the check above can fail.
    wrong = openstack.replace("openstack:", "openstack:x", 1)
    assert amqp_login(wrong) != "ok"
    # Nothing secret in the state file in the clear.
    password = urlsplit(nova).netloc.split("@")[0].split(":")[1]
    for state in root.glob(".kplan/*.db"):
        assert password.encode() not in state.read_bytes()


def test_second_plan_has_no_changes(root: Path) -> None:
    plan = run_kplan(root, "plan", "-detailed-exitcode", timeout=PLAN_TIMEOUT)
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_a_user_deleted_and_a_password_changed_by_hand_are_restored(lab3: Lab, root: Path) -> None:
    _ctl(lab3, 1, "delete_user nova")
    sh(
        lab3,
        2,
        "printf %s changed-by-hand | docker exec -i -u rabbitmq rabbitmq "
        "rabbitmqctl -q change_password openstack",
    )
    assert amqp_login(_url(root, "openstack_url")) != "ok"
    plan = run_kplan(root, "plan", "-detailed-exitcode", timeout=PLAN_TIMEOUT)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    text = plan.stdout
    assert 'module.rabbitmq.rabbitmq_user.this["nova"] will be created' in text
    assert 'module.rabbitmq.rabbitmq_permissions.this["nova"] will be created' in text
    assert 'module.rabbitmq.rabbitmq_user.this["openstack"] will be updated in-place' in text
    assert "(because password changed outside kplan; restoring it)" in text
    assert "changed-by-hand" not in text
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    assert amqp_login(_url(root, "nova_url")) == "ok"
    assert amqp_login(_url(root, "openstack_url")) == "ok"
    assert run_kplan(root, "plan", "-detailed-exitcode", timeout=PLAN_TIMEOUT).returncode == 0


def test_a_config_change_restarts_one_node_at_a_time(lab3: Lab, root: Path) -> None:
    before = [started(lab3, i, "rabbitmq") for i in range(3)]
    plan = run_kplan(
        root, "plan", "-var", "watermark=200MiB", check=True, timeout=PLAN_TIMEOUT
    ).stdout
    assert (
        'docker_container.rabbitmq rolls 1 at a time: ["node1"], then ["node2"], then ["node3"]'
        in plan
    )
    assert "Plan: 0 to add, 3 to change, 3 to restart, 0 to destroy." in plan
    run_kplan(
        root,
        "apply",
        "-auto-approve",
        "-var",
        "watermark=200MiB",
        check=True,
        timeout=APPLY_TIMEOUT,
    )
    after = [started(lab3, i, "rabbitmq") for i in range(3)]
    assert all(a != b for a, b in zip(before, after, strict=True))
    # One at a time: each node started only after the one before it was back.
    assert after == sorted(after)
    for i in range(3):
        assert _running_nodes(lab3, i) == ALL
        assert _ctl(lab3, i, "eval 'vm_memory_monitor:get_memory_limit().'").strip() == str(
            200 * 1024 * 1024
        )
    assert amqp_login(_url(root, "nova_url")) == "ok"
