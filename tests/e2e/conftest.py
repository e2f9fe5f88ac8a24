"""Run the real kplan command in a subprocess, in a copy of a module folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

Kplan = Callable[..., subprocess.CompletedProcess[str]]


def run_kplan(
    cwd: Path,
    *args: str,
    input: str | None = None,
    check: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KPLAN_")}
    # A kplan server the developer runs is not the one under test (tests/e2e/test_server.py).
    full_env["KPLAN_SERVER"] = "off"
    full_env.update(env or {})
    full_env["NO_COLOR"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "kplan", *args],
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kplan {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def plan_changes(cwd: Path) -> dict[str, list[str]]:
    """Address → actions of every change ``kplan plan -json`` plans (no-ops left out)."""
    import json

    plan = json.loads(run_kplan(cwd, "plan", "-json", check=True).stdout)
    return {
        rc["address"]: rc["change"]["actions"]
        for rc in plan["resource_changes"]
        if rc["change"]["actions"] != ["no-op"]
    }


@pytest.fixture
def module_copy(tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str) -> Path:
        src = REPO / name
        dst = tmp_path / Path(name).name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".kplan", "out", "*.plan"))
        return dst

    return copy
