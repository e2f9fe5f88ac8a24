"""Moving a root module's state to PostgreSQL and back through the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO, run_kplan
from tests.integration.conftest import PgServer


def test_migrate_state_sqlite_to_postgresql_and_back(
    tmp_path: Path, pg_server: PgServer, pg_url: str, pg_env: dict[str, str]
) -> None:
    root = tmp_path / "quickstart"
    shutil.copytree(REPO / "examples/quickstart", root)
    env = {"KPLAN_PG_PASSWORD": pg_server.password}
    run_kplan(root, "apply", "-auto-approve", env=env, check=True)
    before = run_kplan(root, "state", "list", env=env, check=True).stdout

    refused = run_kplan(
        root,
        "init",
        "-backend-config",
        f"url={pg_server.url(pg_url.rsplit('/', 1)[1], with_password=True)}",
        env=env,
    )
    assert refused.returncode == 1
    assert "does not write database passwords to disk" in refused.stderr
    assert pg_server.password not in refused.stderr + refused.stdout

    moved = run_kplan(
        root,
        "init",
        "-backend-config",
        "type=postgresql",
        "-backend-config",
        f"url={pg_url}",
        "-migrate-state",
        env=env,
        check=True,
    )
    assert "Verified: both hold the same content (sha256:" in moved.stdout
    assert pg_server.password not in (root / ".kplan/backend.json").read_text()
    assert run_kplan(root, "state", "list", env=env, check=True).stdout == before
    assert run_kplan(root, "plan", "-detailed-exitcode", env=env).returncode == 0

    # A change applied against PostgreSQL, then the way back to SQLite.
    run_kplan(root, "apply", "-auto-approve", "-var", "release=b", env=env, check=True)
    back = run_kplan(
        root,
        "init",
        "-backend-config",
        "type=sqlite",
        "-backend-config",
        "path=.kplan/again.db",
        "-migrate-state",
        env=env,
        check=True,
    )
    assert "Verified" in back.stdout
    assert (
        run_kplan(root, "plan", "-detailed-exitcode", "-var", "release=b", env=env).returncode == 0
    )
    history = run_kplan(root, "state", "history", env=env, check=True).stdout
    assert history.count("success") == 2


def test_two_operators_apply_at_once_on_postgresql(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    """Two `kplan apply` processes on one PostgreSQL workspace, each from its own checkout:
    the second waits for the lock, then applies; nothing recorded by either is lost."""
    env = {"KPLAN_PG_PASSWORD": pg_server.password, "KPLAN_STATE_KEY": STATE_KEY}
    checkouts = []
    for who in ("alice", "bob"):
        root = tmp_path / who
        root.mkdir()
        (root / "main.kp.yaml").write_text(
            "variables:\n"
            "  who: {type: string}\n"
            "resources:\n"
            "  time_sleep.slow: {create_duration: 2s}\n"
            "  null_resource.mark:\n"
            "    for_each: [alice, bob]\n"
            '    triggers: {by: "${var.who}"}\n'
        )
        run_kplan(
            root,
            "init",
            "-backend-config",
            "type=postgresql",
            "-backend-config",
            f"url={pg_url}",
            env=env,
            check=True,
        )
        checkouts.append(root)
    alice, bob = checkouts
    first = subprocess.Popen(
        [sys.executable, "-m", "kplan", "apply", "-auto-approve", "-var", "who=alice"],
        cwd=alice,
        env={**_clean_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until alice holds the lock (her first change has started).
        assert first.stdout is not None
        for line in first.stdout:
            if "Creating..." in line:
                break
        refused = run_kplan(bob, "apply", "-auto-approve", "-var", "who=bob", env=env)
        assert refused.returncode == 1
        assert "state is locked" in refused.stderr.lower() and "apply" in refused.stderr
        waited = run_kplan(
            bob, "apply", "-auto-approve", "-lock-timeout", "60s", "-var", "who=bob", env=env
        )
        assert waited.returncode == 0, waited.stderr
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    # Bob planned after Alice's apply finished: he changed her triggers, kept her sleep.
    shown = run_kplan(bob, "state", "show", 'null_resource.mark["alice"]', env=env).stdout
    assert "bob" in shown
    history = run_kplan(alice, "state", "history", env=env, check=True).stdout
    assert history.count("success") == 2 and "failed" not in history
    listed = run_kplan(alice, "state", "list", env=env, check=True).stdout.split()
    assert listed == ['null_resource.mark["alice"]', 'null_resource.mark["bob"]', "time_sleep.slow"]
    assert pg_server.password not in refused.stderr + waited.stdout + waited.stderr


STATE_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KPLAN_")} | {"NO_COLOR": "1"}
