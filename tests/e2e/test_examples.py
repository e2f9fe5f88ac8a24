"""Every example under examples/ works as written: validate, plan, apply, no changes, destroy."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import REPO, run_kplan

# Examples that deploy onto lab hosts run in a test under tests/integration
# that brings the lab up for them.
ON_LAB = {
    "lab": "test_lab_example.py",
    "openstack": "test_openstack.py",
    "openstack-aio": "test_openstack_aio.py",
}
EXAMPLES = sorted(
    p.name
    for p in (REPO / "examples").iterdir()
    if p.is_dir() and any(p.glob("*.kp.yaml")) and p.name not in ON_LAB
)


def test_lab_examples_have_their_own_test() -> None:
    for name, test in ON_LAB.items():
        assert (REPO / "examples" / name).is_dir()
        text = (REPO / "tests/integration" / test).read_text()
        deploys = f'"examples/{name}"' in text or re.search(rf'copy_example\(\w+, "{name}"', text)
        assert deploys, f"{test} does not deploy examples/{name}"


def test_there_are_examples() -> None:
    assert "quickstart" in EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_round_trip(name: str, module_copy) -> None:
    root = module_copy(f"examples/{name}")
    run_kplan(root, "init", check=True)
    run_kplan(root, "validate", check=True)
    assert run_kplan(root, "fmt", "-check", ".").returncode == 0, "examples are fmt-clean"
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 2
    run_kplan(root, "apply", "-auto-approve", check=True)
    assert run_kplan(root, "plan", "-detailed-exitcode").returncode == 0
    run_kplan(root, "destroy", "-auto-approve", check=True)
    assert run_kplan(root, "state", "list", check=True).stdout == ""


def test_catalog_modules_are_fmt_clean() -> None:
    # The catalog is read as much as the examples: it keeps the canonical format too.
    folders = sorted(p.parent.name for p in (REPO / "modules").glob("*/main.kp.yaml"))
    assert "keystone" in folders
    proc = run_kplan(REPO / "modules", "fmt", "-check", *folders)
    assert proc.returncode == 0, proc.stdout + proc.stderr
