"""benchmarks/peers: the three tools get the same work, and the report says what was measured.

The benchmark itself runs on a lab (python -m benchmarks.peers.run); these
tests keep its inputs honest without one: kplan accepts the module it writes,
every tool's template renders the same text, the change touches one service on
one host, and sshd's log is counted as the report claims.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import jinja2
import pytest
import yaml

from benchmarks.peers import report
from benchmarks.peers.hosts import count_ssh
from benchmarks.peers.work import TEMPLATE, Host, Work, changed_options, service_name, write

WORK = Work(
    hosts=[Host("node1", "10.231.81.11"), Host("node2", "10.231.81.12")],
    services=3,
    image="10.231.81.1:5000/kplan/base:bookworm",
    ssh_key="/var/lib/kplan-lab/kppeers/ssh/id_ed25519",
    known_hosts="/var/lib/kplan-lab/kppeers/ssh/known_hosts",
)


def _kplan(cwd: Path, *args: str, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    """``kplan ARGS`` in ``cwd``, without the caller's KPLAN_* settings; it must succeed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KPLAN_")}
    proc = subprocess.run(
        [sys.executable, "-m", "kplan", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_kplan_module_plans_every_resource_of_the_work(tmp_path: Path) -> None:
    project = write("kplan", WORK, tmp_path)
    plan = _kplan(project, "plan", "-refresh=false", "-no-color")
    # Per host: the image, then a directory, a file and a container per service.
    assert "Plan: 20 to add, 0 to change, 0 to restart, 0 to destroy." in plan.stdout
    assert 'module.node["node2"].docker_container.svc["svc02"] will be created' in plan.stdout
    text = (project / "node" / "node.kp.yaml").read_text()
    for kind in (
        "docker_image.base",
        "host_directory.conf",
        "host_file.conf",
        "docker_container.svc",
    ):
        assert f"  {kind}:" in text
    assert 'restart_on: ["host_file.conf[each.key]"]' in text


def _render(template: str, **data: object) -> str:
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(**data)


def test_every_tool_renders_the_same_file(tmp_path: Path) -> None:
    """Ansible renders with trim_blocks on, kplan and pyinfra with it off: the
    template is written so that both give the same text."""
    data = {
        "service": "svc01",
        "node": "node1",
        "address": "10.231.81.11",
        "port": 9001,
        "options": {"svc01": {"workers": 8}},
    }
    source = TEMPLATE.read_text()
    plain = _render(source, **data)
    trimmed = jinja2.Environment(keep_trailing_newline=True, trim_blocks=True)
    assert trimmed.from_string(source).render(**data) == plain
    assert "workers = 8\n" in plain and "bind_port = 9001\n" in plain and "\n\n\n" not in plain
    for tool in ("kplan", "ansible", "pyinfra"):
        project = write(tool, WORK, tmp_path)
        copies = list(project.rglob("service.conf.j2"))
        assert [c.read_text() for c in copies] == [source], tool


def test_the_change_is_one_option_of_one_service_on_one_host() -> None:
    for run in range(2):
        changed = changed_options(WORK, run)
        assert changed.host_options("node2") == {}
        assert list(changed.host_options("node1")) == [service_name(0)]
    # Two runs in a row are two real changes.
    assert changed_options(WORK, 0).options != changed_options(WORK, 1).options


def test_peer_projects_carry_the_options_and_the_conditional_restart(tmp_path: Path) -> None:
    changed = changed_options(WORK, 0)
    ansible = write("ansible", changed, tmp_path)
    play = yaml.safe_load((ansible / "site.yml").read_text())
    tasks = {t["name"]: t for t in play[0]["tasks"]}
    restart = tasks["restart the containers whose config changed (and that were not just started)"]
    assert restart["community.docker.docker_container"]["restart"] is True
    assert restart["when"] == "item.changed and not containers.results[i].changed"
    assert yaml.safe_load((ansible / "host_vars" / "node1.yml").read_text()) == {
        "options": {"svc00": {"workers": 4}}
    }
    assert "pipelining = True" in (ansible / "ansible.cfg").read_text()

    pyinfra = write("pyinfra", changed, tmp_path)
    ast.parse((pyinfra / "deploy.py").read_text())
    inventory = ast.literal_eval((pyinfra / "inventory.py").read_text().split("bench = ", 1)[1])
    assert [type(h) for h in inventory] == [tuple, tuple]  # pyinfra ignores lists
    assert inventory[0][1]["options"] == {"svc00": {"workers": 4}}

    kplan = write("kplan", changed, tmp_path)
    hosts = yaml.safe_load((kplan / "hosts.kp.yaml").read_text())["hosts"]
    assert hosts["node1"]["vars"]["options"] == {"svc00": {"workers": 4}}
    assert hosts["node2"]["vars"]["options"] == {}


def test_every_tool_gives_each_container_the_same_health_check(tmp_path: Path) -> None:
    want = {
        "test": "test -r /etc/bench/svc00.conf",
        "interval": "30s",
        "retries": 3,
        "start_period": "5s",
        "timeout": "30s",
    }

    def named(check: dict[str, object], placeholder: str) -> dict[str, object]:
        return {**check, "test": str(check["test"]).replace(placeholder, "svc00")}

    kplan = write("kplan", WORK, tmp_path)
    node = yaml.safe_load((kplan / "node" / "node.kp.yaml").read_text())
    check = node["resources"]["docker_container.svc"]["healthcheck"]
    assert named(check, "${each.key}") == want

    ansible = write("ansible", WORK, tmp_path)
    tasks = {t["name"]: t for t in yaml.safe_load((ansible / "site.yml").read_text())[0]["tasks"]}
    start = tasks["containers"]["community.docker.docker_container"]["healthcheck"]
    assert named(start, "{{ item }}") == want
    restart = tasks["restart the containers whose config changed (and that were not just started)"]
    assert (
        named(restart["community.docker.docker_container"]["healthcheck"], "{{ item.item }}")
        == want
    )

    pyinfra = write("pyinfra", WORK, tmp_path)
    calls = [
        node
        for node in ast.walk(ast.parse((pyinfra / "deploy.py").read_text()))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "docker.container"
    ]
    (extra,) = [kw.value for c in calls for kw in c.keywords if kw.arg == "extra_args"]
    args = eval(compile(ast.Expression(extra), "deploy.py", "eval"), {"service": "svc00"})
    assert args == [
        "--health-cmd",
        want["test"],
        "--health-interval=30s",
        "--health-retries=3",
        "--health-start-period=5s",
        "--health-timeout=30s",
    ]


def test_sshd_verbose_log_counts_connections_and_channels() -> None:
    log = "\n".join(
        [
            'Connection from 10.231.81.1 port 40000 on 10.231.81.11 port 22 rdomain ""',
            "Accepted publickey for root from 10.231.81.1 port 40000 ssh2: ED25519 SHA256:x",
            "Starting session: command for root from 10.231.81.1 port 40000 id 0",
            "Starting session: subsystem 'sftp' for root from 10.231.81.1 port 40000 id 1",
            "Close session: user root from 10.231.81.1 port 40000 id 0",
        ]
    )
    counted = count_ssh(log)
    assert (counted.connections, counted.channels) == (1, 2)


def _figure(tool: str, name: str, wall: float) -> dict[str, object]:
    medians = dict.fromkeys(report.ATTRS, 0.0)
    medians["wall"] = wall
    return {
        "tool": tool,
        "size": "3x10",
        "name": name,
        "command": "x",
        "runs": [{}] * 3,
        "medians": medians,
    }


def _data(figures: list[dict[str, object]]) -> dict[str, object]:
    """A results.json of one 3x10 run with these figures."""
    return {
        "started": "2026-12-07 04:00",
        "machine": {"cpus": 2, "cpu": "cpu", "memory_gb": 23.5, "kernel": "6", "python": "3.11"},
        "versions": {"kplan": "0.1"},
        "argv": ["run.py", "--sizes", "3x10"],
        "figures": figures,
        "same_files": {"3x10": True},
    }


def test_report_ratios_and_targets(tmp_path: Path) -> None:
    text = report.markdown(
        _data(
            [
                _figure("kplan", "noop", 1.0),
                _figure("kplan", "deploy", 10.0),
                _figure("ansible", "noop", 31.0),
                _figure("ansible", "deploy", 20.0),
            ]
        )
    )
    assert "| no-op, a full run | — | 31.00 s | — |" in text
    assert "| fresh deploy | 10.00 s | 20.00 s | 2.0x |" in text
    assert "| 3x10 | no-op plan ≥ 30x faster than ansible-playbook's no-op run | 31.0x" in text
    assert (
        "| fresh deploy ≥ 5x faster than ansible-playbook | 2.0x (20.00 s vs 10.00 s) | **no** |"
        in text
    )

    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nearlier\n")
    report.update_results(results, "first\n")
    report.update_results(results, "second\n")
    written = results.read_text()
    assert written.startswith("# Results\n\nearlier\n")
    assert "second\n" in written and "first" not in written
    assert written.count(report.BEGIN) == 1


@pytest.mark.parametrize("text", ["3", "x10", "3x", "0x10", "ax1"])
def test_sizes_are_checked(text: str) -> None:
    import argparse

    from benchmarks.peers.run import parse_size

    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)
    assert parse_size("10x20") == (10, 20)


def test_a_stopped_run_resumes_with_what_it_had_measured(tmp_path: Path) -> None:
    from benchmarks.peers import run

    done = run.Progress(tmp_path, resume=False)
    fig = run.Figure(
        "ansible", "3x10", "deploy", "ansible-playbook site.yml", expected="30 created"
    )
    fig.runs.append(run.Run(17.8, 6.1, 20.5, 3, 276, 30, 0, 30, log="a.log"))
    done.figures.append(fig)
    done.trips.append({"tool": "kplan", "services": 5, "wall": 0.7})
    run.RENDERED["3x10"] = {"ansible": "port = 8000\n"}
    done.save()
    run.RENDERED.clear()

    again = run.Progress(tmp_path, resume=True)
    assert again.started == done.started
    assert again.figures == [fig]  # the runs too, as dataclasses again
    assert again.has("ansible", "3x10") and not again.has("ansible", "10x20")
    assert again.has_trip("kplan", 5) and not again.has_trip("kplan", 20)
    assert again.scale is None
    assert run.RENDERED == {"3x10": {"ansible": "port = 8000\n"}}
    assert run.Progress(tmp_path, resume=False).figures == []  # a new run starts afresh
    run.RENDERED.clear()


def test_results_json_shape_is_what_the_report_reads() -> None:
    # The report reads these keys of every round-trip entry written by run.round_trips.
    entry = {
        "tool": "kplan",
        "services": 5,
        "hosts": 1,
        "command": "plan",
        "wall": 1.0,
        "connections_per_host": 1,
        "channels_per_host": 4,
        "docker_requests_per_host": 3,
    }
    data = {
        "started": "2026-12-07",
        "machine": {"cpus": 2, "cpu": "c", "memory_gb": 1, "kernel": "k", "python": "3"},
        "versions": {},
        "argv": ["run.py"],
        "figures": [],
        "round_trips": [entry],
    }
    assert "| kplan `plan` | 5 | 1.00 s | 1 | 4 | 3 |" in report.markdown(
        json.loads(json.dumps(data))
    )


def test_scale_module_has_the_shape_and_count_it_claims(tmp_path: Path) -> None:
    from benchmarks.peers.scale import build_state, write_kplan, write_terraform
    from benchmarks.scale import _bench_env as bench_env

    assert write_kplan(tmp_path / "kplan", 3, 2) == 24
    plan = _kplan(tmp_path / "kplan", "plan", "-no-color")
    assert "Plan: 24 to add, 0 to change, 0 to restart, 0 to destroy." in plan.stdout
    assert 'module.node["h0002"].null_resource.check["svc01"] will be created' in plan.stdout
    # The state written through the API is what an apply leaves: nothing to do.
    build_state(tmp_path / "kplan", 3, 2)
    key = {"KPLAN_STATE_KEY": bench_env()["KPLAN_STATE_KEY"]}
    noop = _kplan(tmp_path / "kplan", "plan", "-no-color", "-detailed-exitcode", env=key)
    assert "No changes." in noop.stdout
    # Terraform's copy: the same count of terraform_data blocks per service.
    assert write_terraform(tmp_path / "tf", 3, 2) == 24
    node = (tmp_path / "tf" / "node" / "main.tf").read_text()
    assert node.count('resource "terraform_data"') == 4
    assert "replace_triggered_by = [terraform_data.config[each.key]]" in node


def test_report_compares_the_peers_with_kplan_alone_and_with_its_server() -> None:
    text = report.markdown(
        _data(
            [
                _figure("kplan", "noop", 1.0),
                _figure("kplan-server", "noop", 0.25),
                _figure("ansible", "noop", 15.0),
            ]
        )
    )
    assert (
        "| | kplan | kplan server | ansible-playbook"
        " | ansible-playbook ÷ kplan | ansible-playbook ÷ kplan server |" in text
    )
    assert "| no-op, checking only | 1.00 s | 0.25 s | — | — | — |" in text
    assert "| no-op, a full run | — | — | 15.00 s | — | — |" in text
    assert "| 3x10 | no-op plan ≥ 30x faster than ansible-playbook's no-op run | 15.0x" in text
    assert (
        "| 3x10 | no-op plan ≥ 30x faster than ansible-playbook's no-op run (kplan server)"
        " | 60.0x (15.00 s vs 0.25 s) | yes |" in text
    )
    assert "run by a kplan server" in text


def test_the_server_runs_use_the_kplan_project_and_a_server_of_their_own(tmp_path: Path) -> None:
    from benchmarks.peers.run import commands, environment

    alone, served = write("kplan", WORK, tmp_path), write("kplan-server", WORK, tmp_path)
    assert (alone / "main.kp.yaml").read_text() == (served / "main.kp.yaml").read_text()
    assert commands("kplan", alone) == commands("kplan-server", served)
    assert environment("kplan", alone)["KPLAN_SERVER"] == "off"
    env = environment("kplan-server", served)
    assert env["KPLAN_SERVER"] == "on"
    assert env["KPLAN_SERVER_SOCKET"] == str(served / "server" / "server.sock")
