"""kplan/common alone on a real lab host, through the CLI.

The module is applied with no other service; then a plain container's stdout
and stderr, and a line appended to a file of the shared log volume, are found
in the collector's files on the host, tagged with the container's name and
the file's path; a second plan changes nothing; a restart of the collector
does not read the files again; logrotate (in the cron container) rotates both
the shared file and the collector's copy, and what is written after the
rotation is collected too; a change of the collector's script and of the
crontab restarts those two containers and not the toolbox, and cron then runs
logrotate on its own.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import run_kplan
from tests.integration.lab_fixture import Lab, check, kplan_lab, lab_up
from tests.integration.openstack_helpers import sh, started

pytestmark = pytest.mark.e2e

# A deploy pulls every image onto the host: minutes, not the CLI default of 120 s.
APPLY_TIMEOUT = 900
# Lab hosts share the machine's /var/log; /srv is each host's own.
LOG_DIR = "/srv/kplan-log"
MARKER = f"kplan-marker-{secrets.token_hex(6)}"

MODULE = f"""\
modules:
  common:
    source: kplan/common
    hosts: ${{hosts}}
    inputs:
      log_dir: {LOG_DIR}
      collector_interval: COLLECTOR_INTERVAL
      rotate_schedule: "ROTATE_SCHEDULE"
outputs:
  log_mount: ${{module.common.log_mount}}
  log_dir: ${{module.common.log_dir}}
  toolbox: ${{module.common.toolbox}}
