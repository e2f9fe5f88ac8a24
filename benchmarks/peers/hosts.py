"""What the benchmark sees on the lab hosts, from outside the tools under test.

* CPU: each host's processes (sshd with every session it starts, dockerd,
  containerd) are moved into a cpuacct cgroup of their own; the containers'
  cgroups sit under the lab's cgroup parent. ``cpuacct.usage`` counts the time of
  processes that have already exited too.
* SSH: sshd logs at VERBOSE (the lab sets it): ``Accepted publickey`` is a
  connection, ``Starting session:`` a channel running a command or a subsystem
  (SFTP) -- what the tool asked the host to do over SSH.
* Containers: id and start time of every ``bench-*`` container, read on the
  host's Docker socket, tell which ones a run created or restarted.

Nothing here goes over the network: sockets and files of the lab on this machine.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks.peers.work import CONF_ROOT, CONTAINER_PREFIX
from kplan.lab.spec import HostSpec, LabSpec
from kplan.lab.system import netns_inode, pids_in_netns

CPUACCT = Path("/sys/fs/cgroup/cpuacct")


@dataclass(frozen=True)
class SSHCount:
    connections: int
    channels: int


@dataclass(frozen=True)
class Container:
    id: str
    started_at: str
    running: bool


class LabHosts:
    def __init__(self, spec: LabSpec, hosts: Iterable[HostSpec]) -> None:
        self.spec = spec
        self.hosts = list(hosts)
        self._cgroup = CPUACCT / f"kplan-peers-{spec.name}"

    # -- Docker, on each host's own socket ----------------------------------------

    def api(self, host: HostSpec):  # type: ignore[no-untyped-def]
        import docker

        sock = self.spec.host_dir(host) / "run" / "docker.sock"
        return docker.APIClient(base_url=f"unix://{sock}", version="1.41", timeout=120)

    def pull(self, image: str) -> None:
        repo, tag = image.rsplit(":", 1)
        for h in self.hosts:
            self.api(h).pull(repo, tag=tag)

    def containers(self) -> dict[tuple[str, str], Container]:
        out: dict[tuple[str, str], Container] = {}
        for h in self.hosts:
            api = self.api(h)
            for c in api.containers(all=True, filters={"name": CONTAINER_PREFIX}):
                info = api.inspect_container(c["Id"])
                name = info["Name"].lstrip("/")
                state = info["State"]
                out[(h.name, name)] = Container(info["Id"], state["StartedAt"], state["Running"])
        return out

    def clean(self) -> None:
        """Remove every bench container and config file: the hosts as before a fresh deploy."""
        for h in self.hosts:
            api = self.api(h)
            for c in api.containers(all=True, filters={"name": CONTAINER_PREFIX}):
                api.remove_container(c["Id"], force=True)
            pid = self._sshd_pid(h)
            subprocess.run(
                ["nsenter", f"--target={pid}", "--mount", "rm", "-rf", CONF_ROOT], check=True
            )

    def _sshd_pid(self, host: HostSpec) -> int:
        return int((self.spec.host_dir(host) / "sshd.pid").read_text().split()[0])

    def read_file(self, host: HostSpec, path: str) -> str:
        pid = self._sshd_pid(host)
        return subprocess.run(
            ["nsenter", f"--target={pid}", "--mount", "cat", path],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    # -- SSH sessions, from sshd's log --------------------------------------------

    def _log(self, host: HostSpec) -> Path:
        return self.spec.host_dir(host) / "sshd.log"

    def log_offsets(self) -> dict[str, int]:
        return {h.name: self._log(h).stat().st_size for h in self.hosts}

    def ssh_since(self, offsets: Mapping[str, int]) -> dict[str, SSHCount]:
        out: dict[str, SSHCount] = {}
        for h in self.hosts:
            with self._log(h).open("rb") as f:
                f.seek(offsets[h.name])
                out[h.name] = count_ssh(f.read().decode("utf-8", "replace"))
        return out

    # -- CPU, from cpuacct ---------------------------------------------------------

    def attach_cpu(self) -> None:
        """Move every process of each host into the host's cgroup (children follow)."""
        for h in self.hosts:
            group = self._cgroup / h.name
            group.mkdir(parents=True, exist_ok=True)
            inode = netns_inode(Path("/var/run/netns") / h.netns)
            for proc in pids_in_netns({inode} if inode else set()):
                with contextlib.suppress(ProcessLookupError, OSError):
                    (group / "cgroup.procs").write_text(str(proc.pid))

    def detach_cpu(self) -> None:
        """Back to the root cgroup; remove ours."""
        if not self._cgroup.is_dir():
            return
        for group in sorted(self._cgroup.iterdir()):
            if not group.is_dir():
                continue
            for pid in (group / "cgroup.procs").read_text().split():
                with contextlib.suppress(ProcessLookupError, OSError):
                    (CPUACCT / "cgroup.procs").write_text(pid)
            with contextlib.suppress(OSError):
                group.rmdir()
        with contextlib.suppress(OSError):
            self._cgroup.rmdir()

    def cpu_seconds(self) -> float:
        """CPU time so far of the hosts' own processes and of the lab's containers."""
        total = 0
        for h in self.hosts:
            total += int((self._cgroup / h.name / "cpuacct.usage").read_text())
        containers = CPUACCT / self.spec.cgroup_parent.strip("/") / "cpuacct.usage"
        if containers.exists():
            total += int(containers.read_text())
        return total / 1e9


def count_ssh(log: str) -> SSHCount:
    """Connections and channels in a stretch of sshd's VERBOSE log."""
    connections = channels = 0
    for line in log.splitlines():
        if "Accepted publickey for " in line:
            connections += 1
        elif "Starting session: " in line:
            channels += 1
    return SSHCount(connections, channels)
