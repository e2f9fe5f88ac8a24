"""Each catalog module's README documents exactly its inputs and outputs, with their defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.parent.name for p in (REPO / "modules").glob("*/main.kp.yaml"))


def _table(readme: str, heading: str) -> dict[str, list[str]]:
    """The rows of the table under ``## HEADING``: first cell (unquoted) -> the other cells."""
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        m = re.fullmatch(r"`([a-z_0-9]+)`", cells[0]) if line.startswith("|") else None
        if m:
            rows[m.group(1)] = cells[1:]
    return rows


def _shown(default: Any) -> str:
    if default is None:
        return "null"
    if isinstance(default, list | dict):
        return f"`{yaml.safe_dump(default, default_flow_style=True).strip()}`"
    return f"`{default}`"


def test_the_catalog_has_modules() -> None:
    assert {"mariadb", "memcached", "keystone", "loadbalancer", "glance", "placement"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_readme_matches_the_module(name: str) -> None:
    module = yaml.safe_load((REPO / "modules" / name / "main.kp.yaml").read_text())
    readme = (REPO / "modules" / name / "README.md").read_text()
    assert readme.startswith(f"# kplan/{name}\n")
    variables = module.get("variables", {})
    inputs = _table(readme, "Inputs")
    assert list(inputs) == list(variables), "the Inputs table lists the variables, in order"
    for var, spec in variables.items():
        assert spec.get("description"), f"variable {var} has no description"
        kind, default = inputs[var][0], inputs[var][1]
        assert kind == spec["type"].split("(")[0] or kind == spec["type"], var
        assert default == ("(required)" if "default" not in spec else _shown(spec["default"])), var
    outputs = _table(readme, "Outputs")
    assert list(outputs) == list(module.get("outputs", {})), "the Outputs table lists the outputs"
    for out, spec in module["outputs"].items():
        assert isinstance(spec, dict) and spec.get("description"), (
            f"output {out} has no description"
        )
    assert "## What restarts what" in readme
