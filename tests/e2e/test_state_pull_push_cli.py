"""`kplan state show -serial`, `state pull` and `state push` through the real CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kplan.state.crypto import generate_key
from kplan.state.store import StateStore
from tests.e2e.conftest import run_kplan

REGION = 'local_file.region["RegionOne"]'


@pytest.fixture
def key() -> dict[str, str]:
    return {"KPLAN_STATE_KEY": generate_key()}


@pytest.mark.parametrize("command", ["pull", "push"])
def test_help_has_an_example(command: str, tmp_path: Path) -> None:
    text = " ".join(run_kplan(tmp_path, "state", command, "--help", check=True).stdout.split())
    assert f"Example: kplan state {command}" in text


def test_state_show_at_an_earlier_serial(module_copy, key: dict[str, str]) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", env=key, check=True)
    first = _history(root, key)[-1]
    run_kplan(root, "apply", "-auto-approve", "-var", "release=yoga", env=key, check=True)
    now = run_kplan(root, "state", "show", REGION, env=key, check=True).stdout
    assert "kplan quickstart (yoga): RegionOne" in now
    then = run_kplan(root, "state", "show", "-serial", first, REGION, env=key, check=True).stdout
    assert "kplan quickstart (zed): RegionOne" in then and "yoga" not in then
    everything = run_kplan(root, "state", "show", "-serial", first, env=key, check=True).stdout
    assert f"# {REGION}:" in everything and "# secret_password.db:" in everything
    assert "(sensitive value)" in everything
    assert run_kplan(root, "state", "show", "-serial", "0", env=key, check=True).stdout == (
        "The state was empty at serial 0.\n"
    )
    missing = run_kplan(root, "state", "show", "-serial", "0", REGION, env=key)
    assert missing.returncode == 1 and f"no resource {REGION} in the state at serial 0" in (
        missing.stderr
    )
    late = run_kplan(root, "state", "show", "-serial", "999", env=key)
    assert late.returncode == 1 and "has no serial 999" in late.stderr
    bare = run_kplan(root, "state", "show", env=key)
    assert bare.returncode == 1 and "needs an ADDRESS, or -serial N" in bare.stderr


def _history(root: Path, env: dict[str, str]) -> list[str]:
    """The state serial each run ended at, from `kplan state history`."""
    lines = run_kplan(root, "state", "history", env=env, check=True).stdout.splitlines()
    assert lines[0].split()[:2] == ["SERIAL", "STATE"]
    return [line.split()[1] for line in lines[1:]]


def test_pull_push_round_trip_between_roots(
    module_copy, tmp_path: Path, key: dict[str, str]
) -> None:
    src = module_copy("examples/quickstart")
    run_kplan(src, "apply", "-auto-approve", env=key, check=True)
    password = run_kplan(src, "output", "-raw", "-show-sensitive", "db_password", env=key).stdout
    assert len(password) == 24
    backup = tmp_path / "backup.kstate"
    run_kplan(src, "state", "pull", "-out", str(backup), env=key, check=True)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    text = backup.read_text()
    assert password not in text
    to_stdout = json.loads(run_kplan(src, "state", "pull", env=key, check=True).stdout)
    assert (
        to_stdout["workspaces"]["default"]["serial"]
        == json.loads(text)["workspaces"]["default"]["serial"]
    )

    dst = tmp_path / "elsewhere"
    dst.mkdir()
    (dst / "main.kp.yaml").write_text((src / "main.kp.yaml").read_text())
    (dst / "modules").symlink_to(src / "modules")
    run_kplan(dst, "init", env=key, check=True)
    pushed = run_kplan(dst, "state", "push", str(backup), env=key, check=True)
    assert "Pushed" in pushed.stdout and "7 resource instance(s)" in pushed.stdout
    with (
        StateStore.open(str(src / ".kplan/state.db"), environ=key) as a,
        StateStore.open(str(dst / ".kplan/state.db"), environ=key) as b,
    ):
        assert a.content_checksum() == b.content_checksum()
    shown = run_kplan(dst, "output", "-raw", "-show-sensitive", "db_password", env=key).stdout
    assert shown == password
    assert (
        run_kplan(dst, "state", "list", env=key).stdout
        == run_kplan(src, "state", "list", env=key).stdout
    )


def test_push_refusals_and_force(module_copy, tmp_path: Path, key: dict[str, str]) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", env=key, check=True)
    old = tmp_path / "old.kstate"
    run_kplan(root, "state", "pull", "-out", str(old), env=key, check=True)
    run_kplan(root, "state", "rm", "secret_password.db", env=key, check=True)

    refused = run_kplan(root, "state", "push", str(old), env=key)
    assert refused.returncode == 1
    assert "refusing to overwrite workspace 'default'" in refused.stderr
    assert "newer than" in refused.stderr
    assert "secret_password.db" not in run_kplan(root, "state", "list", env=key).stdout
    run_kplan(root, "state", "push", "-force", str(old), env=key, check=True)
    assert "secret_password.db" in run_kplan(root, "state", "list", env=key).stdout

    # Another root module's state (another lineage) is refused, even with the same key.
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "main.kp.yaml").write_text(
        "resources:\n  null_resource.x:\n    triggers: {a: b}\n", encoding="utf-8"
    )
    run_kplan(stranger, "apply", "-auto-approve", env=key, check=True)
    lineage = run_kplan(stranger, "state", "push", str(old), env=key)
    assert lineage.returncode == 1 and "lineage" in lineage.stderr

    # A state with another key cannot unseal the file's secrets; nothing is written.
    wrong = {"KPLAN_STATE_KEY": generate_key()}
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "main.kp.yaml").write_text((stranger / "main.kp.yaml").read_text())
    run_kplan(fresh, "init", env=wrong, check=True)
    bad = run_kplan(fresh, "state", "push", str(old), env=wrong)
    assert bad.returncode == 1
    assert "cannot unseal the secrets in" in bad.stderr and "another state key" in bad.stderr
    assert run_kplan(fresh, "state", "list", env=wrong, check=True).stdout == ""


def test_push_holds_the_lock(module_copy, tmp_path: Path, key: dict[str, str]) -> None:
    root = module_copy("examples/quickstart")
    run_kplan(root, "apply", "-auto-approve", env=key, check=True)
    doc = tmp_path / "doc.kstate"
    run_kplan(root, "state", "pull", "-out", str(doc), env=key, check=True)
    with (
        StateStore.open(str(root / ".kplan/state.db"), environ=key) as store,
        store.lock("apply"),
    ):
        locked = run_kplan(root, "state", "push", str(doc), env=key)
    assert locked.returncode == 1 and "the state is locked" in locked.stderr
    via_stdin = run_kplan(root, "state", "push", "-", input=doc.read_text(), env=key)
    assert via_stdin.returncode == 0, via_stdin.stderr
    assert "Pushed stdin" in via_stdin.stdout
