"""The mariadb provider on a real lab host, through the CLI: MariaDB in a container.

One lab host runs the lab's ``mariadb`` image (a docker_container of the same
module). A database, a user and a grant are created through ``kplan apply``;
a second plan has no changes; a password changed by hand with ``docker exec``
and a privilege revoked by hand show in the plan as updates (the password as
``(sensitive value)``, never the value) and apply repairs both; destroy removes
them. A refresh of many users over the real SSH session costs one exec.
The tests run in file order against one lab and one root module.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kplan.provider_api import ConfigureRequest, HostInfo, ReadInstance, ReadRequest
from kplan.transport.base import Connection
from kplan.transport.ssh import SSHConnection
from kplan.values import Secret
from kplan_providers.mariadb import MariaDBProvider
from kplan_providers.mariadb._sql import native_hash
from tests.e2e.conftest import plan_changes, run_kplan
from tests.integration.lab_fixture import Lab, lab_up, run_ssh

pytestmark = pytest.mark.e2e

PASSWORD = "first-Passw0rd-of-keystone"

MAIN = """\
variables:
  keystone_db_password: {type: string, default: "%(password)s"}
resources:
  docker_image.mariadb:
    host: node1
    name: ${host.node1.vars.registry}/kplan/mariadb
    tag: bookworm
  docker_container.mariadb:
    host: node1
    name: mariadb
    image: ${docker_image.mariadb.repo_digest}
    healthcheck: {test: "mariadb-admin --silent ping", interval: 1s, retries: 30}
    health_timeout: 90
  mariadb_database.keystone:
    host: node1
    name: keystone
    depends_on: [docker_container.mariadb]
  mariadb_user.keystone:
    host: node1
    name: keystone
    password: ${var.keystone_db_password}
    depends_on: [docker_container.mariadb]
  mariadb_grant.keystone:
    host: node1
    user: ${mariadb_user.keystone.name}
    client_host: ${mariadb_user.keystone.client_host}
    database: ${mariadb_database.keystone.name}
    privileges: [ALL]
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_up(1, ("mariadb",))


