"""The host provider over real SSH on lab hosts, through the CLI.

Two lab hosts from the lab's inventory: a directory, a template-rendered
file and a hosts-file block on each; apply, no-change plan, drift made on a
host over SSH shown and repaired, destroy. Files live under a scratch
directory on the hosts (never the hosts' real /etc/hosts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kplan.provider_api import ConfigureRequest, HostInfo, ReadInstance, ReadRequest
from kplan.transport.base import Connection
from kplan.transport.ssh import SSHConnection
from kplan_providers.host import HostProvider
from tests.e2e.conftest import plan_changes, run_kplan
from tests.e2e.test_server import Server, server
from tests.integration.lab_fixture import Lab, lab, run_ssh

__all__ = ["lab", "server"]  # the fixtures, imported for pytest

BASE = "/var/tmp/kplan-host-provider"

MAIN = """\
resources:
  host_directory.conf:
    for_each: ${hosts}
    host: ${each.key}
    path: %(base)s/${each.key}/kolla
    mode: "0750"
  host_file.conf:
    for_each: ${hosts}
    host: ${each.key}
    path: ${host_directory.conf[each.key].path}/service.conf
    mode: "0640"
    owner: root
    group: root
    template: "name = {{ name }}\\naddress = {{ address }}\\n"
    vars: {name: "${each.key}", address: "${host[each.key].address}"}
  host_etc_hosts.all:
    for_each: ${hosts}
    host: ${each.key}
    path: %(base)s/${each.key}/hosts
