"""examples/openstack-aio with a kolla-ansible style config/ folder, through the CLI.

A plan from an empty state contacts no host (nothing is recorded to refresh), so
the example is planned against a made-up inventory: keystone.conf in config/
changes a key and the plan names that file; a misnamed file is reported.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.e2e.conftest import REPO, run_kplan

INVENTORY = """\
hosts:
  aio: {address: 127.0.0.1, port: 1, vars: {registry: "127.0.0.1:5000"}}
"""
NOTE = "  # content: [token] expiration from config/keystone.conf"
WARNING = "Warning: override file config/keystone/keystone-api.conf is not read by any config"
HINT = "did you mean config/keystone/keystone.conf?"


def _aio(tmp_path: Path) -> Path:
    root = tmp_path / "aio"
    shutil.copytree(REPO / "examples/openstack-aio", root)
    (root / "inventory.kp.yaml").write_text(INVENTORY)
    (root / "config/keystone").mkdir(parents=True)
    (root / "config/keystone.conf").write_text("[token]\nexpiration = 3600\n")
    (root / "config/keystone/keystone-api.conf").write_text("[DEFAULT]\ndebug = True\n")
    run_kplan(root, "init", check=True)
    return root


def _block(text: str, address: str) -> list[str]:
    """The lines of one resource's block in a text plan."""
    lines = text.splitlines()
    start = lines.index(f"  # {address} will be created")
    end = lines.index("    }", start)
    return lines[start : end + 1]


def test_the_plan_names_the_override_and_warns_of_a_misnamed_file(tmp_path: Path) -> None:
    root = _aio(tmp_path)
    proc = run_kplan(root, "plan", "-out", "aio.plan", check=True)
    block = _block(proc.stdout, 'module.keystone.host_file.keystone_conf["aio"]')
    assert NOTE in block
    other = _block(proc.stdout, 'module.glance.host_file.glance_api_conf["aio"]')
    assert not any("from config/" in line for line in other)
    assert WARNING in proc.stderr and HINT in proc.stderr

    # The saved plan shows the same lines; kplan show renders it from the file.
    shown = run_kplan(root, "show", "aio.plan", check=True).stdout
    assert NOTE in _block(shown, 'module.keystone.host_file.keystone_conf["aio"]')

    # The JSON plan: a source reason on the file; the warning as a JSON diagnostic.
    proc = run_kplan(root, "plan", "-json", check=True)
    plan = json.loads(proc.stdout)
    change = next(
        rc
        for rc in plan["resource_changes"]
        if rc["address"] == 'module.keystone.host_file.keystone_conf["aio"]'
    )
    assert {
        "kind": "source",
        "message": "[token] expiration from config/keystone.conf",
        "path": ["content"],
    } in change["reasons"]
    diags = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    codes = [d["diagnostic"]["code"] for d in diags if d.get("type") == "diagnostic"]
    assert codes == ["unused-override"]


def test_without_a_config_folder_nothing_is_merged_or_warned(tmp_path: Path) -> None:
    root = _aio(tmp_path)
    shutil.rmtree(root / "config")
    proc = run_kplan(root, "plan", check=True)
    assert "from config/" not in proc.stdout
    assert "Warning" not in proc.stderr


def test_a_snippet_that_is_not_ini_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    root = _aio(tmp_path)
    (root / "config/keystone/keystone-api.conf").unlink()
    (root / "config/galera.cnf").write_text("[mysqld]\nmax_connections = 10\n[broken\n")
    proc = run_kplan(root, "plan")
    assert proc.returncode == 1
    assert "config/galera.cnf:3: a section header must end with ]" in proc.stderr
