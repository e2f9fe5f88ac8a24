"""kplan/loadbalancer's keepalived config: the virtual IP must not move because a
busy host answered its health check late (a move resets every connection
through the VIP: a lab deploy failed so, with image pulls loading the machine)."""

from __future__ import annotations

import re
from pathlib import Path

from kplan.config.functions_io import fn_templatefile

TEMPLATES = Path(__file__).parents[2] / "modules/loadbalancer/templates"
TEMPLATE = TEMPLATES / "keepalived.conf.j2"


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


def render_haproxy(tcp_services: dict[str, object]) -> str:
    return fn_templatefile(
        str(TEMPLATES / "haproxy.cfg.j2"),
        {
            "host": "node1",
            "address": "10.0.0.1",
            "vip": "10.0.0.250",
            "services": {"keystone": {"port": 5000, "backends": ["10.0.0.1:5000"], "check": "/v3"}},
            "tcp_services": tcp_services,
            "monitor_port": 61313,
            "maxconn": 4000,
            "threads": 1,
            "client_timeout": "1m",
            "server_timeout": "1m",
        },
    )


def test_a_tcp_service_has_one_active_server_and_the_rest_as_backups() -> None:
    backends = ["10.0.0.1:3306", "10.0.0.2:3306", "10.0.0.3:3306"]
    cfg = render_haproxy({"mariadb": {"port": 3306, "backends": backends}})
    listen = cfg[cfg.index("listen mariadb") :]
    assert "bind 10.0.0.250:3306" in listen and "mode tcp" in listen
    servers = [line.split() for line in listen.splitlines() if line.strip().startswith("server")]
    assert [s[2] for s in servers] == backends
    assert [s[-1] == "backup" for s in servers] == [False, True, True]
    # Failover drops the failed node's sessions; failback takes the backups' back.
    assert all("shutdown-sessions" in s for s in servers)
    assert "shutdown-backup-sessions" in servers[0] and "shutdown-backup-sessions" not in servers[1]


def test_no_tcp_service_no_listen_section() -> None:
    assert "listen " not in render_haproxy({})
