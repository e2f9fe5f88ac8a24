"""examples/lab on three real lab hosts, through the CLI: the issue's whole story.

Deploy; a second plan changes nothing; a config change restarts only the
containers that mount it; a container stopped by hand is drift that apply
repairs; ``destroy -target`` of one host's container leaves the others; an
unknown host key is refused until accepted; an unreachable host fails alone.
The tests run in file order on one lab and one copy of the example.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, run_kplan
from tests.integration.lab_fixture import Lab, LabHost, check, kplan_lab, lab_up, run_ssh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab3() -> Iterator[Lab]:
    yield from lab_up(3, ("rsyslog", "memcached"))


@pytest.fixture(scope="module")
def root(lab3: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("example") / "lab"
    shutil.copytree(
        REPO / "examples/lab", dst, ignore=shutil.ignore_patterns(".kplan", "*.plan", "inv*")
    )
    # What the README does: `kplan lab up --inventory` writes the hosts into the module.
    check(kplan_lab("up", "--name", lab3.name, "--inventory", str(dst / "inventory.kp.yaml")))
    assert (dst / "inventory.kp.yaml").read_text() == lab3.inventory.read_text()
    return dst


def _docker(lab: Lab, host: LabHost, command: str) -> str:
    client = lab.ssh(host)
    try:
        code, out, err = run_ssh(client, command)
    finally:
        client.close()
    assert code == 0, err
    return out


def _started(lab: Lab, i: int, name: str) -> str:
    """When the container last started (changes on restart and on replace)."""
    host = lab.hosts[i]
    return _docker(lab, host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {name}").strip()


def _names(lab: Lab, i: int) -> set[str]:
    out = _docker(lab, lab.hosts[i], "docker ps --format '{{.Names}}'")
    return set(out.split())


def _memcached_answers(address: str) -> bool:
    with socket.create_connection((address, 11211), timeout=5) as s:
        s.sendall(b"stats\r\nquit\r\n")
        return b"STAT pid" in s.recv(65536)


def test_deploy(lab3: Lab, root: Path) -> None:
    run_kplan(root, "init", check=True)
    run_kplan(root, "validate", check=True)
    assert run_kplan(root, "fmt", "-check", ".").returncode == 0
    plan = run_kplan(root, "plan", "-out", "lab.plan", check=True)
    assert "Plan: 22 to add, 0 to change, 0 to restart, 0 to destroy." in plan.stdout
    run_kplan(root, "apply", "lab.plan", check=True)
    assert _names(lab3, 0) == {"rsyslog"}
    assert _names(lab3, 1) == _names(lab3, 2) == {"rsyslog", "memcached"}
    for h in lab3.hosts[1:]:
        assert _memcached_answers(h.address)
    # The log collector works: a line sent to node1's rsyslog lands in its log directory.
    _docker(lab3, lab3.hosts[1], f"logger -n {lab3.hosts[0].address} -T -P 514 kplan-was-here")
    log = _docker(lab3, lab3.hosts[0], "sleep 1; cat /srv/kolla/log/*.log")
    assert "kplan-was-here" in log
    # /etc/hosts on every host names every host.
    hosts_file = _docker(lab3, lab3.hosts[2], "cat /etc/hosts")
    for h in lab3.hosts:
        assert re.search(rf"^{re.escape(h.address)}\s+{h.name}\b", hosts_file, re.M), hosts_file


def test_second_plan_has_no_changes(root: Path) -> None:
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_a_variable_the_template_does_not_use_changes_nothing(lab3: Lab, root: Path) -> None:
    """template and vars are compared through the rendered file: same text, no change."""
    main = root / "main.kp.yaml"
    original = main.read_text()
    assert "      format: ${var.log_format}\n" in original
    main.write_text(
        original.replace(
            "      format: ${var.log_format}\n",
            '      format: ${var.log_format}\n      release: "2024.2"\n',
        )
    )
    try:
        before = {i: _started(lab3, i, "rsyslog") for i in (0, 1, 2)}
        plan = run_kplan(root, "plan", "-detailed-exitcode")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert "No changes." in plan.stdout
        run_kplan(root, "apply", "-auto-approve", check=True)
        assert {i: _started(lab3, i, "rsyslog") for i in (0, 1, 2)} == before
    finally:
        main.write_text(original)


def test_config_change_restarts_only_what_mounts_it(lab3: Lab, root: Path) -> None:
    before = {(i, n): _started(lab3, i, n) for i in (1, 2) for n in ("rsyslog", "memcached")}
    var = ("-var", "log_format=RSYSLOG_FileFormat")
    plan = run_kplan(root, "plan", *var, "-json", check=True)
    changes = {
        c["address"]: c["change"]["actions"]
        for c in json.loads(plan.stdout)["resource_changes"]
        if c["change"]["actions"] != ["no-op"]
    }
    assert set(changes) == {
        *(f'host_file.rsyslog_conf["{h.name}"]' for h in lab3.hosts),
        *(f'docker_container.rsyslog["{h.name}"]' for h in lab3.hosts),
    }
    text = run_kplan(root, "plan", *var, check=True).stdout
    assert 'docker_container.rsyslog["node2"] will be restarted' in text
    assert '(because restart: host_file.rsyslog_conf["node2"] changed)' in text
    rolls = (
        '# docker_container.rsyslog rolls 1 at a time: ["node1"], then ["node2"], then ["node3"]'
    )
    assert rolls in text
    applied = run_kplan(root, "apply", "-auto-approve", *var, check=True).stdout
    # Rolling: each restart starts only after the one before passed its health gate.
    events = [
        line.split(": ", 1)
        for line in applied.splitlines()
        if line.startswith("docker_container.rsyslog[")
    ]
    assert [e for _, e in events if e == "Restarting..."] == ["Restarting..."] * 3
    order = [(addr, e.split(" ")[0]) for addr, e in events]
    assert order == [
        (f'docker_container.rsyslog["{n}"]', word)
        for n in ("node1", "node2", "node3")
        for word in ("Restarting...", "Restart")
    ], applied
    for i in (1, 2):
        assert _started(lab3, i, "rsyslog") != before[(i, "rsyslog")]
        assert _started(lab3, i, "memcached") == before[(i, "memcached")]
    conf = _docker(lab3, lab3.hosts[0], "cat /etc/kolla/rsyslog/rsyslog.conf")
    assert 'template="RSYSLOG_FileFormat"' in conf
    assert run_kplan(root, "plan", *var, "-detailed-exitcode").returncode == 0
    run_kplan(root, "apply", "-auto-approve", check=True)  # back to the default format


def test_container_stopped_by_hand_is_drift_that_apply_repairs(lab3: Lab, root: Path) -> None:
    _docker(lab3, lab3.hosts[1], "docker stop memcached")
    plan = run_kplan(root, "plan", "-detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    assert 'docker_container.memcached["node2"]' in plan.stdout
    # One cause, one reason (not also "running changed outside kplan; restoring it").
    assert "# (because container stopped outside kplan)" in plan.stdout
    assert "restoring it" not in plan.stdout
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert "memcached" in _names(lab3, 1)
    assert _memcached_answers(lab3.hosts[1].address)
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_destroy_target_leaves_the_other_hosts_running(lab3: Lab, root: Path) -> None:
    target = 'docker_container.memcached["node3"]'
    out = run_kplan(root, "destroy", "-auto-approve", "-target", target, check=True).stdout
    assert "1 destroyed" in out
    assert _names(lab3, 2) == {"rsyslog"}
    assert _names(lab3, 1) == {"rsyslog", "memcached"}
    listed = run_kplan(root, "state", "list", check=True).stdout.split()
    assert target not in listed and 'docker_container.memcached["node2"]' in listed
    run_kplan(root, "apply", "-auto-approve", check=True)  # and back
    assert _names(lab3, 2) == {"rsyslog", "memcached"}


def _inventory_edit(root: Path, host: str, key: str, value: str) -> str:
    """Change one key of one host in the module's inventory; return the old text."""
    path = root / "inventory.kp.yaml"
    old = path.read_text()
    block = re.search(rf"^  {host}:\n(?:    .*\n)+", old, re.M)
    assert block is not None
    new_block = re.sub(rf"^    {key}: .*$", f"    {key}: {value}", block.group(0), flags=re.M)
    path.write_text(old.replace(block.group(0), new_block))
    return old


