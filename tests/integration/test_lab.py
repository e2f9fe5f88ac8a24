"""``kplan lab`` on the real thing: namespaces, sshd, dockerd, the registry, a real image.

The tests run in file order against one lab (module fixture); the last ones
take it down and check that nothing is left.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from pathlib import Path

import paramiko
import pytest

from kplan.lab.spec import LabSpec, proc_stat
from kplan.lab.system import pids_in_netns
from tests.integration.lab_fixture import (
    LAB_NAME,
    LAB_SUBNET,
    Lab,
    check,
    kplan_lab,
    lab,
    run_ssh,
)

__all__ = ["lab"]  # the fixture, imported for pytest


def _netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_status_all_up(lab: Lab) -> None:
    out = check(kplan_lab("status", "--name", lab.name)).stdout
    assert "All up." in out
    for h in lab.hosts:
        assert f"{h.name}" in out and h.address in out


def test_each_host_has_its_own_address_and_name(lab: Lab) -> None:
    for h in lab.hosts:
        with lab.ssh(h) as c:
            rc, out, _ = run_ssh(c, "hostname; hostname -I; ip -4 -o addr show dev eth0; ip route")
            assert rc == 0
            lines = out.splitlines()
            assert lines[0] == h.name
            assert lines[1].split() == [h.address]
            assert f"inet {h.address}/24" in out
            assert "default" not in out  # no route out of the lab


def test_host_has_private_etc_and_run(lab: Lab) -> None:
    with lab.ssh(lab.hosts[0]) as c:
        rc, out, _ = run_ssh(
            c, "cat /etc/resolv.conf; grep node2 /etc/hosts; test -d /etc/kolla && echo kolla"
        )
    assert rc == 0, out
    assert "nameserver 127.0.0.1" in out
    assert lab.hosts[1].address in out
    assert "kolla" in out
    with lab.ssh(lab.hosts[0]) as c:
        assert run_ssh(c, "echo one > /srv/kplan-lab-test; echo t > /tmp/kplan-lab-test")[0] == 0
    with lab.ssh(lab.hosts[1]) as c:
        assert run_ssh(c, "ls /srv/kplan-lab-test /tmp/kplan-lab-test")[0] != 0
    assert not Path("/srv/kplan-lab-test").exists()
    assert not Path("/tmp/kplan-lab-test").exists()
    # The machine's own files are untouched.
    assert "nameserver 127.0.0.1" not in Path("/etc/resolv.conf").read_text()
    assert not Path("/etc/kolla").exists() or "kplan" not in str(Path("/etc/kolla").resolve())


def test_root_shell_reads_not_the_machines_bashrc(lab: Lab) -> None:
    """Every SSH command runs root's bash, which sources ~/.bashrc: the host's is its own."""
    with lab.ssh(lab.hosts[0]) as c:
        rc, out, _ = run_ssh(c, "head -1 /root/.bashrc 2>/dev/null || echo none")
    assert rc == 0, out
    if Path("/root/.bashrc").exists():
        assert out.startswith("# kplan lab host: root's ~/.bashrc")
        assert not Path("/root/.bashrc").read_text().startswith("# kplan lab host")
    else:  # nothing to hide: the host has none either
        assert out.strip() == "none"


def test_unknown_host_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    client = paramiko.SSHClient()
    (tmp_path / "known_hosts").write_text("")
    client.load_host_keys(str(tmp_path / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client.connect(
            lab.hosts[0].address,
            username="root",
            key_filename=str(lab.ssh_key),
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
    client.close()


def test_docker_over_ssh_is_the_hosts_own(lab: Lab) -> None:
    roots = set()
    for h in lab.hosts:
        with lab.ssh(h) as c:
            rc, out, err = run_ssh(c, "docker info -f '{{.DockerRootDir}} {{.Name}}'")
        assert rc == 0, err
        root, name = out.split()
        assert root == str(lab.dir / "hosts" / h.name / "docker")
        assert name == h.name
        roots.add(root)
    assert len(roots) == len(lab.hosts)


def test_pull_from_lab_registry_and_run_with_host_network(lab: Lab) -> None:
    assert lab.base_image
    for h in lab.hosts:
        with lab.ssh(h) as c:
            rc, out, err = run_ssh(c, f"docker pull -q {lab.base_image}")
            assert rc == 0, err
            rc, out, err = run_ssh(
                c,
                f"docker run --rm --network host {lab.base_image} "
                "sh -c 'cat /etc/os-release; ip -4 -o addr show dev eth0'",
            )
        assert rc == 0, err
        assert "VERSION_CODENAME=bookworm" in out
        assert f"inet {h.address}/" in out


def test_host_reaches_the_other_hosts_sshd(lab: Lab) -> None:
    other = lab.hosts[1].address
    with lab.ssh(lab.hosts[0]) as c:
        rc, out, err = run_ssh(c, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{other}/22; head -c 7 <&3'")
    assert rc == 0, err
    assert out == "SSH-2.0"


def test_up_twice_changes_nothing(lab: Lab) -> None:
    before = lab.pids()
    out = check(kplan_lab("up", "--name", lab.name)).stdout
    assert "Already up" in out
    assert lab.pids() == before


def test_up_refuses_another_host_count_and_overlapping_subnet(lab: Lab) -> None:
    proc = kplan_lab("up", "--name", lab.name, "--hosts", "5")
    assert proc.returncode == 1
    assert "kplan lab down" in proc.stderr
    upper_half = list(ipaddress.IPv4Network(LAB_SUBNET).subnets())[1]  # inside the lab's
    proc = kplan_lab("up", "--name", "kplanother", "--subnet", str(upper_half))
    assert proc.returncode == 1
    assert "overlaps" in proc.stderr
    assert not Path(lab.dir.parent / "kplanother").exists()


def test_status_sees_a_dead_sshd_and_up_repairs_it(lab: Lab) -> None:
    procs = lab.record()["procs"]
    assert isinstance(procs, list)
    sshd = next(p for p in procs if p["what"] == "sshd node2")
    os.kill(int(sshd["pid"]), signal.SIGKILL)
    st = kplan_lab("status", "--name", lab.name)
    assert st.returncode == 1
    assert "sshd DOWN" in st.stdout
    out = check(kplan_lab("up", "--name", lab.name)).stdout
    assert "sshd+dockerd node2" in out
    assert "node1" not in out.split("Started:", 1)[1].splitlines()[0]
    check(kplan_lab("status", "--name", lab.name))
    with lab.ssh(lab.hosts[1]) as c:
        assert run_ssh(c, "docker info -f '{{.Name}}'")[1].strip() == "node2"


def test_a_running_container_does_not_survive_down(lab: Lab) -> None:
    """Started here, stopped by ``down`` below (with dockerd, or by the netns sweep)."""
    with lab.ssh(lab.hosts[0]) as c:
        rc, out, err = run_ssh(
            c, f"docker run -d --network host --name sleeper {lab.base_image} sleep 600"
        )
        assert rc == 0, err
        rc, out, err = run_ssh(c, "docker inspect -f '{{.State.Pid}}' sleeper")
    assert rc == 0, err
    pid = int(out)
    link = os.readlink(f"/proc/{pid}/ns/net")
    ino = Path("/var/run/netns", f"kplan-{LAB_NAME}-node1").stat().st_ino
    assert link == f"net:[{ino}]"
    (lab.dir / "test-sleeper.pid").write_text(str(pid))


def test_down_removes_everything_and_is_idempotent(lab: Lab) -> None:
    spec = LabSpec.make(lab.name, len(lab.hosts), LAB_SUBNET)
    pids = lab.pids()
    assert pids
    pids.append(int((lab.dir / "test-sleeper.pid").read_text()))
    inodes = {Path("/var/run/netns", h.netns).stat().st_ino for h in spec.all_hosts()}
    out = check(kplan_lab("down", "--name", lab.name)).stdout
    assert "down in" in out
    assert f"Removing {lab.dir} (the hosts' Docker data and the registry)" in out
    for pid in pids:
        # Gone, or a zombie that init has not reaped yet: not running either way.
        st = proc_stat(pid)
        assert st is None or st[0] in ("Z", "X"), f"pid {pid} still runs"
    assert not pids_in_netns(inodes)
    assert f"kplan-{LAB_NAME}-" not in _netns_list()
    links = {p.name for p in Path("/sys/class/net").iterdir()}
    assert spec.bridge not in links
    assert not {h.veth for h in spec.all_hosts()} & links
    assert not lab.dir.exists()
    again = check(kplan_lab("down", "--name", lab.name)).stdout
    assert "nothing to do" in again
    status = kplan_lab("status", "--name", lab.name)
    assert status.returncode == 1
    assert "not up" in status.stdout
