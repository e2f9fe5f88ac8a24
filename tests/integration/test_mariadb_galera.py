"""kplan/mariadb on three real lab hosts: a Galera cluster, through the CLI.

A new cluster starts on the first host and the others join (all three
created at once: creates do not roll); every node is Synced in a cluster of
three; a second plan changes nothing; a node stopped by hand is drift that
apply starts again, and it rejoins the cluster; the whole cluster stopped at once
starts again all together, from its most advanced node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import run_kplan
from tests.integration.lab_fixture import Lab, check, kplan_lab, lab_up
from tests.integration.openstack_helpers import sh

pytestmark = pytest.mark.e2e

# A deploy pulls every image onto every host: minutes, not the CLI default of 120 s.
APPLY_TIMEOUT = 900

MODULE = """\
modules:
  mariadb:
    source: kplan/mariadb
    hosts: ${hosts}
"""


@pytest.fixture(scope="module")
def lab3() -> Iterator[Lab]:
    yield from lab_up(3, ("mariadb",))


@pytest.fixture(scope="module")
def root(lab3: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("galera")
    (dst / "main.kp.yaml").write_text(MODULE)
    check(kplan_lab("up", "--name", lab3.name, "--inventory", str(dst / "inventory.kp.yaml")))
    return dst


def _status(lab: Lab, i: int) -> dict[str, str]:
    out = sh(
        lab,
        i,
        'docker exec mariadb mariadb -N -e "SHOW STATUS WHERE Variable_name IN '
        "('wsrep_cluster_size', 'wsrep_local_state_comment', 'wsrep_cluster_status')\"",
    )
    return dict(line.split("\t", 1) for line in out.strip().splitlines())


SYNCED = {
    "wsrep_cluster_size": "3",
    "wsrep_cluster_status": "Primary",
    "wsrep_local_state_comment": "Synced",
}


def test_a_new_cluster_of_three(lab3: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    plan = run_kplan(root, "plan", "-out", "galera.plan", check=True).stdout
    assert "rolls" not in plan, "creates are not rolled"
    run_kplan(root, "apply", "galera.plan", check=True, timeout=APPLY_TIMEOUT)
    for i in range(3):
        assert _status(lab3, i) == SYNCED
    # The first host started the cluster; the others joined it.
    logs = sh(lab3, 0, "docker logs mariadb 2>&1 | grep kplan-mariadb")
    assert "starting a new cluster here" in logs
    for i in (1, 2):
        assert "joining the running cluster" in sh(lab3, i, "docker logs mariadb 2>&1")
    # What one node writes, the others have.
    sh(lab3, 1, "docker exec mariadb mariadb -e 'CREATE DATABASE kplan_galera_test'")
    assert "kplan_galera_test" in sh(lab3, 2, "docker exec mariadb mariadb -N -e 'SHOW DATABASES'")


def test_second_plan_has_no_changes(root: Path) -> None:
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_a_node_stopped_by_hand_rejoins_on_apply(lab3: Lab, root: Path) -> None:
    sh(lab3, 1, "docker stop mariadb")
    assert _status(lab3, 0)["wsrep_cluster_size"] == "2"
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2 and "container stopped outside kplan" in plan.stdout
    # apply returns once the node's health gate passes: Synced in a cluster of three.
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    for i in range(3):
        assert _status(lab3, i) == SYNCED
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_a_whole_cluster_stopped_at_once_restarts_from_the_most_advanced_node(
    lab3: Lab, root: Path
) -> None:
    # Stopped by hand on every host, then made to look like a power cut: a
    # running node's grastate.dat says seqno -1 and safe_to_bootstrap 0, and a
    # crash leaves it so (the last node of a clean stop would have written 1).
    # Stopped, not crashed, for Docker: it does not restart them itself.
    mounts = '{{range .Mounts}}{{if eq .Destination "/var/lib/mysql"}}{{.Source}}{{end}}{{end}}'
    for i in range(3):
        sh(lab3, i, "docker stop -t 0 mariadb")
    for i in range(3):
        data = sh(lab3, i, f"docker inspect -f '{mounts}' mariadb").strip()
        sh(lab3, i, f"sed -i 's/^safe_to_bootstrap: *1/safe_to_bootstrap: 0/' {data}/grastate.dat")
        assert "safe_to_bootstrap: 0" in sh(lab3, i, f"cat {data}/grastate.dat")
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert plan.stdout.count("(because container stopped outside kplan)") == 3, plan.stdout
    # A stopped node serves nobody: the three start together (a roll would start
    # one and wait for it, and it waits for the others' positions).
    assert "rolls" not in plan.stdout, plan.stdout
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    for i in range(3):
        assert _status(lab3, i) == SYNCED
    logs = [
        sh(lab3, i, "docker logs --since 10m mariadb 2>&1 | grep kplan-mariadb") for i in range(3)
    ]
    assert sum("most advanced of all nodes" in text for text in logs) == 1, logs
    assert "kplan_galera_test" in sh(lab3, 2, "docker exec mariadb mariadb -N -e 'SHOW DATABASES'")
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
