"""Variable values: precedence, conversion from text, var files, sensitive values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kplan.config.model import MISSING, Variable
from kplan.config.variables import resolve_variables
from kplan.diagnostics import SourcePos
from kplan.values import Secret

POS = SourcePos("main.kp.yaml", 1, 1)


def var(name: str, type_: str = "any", default: Any = MISSING, sensitive: bool = False) -> Variable:
    return Variable(name, type_, default, "", sensitive, (), POS)


VARS = {
    "release": var("release", "string", "zed"),
    "ports": var("ports", "list(number)", [80]),
    "enabled": var("enabled", "bool", False),
    "count": var("count", "number", 1),
    "tags": var("tags", "map(string)", {}),
    "extra": var("extra", "any", None),
}


def test_defaults_only() -> None:
    values, diags = resolve_variables(VARS, cli_args=[], environ={})
    assert not diags.items
    assert values == {
        "release": "zed",
        "ports": [80],
        "enabled": False,
        "count": 1,
        "tags": {},
        "extra": None,
    }


def test_precedence_env_then_files_and_vars_in_order(tmp_path: Path) -> None:
    f1 = tmp_path / "one.yaml"
    f1.write_text("release: yoga\nports: [1, 2]\n")
    f2 = tmp_path / "two.yaml"
    f2.write_text("release: antelope\n")
    values, diags = resolve_variables(
        VARS,
        cli_args=[
            ("var", "release=from-cli"),
            ("var-file", str(f1)),
            ("var", "count=3"),
            ("var-file", str(f2)),
        ],
        environ={
            "KPLAN_VAR_release": "from-env",
            "KPLAN_VAR_count": "2",
            "KPLAN_VAR_enabled": "true",
        },
    )
    assert not diags.items
    assert values["release"] == "antelope"  # the last one given wins
    assert values["ports"] == [1, 2]
    assert values["count"] == 3  # -var after the env
    assert values["enabled"] is True  # from the environment, converted


def test_text_values_are_parsed_for_their_type() -> None:
    values, diags = resolve_variables(
        VARS,
        cli_args=[
            ("var", "ports=[8080, '9090']"),
            ("var", "enabled=true"),
            ("var", "tags={a: 1, b: x}"),
            ("var", "release=[not, a, list]"),
            ("var", "extra={k: v}"),
            ("var", "count=4.5"),
        ],
        environ={},
    )
    assert not diags.items, [str(d) for d in diags]
    assert values["ports"] == [8080, 9090]
    assert values["enabled"] is True
    assert values["tags"] == {"a": "1", "b": "x"}
    assert values["release"] == "[not, a, list]"  # a string variable takes the text as is
    assert values["extra"] == {"k": "v"}
    assert values["count"] == 4.5


def test_any_keeps_plain_text() -> None:
    values, _ = resolve_variables(VARS, cli_args=[("var", "extra=yes")], environ={})
    assert values["extra"] == "yes"


def test_missing_required_variable_says_how_to_set_it() -> None:
    values, diags = resolve_variables({"password": var("password", "string")}, environ={})
    (d,) = diags
    assert d.code == "missing-variable" and d.pos == POS
    assert d.summary == "no value for the required variable 'password'"
    assert "-var password=VALUE" in d.detail
    assert "-var-file" in d.detail and "KPLAN_VAR_password" in d.detail
    assert "password" not in values


def test_undeclared_names(tmp_path: Path) -> None:
    vf = tmp_path / "v.yaml"
    vf.write_text("release: x\nnope: 1\n")
    values, diags = resolve_variables(
        VARS,
        cli_args=[("var", "bogus=1"), ("var-file", str(vf))],
        environ={"KPLAN_VAR_other": "1"},
    )
    assert [(d.severity.value, d.code) for d in diags] == [
        ("error", "undeclared-variable"),
        ("warning", "undeclared-variable"),
    ]
    assert diags.items[0].summary == "-var bogus: the root module declares no variable 'bogus'"
    assert diags.items[1].pos == SourcePos(str(vf), 2, 1)
    assert values["release"] == "x"


def test_wrong_type_errors_name_their_source(tmp_path: Path) -> None:
    vf = tmp_path / "v.yaml"
    vf.write_text("ports:\n  - 1\n  - many\n")
    _, diags = resolve_variables(
        VARS,
        cli_args=[("var-file", str(vf)), ("var", "enabled=maybe"), ("var", "ports=[1, 2")],
        environ={"KPLAN_VAR_count": "lots"},
    )
    got = [(str(d.pos) if d.pos else None, d.summary, d.detail) for d in diags]
    assert got[0] == (
        None,
        "invalid value for variable 'count' from the environment variable KPLAN_VAR_count",
        'var.count: expected number, got string "lots"',
    )
    assert got[1] == (
        f"{vf}:2:3",
        f"invalid value for variable 'ports' from {vf}",
        'var.ports[1]: expected number, got string "many"',
    )
    assert got[2][1] == "invalid value for variable 'enabled' from -var enabled"
    assert got[3][1] == "invalid value for variable 'ports' from -var ports"
    assert "written as YAML flow" in got[3][2]


def test_var_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    _, diags = resolve_variables(
        VARS,
        cli_args=[
            ("var-file", str(bad)),
            ("var-file", str(listy)),
            ("var-file", str(tmp_path / "missing.yaml")),
            ("var", "novalue"),
        ],
        environ={},
    )
    assert [d.code for d in diags] == [
        "yaml-syntax",
        "invalid-var-file",
        "file-unreadable",
        "invalid-var-option",
    ]
    assert str(diags.items[0].pos) == f"{bad}:2:1"


def test_sensitive_values_are_wrapped() -> None:
    variables = {"pw": var("pw", "string", sensitive=True), "n": var("n", "number", 1, True)}
    values, diags = resolve_variables(
        variables, cli_args=[("var", "pw=hunter2")], environ={"KPLAN_VAR_n": "5"}
    )
    assert not diags.items
    assert isinstance(values["pw"], Secret) and values["pw"].reveal() == "hunter2"
    assert values["n"] == Secret(5)
    assert "hunter2" not in repr(values)


def test_sensitive_value_errors_do_not_show_it() -> None:
    variables = {"n": var("n", "number", sensitive=True)}
    _, diags = resolve_variables(variables, cli_args=[("var", "n=s3cr3t")], environ={})
    assert diags.has_errors
    assert diags.items[0].detail == "var.n: expected number, got string"
    assert "s3cr3t" not in str(diags.items[0])


@pytest.mark.parametrize("environ", [None])
def test_environ_defaults_to_os_environ(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str] | None
) -> None:
    monkeypatch.setenv("KPLAN_VAR_release", "from-os")
    values, _ = resolve_variables(VARS, environ=environ)
    assert values["release"] == "from-os"