"""


@pytest.fixture(scope="module")
def lab1() -> Iterator[Lab]:
    yield from lab_up(1, ("base", "rsyslog", "cron", "toolbox"))


@pytest.fixture(scope="module")
def root(lab1: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("common")
    (dst / "main.kp.yaml").write_text(_module(interval=1, schedule="17 * * * *"))
    check(kplan_lab("up", "--name", lab1.name, "--inventory", str(dst / "inventory.kp.yaml")))
    return dst


def _module(interval: int, schedule: str) -> str:
    return MODULE.replace("COLLECTOR_INTERVAL", str(interval)).replace("ROTATE_SCHEDULE", schedule)


def _wait_for(lab: Lab, path: str, text: str, timeout: float = 60) -> str:
    """The content of PATH on the lab host once it holds TEXT."""
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = sh(lab, 0, f"cat {path} 2>/dev/null || true")
        if text in content:
            return content
        time.sleep(1)
    listing = sh(lab, 0, f"ls -laR {LOG_DIR}; cat {LOG_DIR}/log_collector.log 2>/dev/null || true")
    raise AssertionError(f"{text!r} not in {path} within {timeout} s:\n{content}\n{listing}")


def _in_volume(lab: Lab, root: Path, command: str) -> str:
    """COMMAND in a throwaway container that mounts the shared log volume, as a service does."""
    assert lab.base_image is not None
    mount = run_kplan(root, "output", "-raw", "log_mount", check=True).stdout.strip()
    return sh(lab, 0, f"docker run --rm -v {mount} {lab.base_image} sh -c '{command}'")


def test_apply_alone_gives_three_healthy_containers(lab1: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    run_kplan(root, "plan", "-out", "common.plan", check=True)
    run_kplan(root, "apply", "common.plan", check=True, timeout=APPLY_TIMEOUT)
    for name in ("log_collector", "cron", "toolbox"):
        health = sh(lab1, 0, f"docker inspect -f '{{{{.State.Health.Status}}}}' {name}")
        assert health.strip() == "healthy", name
    output = run_kplan(root, "output", "-raw", "log_mount", check=True).stdout
    assert output.strip() == "kolla_logs:/var/log/kolla"
    # The toolbox's clients are there to `docker exec` into.
    assert "openstack" in sh(lab1, 0, "docker exec toolbox openstack --version 2>&1")
    assert "mariadb" in sh(lab1, 0, "docker exec toolbox mariadb --version")


def test_a_containers_stdout_and_stderr_are_collected_under_its_name(lab1: Lab) -> None:
    assert lab1.base_image is not None
    sh(
        lab1,
        0,
        f"docker run -d --name marker {lab1.base_image} "
        f"sh -c 'sleep 3; echo {MARKER}; echo {MARKER}-err >&2; sleep infinity'",
    )
    content = _wait_for(lab1, f"{LOG_DIR}/containers/marker.log", f"{MARKER}-err")
    lines = content.splitlines()
    # Docker copies stdout and stderr in two goroutines: their order in the
    # json-file log (and so here) is not the order the process wrote them.
    assert sorted(ln.split(" ", 1)[1] for ln in lines) == [
        f"marker stderr: {MARKER}-err",
        f"marker stdout: {MARKER}",
    ]
    # Docker's own time of the line leads it.
    assert lines[0].split(" ", 1)[0].endswith("Z")


def test_a_line_appended_to_a_shared_log_file_is_collected(lab1: Lab, root: Path) -> None:
    _in_volume(
        lab1,
        root,
        f"mkdir -p /var/log/kolla/demo && echo {MARKER}-file >> /var/log/kolla/demo/demo.log",
    )
    content = _wait_for(lab1, f"{LOG_DIR}/files/demo/demo.log", f"{MARKER}-file")
    assert content.splitlines()[0].endswith(f" demo/demo.log: {MARKER}-file")


def test_second_plan_has_no_changes(root: Path) -> None:
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_a_restarted_collector_goes_on_where_it_stopped(lab1: Lab, root: Path) -> None:
    sh(lab1, 0, "docker restart log_collector")
    _in_volume(lab1, root, f"echo {MARKER}-after-restart >> /var/log/kolla/demo/demo.log")
    sh(lab1, 0, "docker restart marker")  # prints its two lines again, as a new start does
    content = _wait_for(lab1, f"{LOG_DIR}/files/demo/demo.log", f"{MARKER}-after-restart")
    assert content.count(f"{MARKER}-file") == 1, content
    markers = sh(lab1, 0, f"cat {LOG_DIR}/containers/marker.log")
    deadline = time.monotonic() + 30
    while markers.count(f"{MARKER}-err") < 2 and time.monotonic() < deadline:
        time.sleep(1)
        markers = sh(lab1, 0, f"cat {LOG_DIR}/containers/marker.log")
    # Each line the container wrote once is there once: twice in all, not three times.
    assert markers.count(f"stdout: {MARKER}\n") == 2, markers
    assert markers.count(f"stderr: {MARKER}-err\n") == 2, markers


def test_logrotate_in_the_cron_container_rotates_both_copies(lab1: Lab, root: Path) -> None:
    out = sh(
        lab1,
        0,
        "docker exec cron logrotate -v --state /var/lib/logrotate/status -f "
        "/etc/kplan/cron/logrotate.conf 2>&1",
    )
    assert "rotating pattern" in out, out
    # The shared file was copied to demo.log.1 and truncated in place ...
    shared = _in_volume(lab1, root, "ls /var/log/kolla/demo; wc -c < /var/log/kolla/demo/demo.log")
    assert "demo.log.1" in shared.split() and shared.split()[-1] == "0", shared
    # ... and so was the collector's copy of it.
    rotated = sh(lab1, 0, f"cat {LOG_DIR}/files/demo/demo.log.1")
    assert f"{MARKER}-after-restart" in rotated
    assert sh(lab1, 0, f"wc -c < {LOG_DIR}/files/demo/demo.log").strip() == "0"
    assert sh(lab1, 0, f"ls {LOG_DIR}/containers").split().count("marker.log.1") == 1
    # What is written after the rotation is collected, into the truncated file.
    _in_volume(lab1, root, f"echo {MARKER}-after-rotate >> /var/log/kolla/demo/demo.log")
    content = _wait_for(lab1, f"{LOG_DIR}/files/demo/demo.log", f"{MARKER}-after-rotate")
    assert content.count("\n") == 1, content


def test_each_config_restarts_only_its_container(lab1: Lab, root: Path) -> None:
    # logrotate every minute, and the collector looking for containers every 2 s.
    (root / "main.kp.yaml").write_text(_module(interval=2, schedule="* * * * *"))
    plan = json.loads(run_kplan(root, "plan", "-json", check=True).stdout)
    changed = {
        rc["address"]: rc["kplan_action"]
        for rc in plan["resource_changes"]
        if rc["kplan_action"] != "no-op"
    }
    assert changed == {
        'module.common.host_file.collector_sh["node1"]': "update",
        'module.common.docker_container.log_collector["node1"]': "restart",
        'module.common.host_file.crontab["node1"]': "update",
        'module.common.docker_container.cron["node1"]': "restart",
    }
    names = ("log_collector", "cron", "toolbox")
    before = {name: started(lab1, 0, name) for name in names}
    status = "docker exec cron stat -c %Y /var/lib/logrotate/status"
    rotated_at = sh(lab1, 0, status)
    run_kplan(root, "apply", "-auto-approve", check=True, timeout=APPLY_TIMEOUT)
    after = {name: started(lab1, 0, name) for name in names}
    assert after["log_collector"] != before["log_collector"]
    assert after["cron"] != before["cron"]
    assert after["toolbox"] == before["toolbox"]
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
    # cron itself runs logrotate within the minute: logrotate's status file is written again.
    deadline = time.monotonic() + 75
    while sh(lab1, 0, status) == rotated_at and time.monotonic() < deadline:
        time.sleep(3)
    assert sh(lab1, 0, status) != rotated_at, sh(lab1, 0, "docker logs cron 2>&1")
