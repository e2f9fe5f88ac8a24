"""A lab's names, addresses and paths, and the record of what ``up`` started.

Everything a lab creates is derived from its name and subnet here, so that
``down`` can find it again even when the record is missing or stale.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kplan.lab.errors import LabError

__all__ = [
    "DEFAULT_NAME",
    "DEFAULT_SUBNET",
    "HostSpec",
    "LabRecord",
    "LabSpec",
    "ProcRef",
    "lab_root",
]

DEFAULT_NAME = "lab"
DEFAULT_SUBNET = "10.231.0.0/24"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
# First host address: .11, .12, ... (the bridge is .1, the registry listens there).
FIRST_HOST_OFFSET = 11
REGISTRY_PORT = 5000


def lab_root() -> Path:
    """Where labs keep their runtime files (``KPLAN_LAB_ROOT`` overrides)."""
    return Path(os.environ.get("KPLAN_LAB_ROOT", "/var/lib/kplan-lab"))


def _short_hash(text: str, n: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


@dataclass(frozen=True)
class HostSpec:
    name: str  # inventory name and hostname, e.g. node1
    index: int  # 1-based
    address: str
    netns: str  # /var/run/netns/<netns>
    veth: str  # the root-namespace end of the host's veth pair
    groups: tuple[str, ...]


@dataclass(frozen=True)
class LabSpec:
    name: str
    hosts: int
    subnet: str

    @staticmethod
    def make(name: str, hosts: int, subnet: str) -> LabSpec:
        if not _NAME_RE.match(name):
            raise LabError(
                f"invalid lab name {name!r}: use 1-16 lower-case letters and digits, "
                "starting with a letter"
            )
        try:
            net = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as exc:
            raise LabError(f"invalid subnet {subnet!r}: {exc}") from None
        if not 1 <= hosts <= net.num_addresses - FIRST_HOST_OFFSET - 1:
            raise LabError(f"--hosts must be between 1 and what {subnet} holds (got {hosts})")
        return LabSpec(name=name, hosts=hosts, subnet=str(net))

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace (kplan and the registry use it)."""
        return str(self.network.network_address + 1)

    @property
    def registry(self) -> str:
        return f"{self.gateway}:{REGISTRY_PORT}"

    @property
    def bridge(self) -> str:
        # Interface names hold at most 15 characters.
        name = f"kplan-{self.name}0"
        return name if len(name) <= 15 else f"kplan-{_short_hash(self.name, 8)}"

    @property
    def dir(self) -> Path:
        return lab_root() / self.name

    @property
    def cgroup_parent(self) -> str:
        return f"/kplan-lab-{self.name}"

    def host(self, index: int) -> HostSpec:
        address = str(self.network.network_address + FIRST_HOST_OFFSET + index - 1)
        groups: tuple[str, ...] = ("control",) if index == 1 else ("compute",)
        if self.hosts == 1:
            groups = ("control", "compute")
        return HostSpec(
            name=f"node{index}",
            index=index,
            address=address,
            netns=f"kplan-{self.name}-node{index}",
            veth=f"kv{_short_hash(self.name)}n{index}",
            groups=groups,
        )

    def all_hosts(self) -> list[HostSpec]:
        return [self.host(i) for i in range(1, self.hosts + 1)]

    def host_dir(self, host: HostSpec) -> Path:
        return self.dir / "hosts" / host.name

    # Files that users of the lab read.
    @property
    def ssh_key(self) -> Path:
        return self.dir / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "ssh" / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.kp.yaml"

    @property
    def record_path(self) -> Path:
        return self.dir / "lab.json"


@dataclass
class ProcRef:
    """A process we started: its pid and its start time (guards against pid reuse)."""

    pid: int
    start: int
    what: str

    @staticmethod
    def of(pid: int, what: str) -> ProcRef:
        return ProcRef(pid=pid, start=proc_start_time(pid) or 0, what=what)

    def alive(self) -> bool:
        st = proc_stat(self.pid)
        return st is not None and st[1] == self.start and st[0] not in ("Z", "X")


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def proc_start_time(pid: int) -> int | None:
    st = proc_stat(pid)
    return None if st is None else st[1]


@dataclass
class LabRecord:
    """What ``up`` wrote to lab.json: the spec and every process it started."""

    name: str
    hosts: int
    subnet: str
    procs: list[ProcRef] = field(default_factory=list)

    @property
    def spec(self) -> LabSpec:
        return LabSpec(name=self.name, hosts=self.hosts, subnet=self.subnet)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> LabRecord | None:
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot read {path}: {exc}") from None
        return LabRecord(
            name=raw["name"],
            hosts=int(raw["hosts"]),
            subnet=raw["subnet"],
            procs=[ProcRef(**p) for p in raw.get("procs", [])],
        )

    def replace_procs(self, what_prefix: str, procs: list[ProcRef]) -> None:
        self.procs = [p for p in self.procs if not p.what.startswith(what_prefix)] + procs
