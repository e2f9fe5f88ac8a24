"""kplan.config.shapes: the blocks' strict checker, without pydantic."""

from __future__ import annotations

import subprocess
import sys

from kplan.config import shapes
from kplan.diagnostics import Diagnostics, SourcePos


def _check(model: type[shapes.Block], data: object) -> tuple[object, list[str]]:
    diags = Diagnostics()
    where = shapes.Where("blk", SourcePos("f", 1, 1), {}, {})
    block = shapes.check(model, data, where, diags)
    return block, [d.summary for d in diags]


def test_a_checked_block_has_its_defaults_and_fresh_lists() -> None:
    one, problems = _check(shapes.HostBlock, {"address": "10.0.0.1"})
    two, _ = _check(shapes.HostBlock, {"address": "10.0.0.2"})
    assert problems == []
    assert isinstance(one, shapes.HostBlock) and isinstance(two, shapes.HostBlock)
    assert (one.port, one.connection, one.groups, one.vars) == (22, "ssh", [], {})
    one.groups.append("web")
    assert two.groups == []  # each block its own list, as with pydantic's copies


def test_strict_types_refuse_what_yaml_would_coerce() -> None:
    _, problems = _check(
        shapes.HostBlock, {"port": True, "user": 3, "groups": "web", "connection": "winrm"}
    )
    assert problems == [
        'blk.groups: expected a list, got string "web"',
        "blk.connection: expected 'ssh' or 'local', got string \"winrm\"",
        "blk.user: expected a string, got number 3",
        "blk.port: expected a whole number, got bool true",
    ]


def test_nested_blocks_unknown_keys_and_the_backend_extras() -> None:
    _, problems = _check(shapes.LifecycleBlock, {"rolling": {"serail": 2}, "restart": []})
    assert problems == [
        "blk.rolling.serial: required attribute is missing",
        'blk.rolling.serail: unknown attribute; did you mean "serial"? expected one of: serial',
        'blk.restart: unknown attribute; did you mean "restart_on"? expected one of: '
        "ignore_changes, prevent_destroy, replace_on, restart_on, rolling",
    ]
    rolling, _ = _check(shapes.RollingBlock, {"serial": " 30 % "})
    assert isinstance(rolling, shapes.RollingBlock) and rolling.as_dict() == {"serial": "30%"}
    settings, problems = _check(
        shapes.SettingsBlock, {"backend": {"type": "postgresql", "url": "postgresql://db/k"}}
    )
    assert problems == [] and isinstance(settings, shapes.SettingsBlock)
    assert settings.backend is not None
    assert settings.backend.as_dict() == {"type": "postgresql", "url": "postgresql://db/k"}
    # Only fields are attributes: not the class's own names, nor where extras are kept.
    _, problems = _check(shapes.HostBlock, {"EXTRA": True, "extra": {}})
    assert [p.split(";")[0] for p in problems] == [
        "blk.EXTRA: unknown attribute",
        "blk.extra: unknown attribute",
    ]
    _, problems = _check(shapes.ModuleBlock, {"source": "./m", "inputs": {1: "x"}})
    assert problems == ["blk.inputs[1]: expected a string key, got number 1"]


def test_a_command_starts_without_importing_pydantic() -> None:
    # pydantic and its models took 0.1 s of every command's start: neither the
    # checker nor the CLI (typer < 0.29) may bring it back.
    code = (
        "import sys; from kplan.cli.main import run_command; run_command(['validate', '-h']); "
        "print('pydantic' in sys.modules, file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "Usage:" in out.stdout
    assert out.stderr.strip() == "False"
