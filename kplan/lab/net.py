"""The lab's links: one bridge in the root namespace, one netns and veth per host."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from kplan.lab.errors import LabError
from kplan.lab.spec import HostSpec, LabSpec
from kplan.lab.system import run

__all__ = [
    "NETNS_DIR",
    "check_subnet_free",
    "delete_bridge",
    "delete_host_net",
    "ensure_bridge",
    "ensure_host_net",
    "link_exists",
    "netns_exists",
    "netns_path",
]

NETNS_DIR = Path("/var/run/netns")


def netns_path(host: HostSpec) -> Path:
    return NETNS_DIR / host.netns


def netns_exists(host: HostSpec) -> bool:
    return netns_path(host).exists()


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def check_subnet_free(spec: LabSpec) -> None:
    """Refuse a subnet that overlaps a route of the machine (other than our bridge)."""
    routes = json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
    for r in routes:
        dst = r.get("dst", "")
        if r.get("dev") == spec.bridge or dst in ("", "default") or r.get("type") == "broadcast":
            continue
        try:
            net = ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False)
        except ValueError:
            continue
        if net.is_loopback or net.prefixlen == 0:
            continue
        if net.overlaps(spec.network):
            raise LabError(
                f"subnet {spec.subnet} overlaps the machine's route {dst} dev {r.get('dev')}: "
                "choose another with --subnet"
            )


def _disable_ipv6(conf_dir: Path) -> None:
    # No router solicitations or neighbour discovery on lab links.
    p = conf_dir / "disable_ipv6"
    if p.exists():
        p.write_text("1\n")


def ensure_bridge(spec: LabSpec) -> bool:
    made = False
    if not link_exists(spec.bridge):
        run(["ip", "link", "add", spec.bridge, "type", "bridge"])
        made = True
    _disable_ipv6(Path("/proc/sys/net/ipv6/conf", spec.bridge))
    addr = f"{spec.gateway}/{spec.prefixlen}"
    have = run(["ip", "-j", "-4", "addr", "show", "dev", spec.bridge]).stdout
    if addr.split("/")[0] not in have:
        run(["ip", "addr", "add", addr, "dev", spec.bridge])
    run(["ip", "link", "set", spec.bridge, "up"])
    return made


def ensure_host_net(spec: LabSpec, host: HostSpec) -> bool:
    """The host's netns with lo and eth0 (its address, no default route)."""
    made = False
    if not netns_exists(host):
        run(["ip", "netns", "add", host.netns])
        made = True
    ns = ["ip", "-n", host.netns]
    if not link_exists(host.veth):
        # The namespace's end may be left from an earlier half-made run.
        run([*ns, "link", "del", "eth0"], check=False)
        run(
            [
                "ip",
                "link",
                "add",
                host.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host.netns,
            ]
        )
        made = True
    _disable_ipv6(Path("/proc/sys/net/ipv6/conf", host.veth))
    run(["ip", "link", "set", host.veth, "master", spec.bridge, "up"])
    run(
        [
            "ip",
            "netns",
            "exec",
            host.netns,
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]
    )
    run([*ns, "link", "set", "lo", "up"])
    addr = f"{host.address}/{spec.prefixlen}"
    have = run([*ns, "-j", "-4", "addr", "show", "dev", "eth0"]).stdout
    if f'"{host.address}"' not in have:
        run([*ns, "addr", "add", addr, "dev", "eth0"])
    run([*ns, "link", "set", "eth0", "up"])
    return made


def delete_host_net(host: HostSpec) -> None:
    if netns_exists(host):
        run(["ip", "netns", "del", host.netns])
    if link_exists(host.veth):
        run(["ip", "link", "del", host.veth], check=False)


def delete_bridge(spec: LabSpec) -> None:
    if link_exists(spec.bridge):
        run(["ip", "link", "del", spec.bridge])
