"""kplan from its wheel: installed names, migrations and catalogs without a checkout.

Runs scripts/wheel_check.py (≈20 s: builds the wheel, installs it with
--no-deps into a fresh venv, runs ``kplan init`` and ``kplan plan`` outside
the repository, resolves ``source: kplan/NAME`` in the shipped catalog's
place and in a third-party catalog installed as a distribution, and checks
that every installed top-level name is kplan's own).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_kplan_works_from_its_wheel() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "wheel_check.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "wheel check passed" in proc.stdout