"""


def _scratch(lab: Lab, base: str) -> None:
    """An empty folder per host under ``base``, with a hosts file to manage a block of."""
    for h in lab.hosts:
        with lab.ssh(h) as c:
            run_ssh(c, f"rm -rf {base}/{h.name}; mkdir -p {base}/{h.name}")
            run_ssh(c, f"printf '127.0.0.1 localhost\\n' > {base}/{h.name}/hosts")


def test_host_provider_over_ssh(lab: Lab, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(lab.inventory, root / "inventory.kp.yaml")
    (root / "main.kp.yaml").write_text(MAIN % {"base": BASE})
    names = [h.name for h in lab.hosts]
    _scratch(lab, BASE)
    run_kplan(root, "init", check=True)
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert plan_changes(root) == {}

    h = lab.hosts[0]
    with lab.ssh(h) as c:
        code, out, _ = run_ssh(c, f"cat {BASE}/{h.name}/kolla/service.conf")
        assert out == f"name = {h.name}\naddress = {h.address}\n"
        code, out, _ = run_ssh(c, f"stat -c '%a %U' {BASE}/{h.name}/kolla/service.conf")
        assert out.split() == ["640", "root"]
        _, hosts, _ = run_ssh(c, f"cat {BASE}/{h.name}/hosts")
        assert hosts.startswith("127.0.0.1 localhost\n# BEGIN kplan managed hosts\n")
        assert all(f" {n}\n" in hosts for n in names)
        # Drift by hand on the host.
        run_ssh(c, f"echo edited >> {BASE}/{h.name}/kolla/service.conf")
        run_ssh(c, f"chmod 0700 {BASE}/{h.name}/kolla")
        run_ssh(c, f"sed -i 's/^[0-9.]* {names[-1]}$/10.9.9.9 {names[-1]}/' {BASE}/{h.name}/hosts")
        # sed -i renames a new file in: the inode to keep is the one after it.
        _, inode, _ = run_ssh(c, f"stat -c %i {BASE}/{h.name}/hosts")

    plan = run_kplan(root, "plan", check=True).stdout
    assert "content changed outside kplan; restoring it" in plan
    assert "+ edited" in plan or "- edited" in plan
    assert plan_changes(root) == {
        f'host_file.conf["{h.name}"]': ["update"],
        f'host_directory.conf["{h.name}"]': ["update"],
        f'host_etc_hosts.all["{h.name}"]': ["update"],
    }
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert plan_changes(root) == {}
    with lab.ssh(h) as c:
        _, inode_after, _ = run_ssh(c, f"stat -c %i {BASE}/{h.name}/hosts")
        assert inode_after == inode

    run_kplan(root, "destroy", "-auto-approve", check=True)
    with lab.ssh(h) as c:
        _, hosts, _ = run_ssh(c, f"cat {BASE}/{h.name}/hosts")
        assert hosts == "127.0.0.1 localhost\n"
        code, _, _ = run_ssh(c, f"test -e {BASE}/{h.name}/kolla")
        assert code != 0


def test_thousands_of_long_paths_read_over_ssh_in_one_command(lab: Lab) -> None:
    """More paths than one command-line argument holds (128 KiB): the script goes on stdin."""
    h = lab.hosts[0]
    deep = f"{BASE}/many/{'d' * 120}/{'e' * 120}"
    count = 3000
    with lab.ssh(h) as c:
        code, _, err = run_ssh(
            c,
            f"rm -rf {BASE}/many; mkdir -p {deep} && cd {deep} && "
            f"for i in $(seq 0 {count - 1}); do echo x > f-$i.conf; done && "
            "echo edited > f-7.conf",
        )
        assert code == 0, err
    conn = SSHConnection(
        h.name,
        h.address,
        user="root",
        key_filename=str(lab.ssh_key),
        known_hosts=str(lab.known_hosts),
        connect_timeout=5,
    )
    runs: list[str] = []

    def connect(name: str) -> Connection:
        return conn

    real_run = conn.run

    def counted(command: object, **kw: object) -> object:
        runs.append(str(command))
        return real_run(command, **kw)  # type: ignore[arg-type]

    conn.run = counted  # type: ignore[assignment,method-assign]
    try:
        p = HostProvider()
        p.configure(ConfigureRequest({h.name: HostInfo(h.name, h.address, "ssh")}, connect))
        # No recorded digest: every file reads as changed, so the second script
        # (the fetch) carries every path too.
        state = {"content": "x\n", "mode": "0644", "owner": None, "group": None, "sha256": ""}
        insts = [
            ReadInstance(f'host_file.f["{i}"]', h.name, {**state, "path": f"{deep}/f-{i}.conf"})
            for i in range(count)
        ]
        assert sum(len(i.state["path"]) for i in insts) > 4 * 128 * 1024
        read = p.read(ReadRequest("host_file", insts))
        assert read.diagnostics == []
        assert len(read.states) == count
        assert read.states['host_file.f["7"]']["content"] == "edited\n"  # type: ignore[index]
        assert read.states['host_file.f["8"]']["content"] == "x\n"  # type: ignore[index]
        assert len(runs) == 2  # the stat pass, and the fetch of what differs
    finally:
        conn.close()
        with lab.ssh(h) as c:
            run_ssh(c, f"rm -rf {BASE}/many")


def test_plans_run_by_a_kplan_server_keep_their_ssh_sessions(
    lab: Lab, tmp_path: Path, server: Server
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(lab.inventory, root / "inventory.kp.yaml")
    (root / "main.kp.yaml").write_text(MAIN % {"base": BASE + "-served"})
    _scratch(lab, BASE + "-served")
    run_kplan(root, "init", check=True)
    run_kplan(root, "apply", "-auto-approve", check=True)
    alone = run_kplan(root, "plan", check=True)
    first = server.kplan(root, "plan", check=True)
    second = server.kplan(root, "plan", check=True)
    assert first.stdout == second.stdout == alone.stdout
    assert "No changes." in alone.stdout
    status = server.status()
    assert status is not None
    # One handshake per host, by the first plan; the second took the sessions kept.
    assert (status["ssh_opened"], status["ssh_reused"]) == (len(lab.hosts), len(lab.hosts))
    assert len(status["ssh_sessions"]) == len(lab.hosts)  # type: ignore[arg-type]
    # A change made through the server lands on the hosts as one made alone does.
    with lab.ssh(lab.hosts[0]) as c:
        run_ssh(c, f"echo edited >> {BASE}-served/{lab.hosts[0].name}/kolla/service.conf")
    server.kplan(root, "apply", "-auto-approve", check=True)
    assert plan_changes(root) == {}
    server.kplan(root, "destroy", "-auto-approve", check=True)
