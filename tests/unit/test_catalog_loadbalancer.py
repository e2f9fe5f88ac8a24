"""kplan/loadbalancer's keepalived config: the virtual IP must not move because a
busy host answered its health check late (a move resets every connection
through the VIP: a lab deploy failed so, with image pulls loading the machine)."""

from __future__ import annotations

import re
from pathlib import Path

from kplan.config.functions_io import fn_templatefile

TEMPLATE = Path(__file__).parents[2] / "modules/loadbalancer/templates/keepalived.conf.j2"


def render(host: str) -> str:
    return fn_templatefile(
        str(TEMPLATE),
        {
            "host": host,
            "hosts": ["node1", "node2", "node3"],
            "address": {"node1": "10.0.0.1", "node2": "10.0.0.2", "node3": "10.0.0.3"}[host],
            "addresses": ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
            "vip": "10.0.0.250",
            "prefix": 24,
            "interface": "eth0",
            "router_id": 51,
            "monitor_port": 61313,
            "password": "secret",
        },
    )


def check_block(conf: str) -> dict[str, str]:
    block = re.search(r"vrrp_script haproxy_alive \{(.*?)\n\}", conf, re.S)
    assert block is not None, conf
    return dict(
        re.match(r"\s*(\w+)\s+(.*)", line).groups()  # type: ignore[union-attr]
        for line in block.group(1).splitlines()
        if line.strip()
    )


def test_a_slow_health_check_is_waited_for_not_counted_as_a_failure() -> None:
    check = check_block(render("node1"))
    max_time = int(re.search(r"--max-time (\d+)", check["script"]).group(1))  # type: ignore[union-attr]
    # keepalived counts a check still running at `timeout` (default: the interval) as failed.
    assert int(check["timeout"]) > max_time > int(check["interval"])
    assert int(check["fall"]) >= 3


def test_priorities_prefer_the_first_host_and_peers_are_the_others() -> None:
    confs = {h: render(h) for h in ("node1", "node2", "node3")}
    prio = {h: int(re.search(r"priority (\d+)", c).group(1)) for h, c in confs.items()}  # type: ignore[union-attr]
    assert prio["node1"] > prio["node2"] > prio["node3"]
    peers = re.search(r"unicast_peer \{(.*?)\}", confs["node2"], re.S).group(1).split()  # type: ignore[union-attr]
    assert peers == ["10.0.0.1", "10.0.0.3"]
