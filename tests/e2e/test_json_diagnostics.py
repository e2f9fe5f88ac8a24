"""Under -json, diagnostics are JSON in Terraform's shape, so CI tools can annotate lines.

``validate -json`` prints terraform validate -json's document on standard output;
``plan -json`` and ``apply -json`` write each diagnostic to standard error as one
line of Terraform's machine-readable UI (``"type": "diagnostic"``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import run_kplan

BROKEN_YAML = """\
resources:
  local_file.a:
    path: out/a.txt
    content: [1, 2
"""

UNDECLARED = """\
variables:
  release: {type: string, default: zed}
resources:
  local_file.a:
    path: out/a.txt
    content: ${var.relase}
"""


def _module(tmp_path: Path, text: str) -> Path:
    root = tmp_path / "mod"
    root.mkdir()
    (root / "main.kp.yaml").write_text(text)
    return root


def _stderr_diagnostics(stderr: str) -> list[dict[str, Any]]:
    """Every line of standard error is a JSON object; the diagnostics among them."""
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all(m["type"] == "diagnostic" and m["@module"] == "kplan.ui" for m in lines), lines
    for m in lines:
        assert m["@level"] == m["diagnostic"]["severity"]
        assert m["@message"].startswith(("Error: ", "Warning: "))
    return [m["diagnostic"] for m in lines]


def _check_range(root: Path, diag: dict[str, Any], line: int, token: str) -> None:
    rng = diag["range"]
    assert rng["filename"] == "main.kp.yaml"
    assert rng["start"]["line"] == line
    data = (root / rng["filename"]).read_bytes()
    # byte counts from 0 into the file, column from 1 in the line: both point at token.
    assert data[rng["start"]["byte"] : rng["end"]["byte"]].decode() == token
    text = data.decode().splitlines()[line - 1]
    assert text[rng["start"]["column"] - 1 :].startswith(token)
    assert diag["snippet"]["code"] == text
    assert diag["snippet"]["start_line"] == line


def test_validate_json_load_error(tmp_path: Path) -> None:
    root = _module(tmp_path, BROKEN_YAML)
    proc = run_kplan(root, "validate", "-json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert list(doc) == ["format_version", "valid", "error_count", "warning_count", "diagnostics"]
    assert doc["format_version"] == "1.0" and doc["valid"] is False
    assert doc["error_count"] == 1 and doc["warning_count"] == 0
    (diag,) = doc["diagnostics"]
    assert diag["severity"] == "error" and "YAML" in diag["summary"]
    assert diag["range"]["filename"] == "main.kp.yaml"
    assert diag["range"]["start"]["line"] >= 4
    assert proc.stderr == ""

    # plan -json: nothing on standard output, the diagnostic as a JSON line on stderr.
    proc = run_kplan(root, "plan", "-json")
    assert proc.returncode == 1 and proc.stdout == ""
    (diag,) = _stderr_diagnostics(proc.stderr)
    assert "YAML" in diag["summary"] and diag["range"]["filename"] == "main.kp.yaml"


def test_validate_json_validation_error_and_success(tmp_path: Path) -> None:
    root = _module(tmp_path, UNDECLARED)
    proc = run_kplan(root, "validate", "-json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and doc["error_count"] == 1
    (diag,) = doc["diagnostics"]
    assert "relase" in diag["summary"] and diag["code"]
    _check_range(root, diag, 6, "${var.relase}")

    proc = run_kplan(root, "plan", "-json")
    assert proc.returncode == 1 and proc.stdout == ""
    (diag,) = _stderr_diagnostics(proc.stderr)
    _check_range(root, diag, 6, "${var.relase}")

    (root / "main.kp.yaml").write_text(UNDECLARED.replace("relase", "release"))
    proc = run_kplan(root, "validate", "-json", check=True)
    assert json.loads(proc.stdout) == {
        "format_version": "1.0",
        "valid": True,
        "error_count": 0,
        "warning_count": 0,
        "diagnostics": [],
    }


def test_apply_json_runtime_error(module_copy) -> None:
    root = module_copy("tests/fixtures/e2e/failing")
    (root / "blocker").write_text("a file where a folder should be\n")
    proc = run_kplan(root, "apply", "-auto-approve", "-json")
    assert proc.returncode == 1
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1]["type"] == "apply_failed"
    assert events[-1]["failed"] == ["local_file.bad"]
    diags = _stderr_diagnostics(proc.stderr)
    assert diags and all(d["severity"] == "error" for d in diags)
    assert any("blocker/file.txt" in d["summary"] for d in diags), diags