@pytest.fixture(scope="module")
def root(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("mariadb") / "root"
    dst.mkdir()
    shutil.copy(lab.inventory, dst / "inventory.kp.yaml")
    (dst / "main.kp.yaml").write_text(MAIN % {"password": PASSWORD})
    return dst


def _in_db(lab: Lab, sql: str, extra: str = "") -> tuple[int, str, str]:
    """Run SQL in the mariadb container on node1 as root (unix_socket), or as ``extra``."""
    with lab.ssh(lab.hosts[0]) as c:
        quoted = sql.replace("'", "'\\''")
        return run_ssh(
            c, f"docker exec mariadb mariadb --batch --skip-column-names {extra} -e '{quoted}'"
        )


def test_create_database_user_and_grant(lab: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    run_kplan(root, "validate", check=True)
    plan = run_kplan(root, "plan", "-out", "db.plan", check=True)
    assert "Plan: 5 to add, 0 to change, 0 to restart, 0 to destroy." in plan.stdout
    assert PASSWORD not in plan.stdout
    run_kplan(root, "apply", "db.plan", check=True)
    code, out, err = _in_db(lab, "SHOW DATABASES")
    assert code == 0 and "keystone" in out.split(), err
    code, out, err = _in_db(lab, "SELECT CURRENT_USER()", f"-ukeystone -p{PASSWORD}")
    assert code == 0 and out.strip() == "keystone@%", err
    _, out, _ = _in_db(lab, "SHOW GRANTS FOR 'keystone'@'%'")
    assert "GRANT ALL PRIVILEGES ON `keystone`.* TO `keystone`@`%`" in out


def test_second_plan_has_no_changes(root: Path) -> None:
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "No changes." in plan.stdout


def test_a_password_changed_by_hand_is_planned_back(lab: Lab, root: Path) -> None:
    code, _, err = _in_db(lab, "ALTER USER 'keystone'@'%' IDENTIFIED BY 'changed-by-hand'")
    assert code == 0, err
    code, _, err = _in_db(lab, "REVOKE DELETE ON keystone.* FROM 'keystone'@'%'")
    assert code == 0, err
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    text = plan.stdout
    assert "password changed outside kplan; restoring it" in text, text
    assert re.search(r"~ password +=  *\(sensitive value\)", text), text
    assert "changed-by-hand" not in text and PASSWORD not in text
    assert "Plan: 0 to add, 2 to change, 0 to restart, 0 to destroy." in text
    assert plan_changes(root) == {
        "mariadb_user.keystone": ["update"],
        "mariadb_grant.keystone": ["update"],
    }
    run_kplan(root, "apply", "-auto-approve", check=True)
    code, out, err = _in_db(lab, "SELECT CURRENT_USER()", f"-ukeystone -p{PASSWORD}")
    assert code == 0 and out.strip() == "keystone@%", err
    _, out, _ = _in_db(lab, "SHOW GRANTS FOR 'keystone'@'%'")
    assert "GRANT ALL PRIVILEGES ON `keystone`.* TO `keystone`@`%`" in out
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_a_refresh_of_many_users_is_one_exec(lab: Lab) -> None:
    h = lab.hosts[0]
    names = [f"many{i}" for i in range(20)]
    sql = " ".join(f"CREATE USER IF NOT EXISTS '{n}'@'%' IDENTIFIED BY '{n}-pw';" for n in names)
    assert _in_db(lab, sql)[0] == 0
    conn = SSHConnection(
        h.name,
        h.address,
        user="root",
        key_filename=str(lab.ssh_key),
        known_hosts=str(lab.known_hosts),
        connect_timeout=5,
    )
    calls: list[str] = []
    api = conn.docker()
    real = api.exec_create

    def counted(*a: Any, **kw: Any) -> Any:
        calls.append(str(a[1]))
        return real(*a, **kw)

    api.exec_create = counted

    def connect(name: str) -> Connection:
        return conn

    try:
        p = MariaDBProvider()
        p.configure(ConfigureRequest({h.name: HostInfo(h.name, h.address, "ssh")}, connect))
        state = {"client_host": "%", "container": "mariadb", "wait": 60}
        insts = [
            ReadInstance(
                f'mariadb_user.u["{n}"]',
                h.name,
                {**state, "name": n, "password": Secret(f"{n}-pw")},
            )
            for n in names
        ]
        insts[3] = ReadInstance(
            insts[3].address, h.name, {**insts[3].state, "password": Secret("x")}
        )
        read = p.read(ReadRequest("mariadb_user", insts))
        assert read.diagnostics == []
        assert len(calls) == 1
        assert all("pw" not in c for c in calls)  # no SQL in the arguments
        drifted = read.states['mariadb_user.u["many3"]']
        assert drifted is not None and drifted["password"] != Secret("x")
        same = read.states['mariadb_user.u["many4"]']
        assert same is not None and same["password"] == Secret("many4-pw")
        assert native_hash("many4-pw").startswith("*")
    finally:
        conn.close()
        _in_db(lab, " ".join(f"DROP USER IF EXISTS '{n}'@'%';" for n in names))


def test_a_stopped_container_is_a_clear_diagnostic(lab: Lab, root: Path) -> None:
    with lab.ssh(lab.hosts[0]) as c:
        assert run_ssh(c, "docker stop mariadb")[0] == 0
    try:
        plan = run_kplan(root, "plan")
        out = plan.stdout + plan.stderr
        assert plan.returncode != 0
        assert 'the container "mariadb" is not running' in out
        assert "Traceback" not in out
    finally:
        with lab.ssh(lab.hosts[0]) as c:
            run_ssh(c, "docker start mariadb")


def test_destroy(lab: Lab, root: Path) -> None:
    deadline = time.monotonic() + 60
    while _in_db(lab, "SELECT 1")[0] != 0:  # the restarted server accepts connections again
        assert time.monotonic() < deadline
        time.sleep(1)
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
    run_kplan(root, "destroy", "-auto-approve", check=True)
