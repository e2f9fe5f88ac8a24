"""Moving a root module's state to PostgreSQL and back through the CLI."""

from __future__ import annotations

import shutil
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