def test_unknown_host_key_is_refused_until_accepted(lab3: Lab, root: Path) -> None:
    empty = root / "empty_known_hosts"
    empty.write_text("")
    old = _inventory_edit(root, "node3", "known_hosts", str(empty))
    try:
        plan = run_kplan(root, "plan")
        assert plan.returncode == 1
        assert re.search(
            r"host node3: unknown host key: \S+ presents ssh-ed25519 key SHA256:\S+", plan.stderr
        ), plan.stderr
        assert "-accept-new-host-keys" in plan.stderr
        accepted = run_kplan(root, "plan", "-accept-new-host-keys", "-detailed-exitcode")
        assert accepted.returncode == 0, accepted.stderr
        # Recorded in state: trusted from now on without the flag.
        assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
    finally:
        (root / "inventory.kp.yaml").write_text(old)


def test_unreachable_host_fails_alone_and_the_others_land(lab3: Lab, root: Path) -> None:
    old = _inventory_edit(root, "node3", "port", "2222")  # nothing listens there
    try:
        apply = run_kplan(
            root, "apply", "-auto-approve", "-refresh=false", "-var", "memcached_memory=32"
        )
        assert apply.returncode == 1
        assert f"host node3: cannot connect to {lab3.hosts[2].address}:2222" in apply.stderr
        assert "connection refused" in apply.stderr and "Traceback" not in apply.stderr
        # node2's memcached was replaced with the new setting and recorded in state.
        cmd = _docker(lab3, lab3.hosts[1], "docker inspect -f '{{json .Config.Cmd}}' memcached")
        assert '"32"' in cmd
        shown = run_kplan(
            root, "state", "show", 'docker_container.memcached["node2"]', check=True
        ).stdout
        assert '"32"' in shown
    finally:
        (root / "inventory.kp.yaml").write_text(old)
    # node3 is back: the plan still has its change to make.
    plan = run_kplan(root, "plan", "-var", "memcached_memory=32", "-no-color", check=True)
    assert 'docker_container.memcached["node3"] must be replaced' in plan.stdout
    assert 'docker_container.memcached["node2"]' not in plan.stdout


