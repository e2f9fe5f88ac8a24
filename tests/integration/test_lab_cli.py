"""``kplan lab`` refuses clearly, without a traceback, when it cannot work."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kplan.cli.lab import app


@pytest.mark.parametrize("command", ["up", "down", "images"])
def test_not_root_says_so_and_exits_1(monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(app, [command, "--name", "kplannoroot"])
    assert result.exit_code == 1
    assert f"kplan lab {command} needs root" in result.output
    assert "Traceback" not in result.output


def test_status_of_a_lab_that_is_not_up_exits_1() -> None:
    result = CliRunner().invoke(app, ["status", "--name", "kplannever"])
    assert result.exit_code == 1
    assert "Lab kplannever is not up." in result.output


def test_bad_name_and_subnet_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from kplan.lab import lifecycle

    monkeypatch.setattr(lifecycle, "ensure_packages", lambda echo: [])
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = CliRunner().invoke(app, ["up", "--name", "Bad_Name"])
    assert result.exit_code == 1
    assert "invalid lab name" in result.output
    result = CliRunner().invoke(app, ["up", "--name", "kplanbad", "--subnet", "10.231.9.1/24"])
    assert result.exit_code == 1
    assert "invalid subnet" in result.output
