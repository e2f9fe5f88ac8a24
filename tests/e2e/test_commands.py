"""Commands beyond the plan/apply loop, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.e2e.conftest import REPO, run_kplan

COMMANDS = [
    ["init"], ["validate"], ["fmt"], ["plan"], ["apply"], ["destroy"], ["show"], ["output"],
    ["graph"], ["version"], ["force-unlock"],
    ["state", "list"], ["state", "show"], ["state", "rm"], ["state", "mv"], ["state", "history"],
    ["state", "pull"], ["state", "push"],
    ["workspace", "list"], ["workspace", "new"], ["workspace", "select"], ["workspace", "show"],
    ["workspace", "delete"],
    ["lab", "up"], ["lab", "status"], ["lab", "down"], ["lab", "images"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str], tmp_path: Path) -> None:
    proc = run_kplan(tmp_path, *command, "--help", check=True)
    text = " ".join(proc.stdout.split())
    assert "Example: kplan" in text or "Example: sudo kplan" in text or command == ["version"]


def test_failure_stops_new_work_finishes_work_in_flight_and_records_it(module_copy) -> None:
    root = module_copy("tests/fixtures/e2e/failing")
    (root / "blocker").write_text("a file where a folder should be\n")
    proc = run_kplan(root, "apply", "-auto-approve")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "Failed: local_file.bad" in proc.stderr
    not_started = next(line for line in proc.stderr.splitlines() if line.startswith("Not started"))
    assert "local_file.after" in not_started and "local_file.later" in not_started
    recorded = run_kplan(root, "state", "list", check=True).stdout.split()
    # time_sleep.slow was in flight when local_file.bad failed: it finished and is recorded.
    assert "time_sleep.slow" in recorded and "time_sleep.short" in recorded
    assert "local_file.bad" not in recorded and "local_file.after" not in recorded
    history = run_kplan(root, "state", "history", check=True).stdout
    assert "failed" in history
    (root / "blocker").unlink()
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_modules_with_for_each_count_and_hosts(module_copy) -> None:
    root = module_copy("tests/fixtures/e2e/modules")
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert (root / "out/api-ctl2.conf").read_text() == "listen 10.231.0.12:8080\n"
    assert not (root / "out/api-cmp1.conf").exists()  # the module's hosts: control only
    assert (root / "out/replica1-cmp1.conf").read_text() == "listen 10.231.0.21:9001\n"
    outputs = json.loads(run_kplan(root, "output", "-json", check=True).stdout)
    assert outputs["api_files"]["value"] == ["ctl1", "ctl2"]
    assert outputs["replica_ports"]["value"] == [9000, 9001]
    listed = run_kplan(root, "state", "list", "module.svc").stdout.split()
    assert listed == [
        'module.svc["api"].local_file.conf["ctl1"]',
        'module.svc["api"].local_file.conf["ctl2"]',
        'module.svc["web"].local_file.conf["ctl1"]',
        'module.svc["web"].local_file.conf["ctl2"]',
    ]
    host_plan = json.loads(
        run_kplan(
            root,
            "plan",
            "-json",
            "-replace",
            'module.svc["web"].local_file.conf["ctl1"]',
            check=True,
        ).stdout
    )
    replaced = [
        rc["address"]
        for rc in host_plan["resource_changes"]
        # local_file writes the new file before removing the old: create_before_destroy.
        if rc["change"]["actions"] == ["create", "delete"]
    ]
    assert replaced == ['module.svc["web"].local_file.conf["ctl1"]']

    bad = (root / "main.kp.yaml").read_text().replace("api: 8080", "api: 80")
    (root / "main.kp.yaml").write_text(bad)
    proc = run_kplan(root, "plan")
    assert proc.returncode == 1
    assert "Ports at or below 1024 need root" in proc.stderr


def test_json_plan_matches_the_documented_schema(module_copy) -> None:
    root = module_copy("examples/quickstart")
    schema = json.loads((REPO / "docs/plan-json.schema.json").read_text())
    first = json.loads(run_kplan(root, "plan", "-json", check=True).stdout)
    jsonschema.validate(first, schema)
    run_kplan(root, "apply", "-auto-approve", check=True)
    second = json.loads(run_kplan(root, "plan", "-json", "-var", "release=b", check=True).stdout)
    jsonschema.validate(second, schema)
    assert first["format_version"] == "1.2"
    secret = next(rc for rc in first["resource_changes"] if rc["address"] == "secret_password.db")
    assert secret["change"]["after_unknown"]["value"] is True


def test_refresh_only_records_drift_without_touching_objects(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", check=True)
    (root / "out/motd").write_text("keep me\n")
    plan = run_kplan(root, "plan", "-refresh-only", check=True).stdout
    assert "This is a refresh-only plan" in plan
    run_kplan(root, "apply", "-refresh-only", "-auto-approve", check=True)
    assert (root / "out/motd").read_text() == "keep me\n"
    shown = run_kplan(root, "state", "show", "module.motd.local_file.motd", check=True).stdout
    assert "keep me" in shown
    # The configuration still wants the old text: a normal plan now updates it.
    assert "will be updated in-place" in run_kplan(root, "plan", check=True).stdout


def test_state_mv_rm_graph_fmt_and_markdown(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", check=True)
    run_kplan(root, "state", "mv", "local_file.db_conf", "local_file.database", check=True)
    listed = run_kplan(root, "state", "list", check=True).stdout.split()
    assert "local_file.database" in listed and "local_file.db_conf" not in listed
    run_kplan(root, "state", "rm", "local_file.database", check=True)
    assert "local_file.database" not in run_kplan(root, "state", "list").stdout
    assert (root / "out/db.conf").exists()  # rm forgets, it does not delete

    dot = run_kplan(root, "graph", check=True).stdout
    assert dot.startswith("digraph kplan {")
    assert '"local_file.db_conf" -> "secret_password.db";' in dot

    assert run_kplan(root, "fmt", "-check", ".").returncode == 0
    messy = root / "extra.kp.yaml"
    messy.write_text("locals:\n    x:   1\n")
    assert run_kplan(root, "fmt", "-check", ".").returncode == 3
    run_kplan(root, "fmt", ".", check=True)
    assert messy.read_text() == "locals:\n  x: 1\n"

    run_kplan(root, "plan", "-out", "review.plan", "-var", "release=c", check=True)
    md = run_kplan(root, "show", "-markdown", "review.plan", check=True).stdout
    assert "| Action |" in md and "<details>" in md


def test_validate_says_how_to_write_dollar_brace(tmp_path: Path) -> None:
    main = tmp_path / "main.kp.yaml"
    main.write_text(
        "hosts:\n  h1: {address: local}\noutputs:\n  inputs: {value: {host: ${host.h1.name}}}\n"
    )
    proc = run_kplan(tmp_path, "validate")
    assert proc.returncode == 1
    assert "a ${...} value inside a YAML flow mapping {...} must be quoted" in proc.stderr
    assert "on main.kp.yaml:4:26" in proc.stderr
    assert 'inputs: {value: {host: "${host.h1.name}"}}' in proc.stderr
    main.write_text(
        "hosts:\n  h1: {address: local}\noutputs:\n  cmd: sh -c 'echo ${HOME} ${USER:-x}'\n"
    )
    proc = run_kplan(tmp_path, "validate")
    assert proc.returncode == 1
    assert "if ${HOME} is for a shell (a command, a script), write $${HOME}" in proc.stderr
    assert "write $${USER:-x}" in proc.stderr
    main.write_text(
        "hosts:\n  h1: {address: local}\noutputs:\n  cmd: sh -c 'echo $${HOME} $${USER:-x}'\n"
    )
    run_kplan(tmp_path, "validate", check=True)


def test_lab_images_help_lists_the_images_it_can_build(tmp_path: Path) -> None:
    from kplan.lab.images import DEFAULT_IMAGES, RECIPES

    text = " ".join(run_kplan(tmp_path, "lab", "images", "--help", check=True).stdout.split())
    for name, recipe in RECIPES.items():
        assert recipe.description, f"lab image {name} has no description"
        mark = " (default)" if name in DEFAULT_IMAGES else ""
        assert f"{name} {recipe.description}{mark}" in text


def test_every_command_summary_is_one_line() -> None:
    """`kplan --help` lists each command by its first paragraph: a line break in it shows."""
    import typer

    from kplan.cli.main import app

    def walk(group: Any, prefix: str) -> list[tuple[str, Any]]:
        found = []
        for name, cmd in getattr(group, "commands", {}).items():
            found.append((f"{prefix}{name}", cmd))
            found += walk(cmd, f"{prefix}{name} ")
        return found

    commands = walk(typer.main.get_command(app), "")
    assert len(commands) > 20
    for name, cmd in commands:
        summary = (cmd.help or "").strip().split("\n\n")[0]
        assert summary and "\n" not in summary, f"kplan {name}: {summary!r}"


def test_a_usage_error_exits_1_as_the_exit_code_table_says(tmp_path: Path) -> None:
    # With -detailed-exitcode, 2 means "the plan has changes": a usage error must not say so.
    for args in (["plan", "-no-such-flag"], ["plan", "-parallelism", "abc"]):
        proc = run_kplan(tmp_path, *args)
        assert proc.returncode == 1, (args, proc.stderr)
    table = (REPO / "docs" / "cli.md").read_text().split("## Exit codes")[1].split("\n\n")[1]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    assert "usage error" in rows["1"]
    assert "usage error" not in rows["2"]


@pytest.mark.parametrize("command", [["validate"], ["fmt"]], ids=" ".join)
def test_the_help_example_works_in_a_fresh_checkout(command: list[str]) -> None:
    # examples/lab needs the inventory `kplan lab up` writes: not an example to start with.
    text = " ".join(run_kplan(REPO, *command, "--help", check=True).stdout.split())
    example = text.split("Example: kplan ", 1)[1].split(" ╭")[0].split()
    assert example[: len(command)] == command
    proc = run_kplan(REPO, *example)
    assert proc.returncode == 0, (example, proc.stdout, proc.stderr)


def test_every_field_of_the_apply_json_events_is_documented(tmp_path: Path) -> None:
    (tmp_path / "main.kp.yaml").write_text("resources:\n  local_file.a: {path: a, content: x}\n")
    proc = run_kplan(tmp_path, "apply", "-auto-approve", "-json", check=True)
    events = [json.loads(line) for line in proc.stdout.splitlines()[1:]]
    section = (REPO / "docs" / "cli.md").read_text().split("### `-json` events")[1]
    table = section.split("| `type` | Fields |")[1].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        kinds, fields = line.split("|")[1:3]
        for kind in kinds.replace("`", "").split("/"):
            rows[kind.strip()] = fields
    assert {e["type"] for e in events} == {"apply_start", "apply_done", "apply_complete"}
    for event in events:
        for key in set(event) - {"type"}:
            assert f"`{key}`" in rows[event["type"]], (event["type"], key)
