"""A real lab for integration tests: ``kplan lab up`` once per module, always ``down``.

The lab has its own name and subnet, so it never touches a developer's own
lab. It needs root on Linux (it is skipped otherwise, or when
KPLAN_SKIP_LAB=1). ``up`` installs the Debian packages it needs; the base
image is built once and then comes from ~/.cache/kplan/lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

# Overridable so that two test runs on one machine (two checkouts, two
# developers) use two labs instead of tearing down each other's.
LAB_NAME = os.environ.get("KPLAN_TEST_LAB_NAME", "kplantest")
LAB_SUBNET = os.environ.get("KPLAN_TEST_LAB_SUBNET", "10.231.7.0/24")
LAB_HOSTS = 2

_CLI = "from kplan.cli.lab import app; app(prog_name='kplan lab')"


def kplan_lab(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``kplan lab ARGS`` in a subprocess (the sub-app itself, however it is mounted)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPLAN_")}
    env["NO_COLOR"] = "1"
    for k in ("KPLAN_LAB_ROOT", "KPLAN_CACHE_DIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def check(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if proc.returncode != 0:
        raise AssertionError(
            f"{proc.args[3:]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str


@dataclass(frozen=True)
class Lab:
    name: str
    dir: Path
    hosts: list[LabHost]
    registry: str
    ssh_key: Path
    known_hosts: Path
    base_image: str | None

    def record(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.dir / "lab.json").read_text())
        return data

    @property
    def inventory(self) -> Path:
        """The ``hosts:`` file ``kplan lab up`` wrote; copy it into a root module."""
        return self.dir / "inventory.kp.yaml"

    def pids(self) -> list[int]:
        procs = self.record()["procs"]
        assert isinstance(procs, list)
        return [int(p["pid"]) for p in procs]

    def ssh(self, host: LabHost) -> paramiko.SSHClient:
        """A client that verifies the host key against the lab's known_hosts."""
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            host.address,
            port=22,
            username="root",
            pkey=paramiko.Ed25519Key.from_private_key_file(str(self.ssh_key)),
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )
        return client


def run_ssh(client: paramiko.SSHClient, command: str, timeout: float = 120) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode()
    err = stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def _skip_reason() -> str | None:
    if os.environ.get("KPLAN_SKIP_LAB") == "1":
        return "KPLAN_SKIP_LAB=1"
    if not sys.platform.startswith("linux"):
        return "kplan lab needs Linux"
    if os.geteuid() != 0:
        return "kplan lab needs root"
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    yield from lab_up(LAB_HOSTS, ("base",))


def lab_up(hosts: int, images: tuple[str, ...]) -> Iterator[Lab]:
    """Bring a lab of HOSTS hosts up with IMAGES pushed; take it down afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        check(kplan_lab("up", "--name", LAB_NAME, "--hosts", str(hosts), "--subnet", LAB_SUBNET))
        if images:
            only = [arg for image in images for arg in ("--only", image)]
            check(kplan_lab("images", *only, "--name", LAB_NAME))
        gateway = LAB_SUBNET.rsplit(".", 1)[0] + ".1"
        base_image = f"{gateway}:5000/kplan/base:bookworm"
        root = Path(os.environ.get("KPLAN_LAB_ROOT", "/var/lib/kplan-lab")) / LAB_NAME
        prefix = LAB_SUBNET.rsplit(".", 1)[0]
        yield Lab(
            name=LAB_NAME,
            dir=root,
            hosts=[LabHost(f"node{i}", f"{prefix}.{10 + i}") for i in range(1, hosts + 1)],
            registry=f"{gateway}:5000",
            ssh_key=root / "ssh" / "id_ed25519",
            known_hosts=root / "ssh" / "known_hosts",
            base_image=base_image if "base" in images else None,
        )
    finally:
        down = kplan_lab("down", "--name", LAB_NAME)
        if down.returncode != 0:
            print(down.stdout, down.stderr, file=sys.stderr)
