"""A host that cannot be reached: one clear line, and the other hosts' work still lands.

Two hosts: ``here`` (connection: local) and ``far``. ``far`` starts as a
local host too, then moves to an SSH address nothing listens on (loopback
port 1: refused at once, no traffic leaves the machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_kplan

pytestmark = pytest.mark.e2e


def _module(root: Path, out: Path, far: str, files: list[str]) -> None:
    lines = [
        "hosts:",
        "  here: {connection: local}",
        f"  far: {far}",
        "resources:",
    ]
    for name in files:
        lines += [
            f"  host_file.{name}:",
            "    for_each: [here, far]",
            "    host: ${each.key}",
            f'    path: "{out}/${{each.key}}-{name}.txt"',
            f'    content: "{name} on ${{each.key}}\\n"',
        ]
    (root / "main.kp.yaml").write_text("\n".join(lines) + "\n")


def test_unreachable_host_fails_alone(tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    out.mkdir()
    _module(root, out, "{connection: local}", ["a"])
    run_kplan(root, "apply", "-auto-approve", check=True)

    gone = "{address: 127.0.0.1, port: 1, user: root}"
    _module(root, out, gone, ["a", "b"])
    plan = run_kplan(root, "plan")
    assert plan.returncode == 1
    line = "host far: cannot connect to 127.0.0.1:1: connection refused"
    # Said once, however many of its resources needed a refresh, with the way around it.
    assert plan.stderr.count(line) == 1, plan.stderr
    assert "kplan plan -exclude host:far" in plan.stderr
    assert "Traceback" not in plan.stderr

    other = run_kplan(root, "plan", "-exclude", "host:far", "-detailed-exitcode")
    assert other.returncode == 2, other.stderr
    assert 'host_file.b["here"] will be created' in other.stdout

    # Without a refresh, apply goes ahead: far's change fails, here's lands.
    apply = run_kplan(root, "apply", "-auto-approve", "-refresh=false")
    assert apply.returncode == 1
    assert line in apply.stderr
    assert (out / "here-b.txt").read_text() == "b on here\n"
    assert not (out / "far-b.txt").exists()
    listed = run_kplan(root, "state", "list", check=True).stdout.split()
    assert 'host_file.b["here"]' in listed and 'host_file.b["far"]' not in listed
    assert 'host_file.a["far"]' in listed  # what far had is kept, not forgotten


def test_what_depends_on_a_down_host_waits_and_the_rest_lands(tmp_path: Path) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    out.mkdir()
    _module(root, out, "{address: 127.0.0.1, port: 1, user: root}", ["b"])
    # On a reachable host, but made from what the unreachable one would write.
    with (root / "main.kp.yaml").open("a") as f:
        f.write(
            "  host_file.summary:\n"
            "    host: here\n"
            f'    path: "{out}/summary.txt"\n'
            '    content: "far has ${host_file.b[\\"far\\"].sha256}\\n"\n'
        )
    apply = run_kplan(root, "apply", "-auto-approve")
    assert apply.returncode == 1
    assert apply.stderr.count("Error: host far: cannot connect to 127.0.0.1:1") == 1, apply.stderr
    # Left, not failed with "inconsistent plan", and nothing else stopped.
    assert "inconsistent" not in apply.stderr
    assert "Not started: host_file.summary" in apply.stderr
    assert (out / "here-b.txt").exists() and not (out / "summary.txt").exists()
    listed = run_kplan(root, "state", "list", check=True).stdout.split()
    assert listed == ['host_file.b["here"]']
