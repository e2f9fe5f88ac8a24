"""The operator's workflow through the real CLI: plan, apply, change, destroy, recover."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import run_kplan


def _plan_json(cwd: Path, *args: str) -> dict:
    proc = run_kplan(cwd, "plan", "-json", *args, check=True)
    return json.loads(proc.stdout)


def _changes(plan: dict) -> dict[str, list[str]]:
    return {
        rc["address"]: rc["change"]["actions"]
        for rc in plan["resource_changes"]
        if rc["change"]["actions"] != ["no-op"]
    }


def test_plan_apply_noop_modify_and_targeted_destroy(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "init", check=True)

    first = run_kplan(root, "plan", "-detailed-exitcode")
    assert first.returncode == 2, first.stderr
    assert "Plan: 7 to add, 0 to change, 0 to restart, 0 to destroy." in first.stdout

    run_kplan(root, "apply", "-auto-approve", check=True)
    assert (root / "out/regions/regionone.txt").read_text() == "kplan quickstart (zed): RegionOne\n"
    assert oct((root / "out/db.conf").stat().st_mode & 0o777) == "0o600"

    again = run_kplan(root, "plan", "-detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout

    # A variable change updates the region files; their consumers follow.
    changed = _changes(_plan_json(root, "-var", "release=antelope"))
    assert changed['local_file.region["RegionOne"]'] == ["update"]
    assert changed["module.motd.local_file.motd"] == ["update"]
    assert changed['null_resource.service["RegionOne"]'] == ["delete", "create"]
    assert "secret_password.db" not in changed

    # Destroying one region's file takes its service along, and nothing else.
    run_kplan(
        root, "destroy", "-auto-approve", "-target", 'local_file.region["RegionTwo"]', check=True
    )
    listed = run_kplan(root, "state", "list", check=True).stdout.split()
    assert 'local_file.region["RegionTwo"]' not in listed
    assert 'null_resource.service["RegionTwo"]' not in listed
    assert 'null_resource.service["RegionOne"]' in listed
    assert not (root / "out/regions/regiontwo.txt").exists()
    assert (root / "out/regions/regionone.txt").exists()
    # Only the output that reads the destroyed block goes; the others stay recorded.
    outputs = json.loads(run_kplan(root, "output", "-json", check=True).stdout)
    assert sorted(outputs) == ["db_conf", "db_password"]

    # The next plan puts back exactly what was destroyed.
    assert _changes(_plan_json(root)) == {
        'local_file.region["RegionTwo"]': ["create"],
        'null_resource.service["RegionTwo"]': ["create"],
    }


def test_drift_is_shown_and_repaired(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", check=True)
    (root / "out/motd").write_text("edited by hand\n")
    (root / "out/regions/regiontwo.txt").unlink()

    plan = run_kplan(root, "plan", check=True).stdout
    assert "Objects have changed outside of kplan" in plan
    assert "content changed outside kplan; restoring it" in plan
    assert 'local_file.region["RegionTwo"] will be created' in plan
    assert "deleted outside kplan" in plan

    run_kplan(root, "apply", "-auto-approve", check=True)
    assert (root / "out/motd").read_text() == "kplan quickstart (zed)\n"
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0


def test_saved_plan_is_applied_as_reviewed_and_refused_when_stale(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "plan", "-out", "first.plan", check=True)
    run_kplan(root, "plan", "-out", "second.plan", check=True)

    applied = run_kplan(root, "apply", "first.plan", check=True)
    assert "Apply complete! Resources: 7 added" in applied.stdout

    stale = run_kplan(root, "apply", "second.plan")
    assert stale.returncode == 1
    assert "saved plan second.plan is stale" in stale.stderr
    assert "state changed since the plan was made" in stale.stderr

    run_kplan(root, "plan", "-var", "release=bobcat", "-out", "third.plan", check=True)
    (root / "main.kp.yaml").write_text(
        (root / "main.kp.yaml").read_text().replace("length: 24", "length: 25")
    )
    edited = run_kplan(root, "apply", "third.plan")
    assert edited.returncode == 1
    assert "configuration files changed since the plan was made" in edited.stderr
    assert "Traceback" not in edited.stderr


def test_saved_plan_hint_runs_as_printed_and_json_stays_json(module_copy) -> None:
    root = module_copy("examples/quickstart")
    work = root.parent
    inner = root.rename(work / "my module")
    rel = inner.relative_to(work)
    run_kplan(work, "init", "-chdir", str(rel), check=True)
    shown = run_kplan(work, "plan", "-chdir", str(rel), "-out", "saved.plan", check=True)
    hint = shown.stdout.rstrip().splitlines()[-1].strip()
    assert hint == "kplan apply -chdir 'my module' saved.plan"
    # The printed command, pasted where the plan was made, applies it.
    argv = shlex.split(hint)[1:]
    applied = run_kplan(work, *argv, check=True)
    assert "Apply complete! Resources: 7 added" in applied.stdout

    # -json with -out: stdout is the JSON document alone (a pipe to jq must parse it).
    doc = run_kplan(work, "plan", "-chdir", str(rel), "-json", "-out", "again.plan", check=True)
    assert json.loads(doc.stdout)["format_version"]
    assert (inner / "again.plan").is_file()


def test_generated_secret_never_reaches_state_plan_or_output(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "plan", "-out", "saved.plan", check=True)
    run_kplan(root, "apply", "-auto-approve", check=True)
    conf = (root / "out/db.conf").read_text()
    password = re.search(r"keystone:(\w+)@", conf).group(1)
    assert len(password) == 24

    for f in (root / ".kplan").iterdir():
        assert password.encode() not in f.read_bytes(), f
    run_kplan(root, "plan", "-out", "after.plan", "-var", "release=x", check=True)
    assert password not in (root / "after.plan").read_text()
    outputs = [
        run_kplan(root, "output", check=True).stdout,
        run_kplan(root, "output", "-json", check=True).stdout,
        run_kplan(root, "show", check=True).stdout,
        run_kplan(root, "show", "-json", check=True).stdout,
        run_kplan(root, "show", "after.plan", check=True).stdout,
        run_kplan(root, "show", "-json", "after.plan", check=True).stdout,
        run_kplan(root, "state", "show", "secret_password.db", check=True).stdout,
    ]
    for text in outputs:
        assert password not in text
    revealed = run_kplan(root, "output", "-raw", "-show-sensitive", "db_password", check=True)
    assert revealed.stdout == password


def _serial_apply(root: Path) -> subprocess.Popen[str]:
    """`kplan apply` in the background, one change at a time, its output readable."""
    return subprocess.Popen(
        [sys.executable, "-m", "kplan", "apply", "-auto-approve", "-parallelism", "1"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_first_change(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    while "Creating" not in proc.stdout.readline():
        pass


def test_kill_9_mid_apply_loses_at_most_the_change_in_flight(module_copy) -> None:
    root = module_copy("tests/fixtures/e2e/slow")
    proc = _serial_apply(root)
    assert proc.stdout is not None
    done = 0
    deadline = time.monotonic() + 60
    while done < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "Creation complete" in line:
            done += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert done == 3

    recorded = set(run_kplan(root, "state", "list", check=True).stdout.split())
    assert len(recorded) >= 3
    remaining = _changes(_plan_json(root))
    every = {f"time_sleep.step[{i}]" for i in range(6)} | {
        f"local_file.mark[{i}]" for i in range(6)
    }
    # Every instance is either recorded or planned for creation: none is lost or doubled.
    assert set(remaining) == every - recorded
    assert all(actions == ["create"] for actions in remaining.values())

    history = run_kplan(root, "state", "history", check=True).stdout
    assert "interrupted" in history

    run_kplan(root, "apply", "-auto-approve", check=True)
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
    assert len(list((root / "out").glob("step-*.txt"))) == 6


def test_second_kplan_is_refused_while_the_state_is_locked(module_copy) -> None:
    root = module_copy("tests/fixtures/e2e/slow")
    holder = _serial_apply(root)
    try:
        _wait_for_first_change(holder)
        second = run_kplan(root, "plan")
        assert second.returncode == 1
        assert "state is locked" in second.stderr.lower()
        assert "apply" in second.stderr
    finally:
        holder.kill()
        holder.wait()


def test_apply_asks_for_yes_and_destroy_removes_everything(module_copy) -> None:
    root = module_copy("examples/quickstart")
    declined = run_kplan(root, "apply", input="no\n")
    assert declined.returncode == 1
    assert "Only 'yes' will be accepted" in declined.stdout
    assert "Apply cancelled." in declined.stderr
    assert run_kplan(root, "state", "list", check=True).stdout == ""

    accepted = run_kplan(root, "apply", input="yes\n", check=True)
    assert "Apply complete! Resources: 7 added" in accepted.stdout

    declined = run_kplan(root, "destroy", input="no\n")
    assert declined.returncode == 1
    assert "Destroy cancelled." in declined.stderr  # Terraform's words
    assert "Apply cancelled." not in declined.stderr

    # -exclude keeps the services and what they read (the hint of prevent_destroy).
    kept = run_kplan(root, "destroy", "-exclude", "null_resource.service", input="yes\n")
    assert "Destroy complete! Resources: 1 destroyed." in kept.stdout, kept.stderr
    assert "module.motd.local_file.motd" not in run_kplan(root, "state", "list").stdout

    destroyed = run_kplan(root, "destroy", input="yes\n", check=True)
    assert "Do you want to destroy?" in destroyed.stdout
    assert "Destroy complete! Resources: 6 destroyed." in destroyed.stdout
    assert run_kplan(root, "state", "list", check=True).stdout == ""
    assert list((root / "out").rglob("*.txt")) == []
    assert run_kplan(root, "output", check=True).stdout == ""


def test_variable_precedence_env_then_files_then_flags_in_order(module_copy, tmp_path) -> None:
    root = module_copy("examples/quickstart")
    (root / "a.yaml").write_text("release: from-file-a\n")
    (root / "b.yaml").write_text("release: from-file-b\n")
    env = {"KPLAN_VAR_release": "from-env"}

    def release(*args: str) -> str:
        plan = json.loads(run_kplan(root, "plan", "-json", *args, env=env, check=True).stdout)
        return plan["variables"]["release"]["value"]

    assert release() == "from-env"
    assert release("-var-file", "a.yaml") == "from-file-a"
    assert release("-var-file", "a.yaml", "-var-file", "b.yaml") == "from-file-b"
    assert release("-var", "release=flag", "-var-file", "b.yaml") == "from-file-b"
    assert release("-var-file", "b.yaml", "-var", "release=flag") == "flag"

    missing = run_kplan(root, "plan", "-var", "nosuch=1")
    assert missing.returncode == 1
    assert "nosuch" in missing.stderr


def test_apply_json_streams_events(module_copy) -> None:
    root = module_copy("examples/quickstart")
    proc = run_kplan(root, "apply", "-auto-approve", "-json", check=True)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"type"')]
    kinds = {e["type"] for e in events}
    assert {"apply_start", "apply_done", "apply_complete"} <= kinds
    done = [e["address"] for e in events if e["type"] == "apply_done"]
    assert sorted(done) == sorted(set(done)) and len(done) == 7
    # A resource's dependency finishes before the resource starts.
    order = [(e["type"], e.get("address")) for e in events]
    assert order.index(("apply_done", "secret_password.db")) < order.index(
        ("apply_start", "local_file.db_conf")
    )


def test_lock_timeout_waits_for_the_holder(module_copy) -> None:
    root = module_copy("tests/fixtures/e2e/slow")
    (root / "main.kp.yaml").write_text(
        (root / "main.kp.yaml").read_text().replace("default: 6", "default: 2")
    )
    holder = _serial_apply(root)
    try:
        _wait_for_first_change(holder)
        waited = run_kplan(root, "plan", "-lock-timeout", "30s", "-detailed-exitcode")
        assert waited.returncode == 0, waited.stderr  # it waited, then saw the finished apply
    finally:
        holder.wait(timeout=60)


def test_replace_request_makes_a_new_object(module_copy) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", check=True)

    def service_id() -> str:
        shown = run_kplan(root, "state", "show", 'null_resource.service["RegionOne"]', check=True)
        return re.search(r'id\s+= "(\w+)"', shown.stdout).group(1)

    before = service_id()
    plan = _plan_json(root, "-replace", 'null_resource.service["RegionOne"]')
    change = next(
        rc
        for rc in plan["resource_changes"]
        if rc["address"] == 'null_resource.service["RegionOne"]'
    )
    assert change["change"]["actions"] == ["delete", "create"]
    assert change["change"]["after_unknown"].get("id") is True
    run_kplan(
        root, "apply", "-auto-approve", "-replace", 'null_resource.service["RegionOne"]', check=True
    )
    assert service_id() != before
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
