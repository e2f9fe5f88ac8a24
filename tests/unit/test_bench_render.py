"""benchmarks/render.py runs, and prints digests showing a faster renderer gives the same bytes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(workdir: Path) -> dict[str, str]:
    argv = [sys.executable, "-m", "benchmarks.render", "--hosts", "2", "--services", "2"]
    argv += ["--repeat", "1", "--workdir", str(workdir)]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.startswith("16 resources, median of 1\n")
    steps = dict(re.findall(r"^  (\w+) +[\d.]+ s +sha256 (\S+)$", out, re.M))
    assert list(steps) == ["plan", "text", "json"]
    return steps


def test_render_benchmark_prints_each_step_and_the_same_digests_each_run(tmp_path: Path) -> None:
    # The same workdir: the state's lineage, which the JSON plan carries, is its own.
    first, second = _run(tmp_path), _run(tmp_path)
    assert first["plan"] == "-" and re.fullmatch(r"[0-9a-f]{16}", first["text"])
    assert first == second  # a plan renders to the same bytes in every process