def test_all_in_one_with_connection_local(lab3: Lab) -> None:
    """kplan run on a host itself (`connection: local`): no SSH, the host's own dockerd."""
    node1 = lab3.hosts[0]
    # /var/tmp is shared with the lab hosts (their /tmp, /etc, /run and /srv are their own).
    work = Path(tempfile.mkdtemp(prefix="kplan-aio-", dir="/var/tmp"))
    try:
        (work / "main.kp.yaml").write_text(
            f"""\
hosts:
  aio: {{connection: local}}
resources:
  host_file.marker:
    host: aio
    path: /etc/kolla/aio/marker.conf
    content: "all in one\\n"
  docker_image.memcached:
    host: aio
    name: {lab3.registry}/kplan/memcached
    tag: bookworm
  docker_container.memcached:
    host: aio
    name: aio-memcached
    image: ${{docker_image.memcached.repo_digest}}
    command: [memcached, -u, memcache, -l, {node1.address}, -p, "11311"]
    healthcheck:
      test: bash -c 'echo > /dev/tcp/{node1.address}/11311'
      interval: 2s
    restart_on: [host_file.marker]
"""
        )
        # The lab hosts see this machine's files except /tmp, /run, /srv and /etc: a
        # checkout in /tmp (CI clones there) is invisible to them, so this checkout's
        # packages go along in the shared folder, first on the path.
        assert not sys.prefix.startswith(("/tmp/", "/run/", "/srv/")), (
            f"the Python running the tests ({sys.prefix}) is under a directory private to "
            "lab hosts: install kplan somewhere else (a venv in /var/tmp, say)"
        )
        # Installed names → the repository's folders (pyproject.toml's package-dir).
        for package, folder in (
            ("kplan", "kplan"),
            ("kplan_providers", "providers"),
            ("kplan_state", "state"),
            ("kplan_catalog", "modules"),
        ):
            shutil.copytree(
                REPO / folder, work / "src" / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        kplan = f"cd {work} && PYTHONPATH={work / 'src'} {sys.executable} -m kplan"
        for step in ("init", "apply -auto-approve -no-color"):
            out = _docker(lab3, node1, f"{kplan} {step} 2>&1")
        assert "Apply complete! Resources: 3 added" in out
        assert "aio-memcached" in _names(lab3, 0)
        assert _docker(lab3, node1, "cat /etc/kolla/aio/marker.conf") == "all in one\n"
        # Written inside the host's own /etc, not on the machine running the test.
        assert not Path("/etc/kolla/aio/marker.conf").exists()
        out = _docker(lab3, node1, f"{kplan} destroy -auto-approve -no-color 2>&1")
        assert "3 destroyed" in out
        assert "aio-memcached" not in _names(lab3, 0)
    finally:
        shutil.rmtree(work)


def test_destroy_everything(lab3: Lab, root: Path) -> None:
    run_kplan(root, "destroy", "-auto-approve", check=True)
    for i in range(3):
        assert _names(lab3, i) == set()
    assert run_kplan(root, "state", "list", check=True).stdout == ""
