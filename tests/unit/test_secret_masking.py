"""Secrets never reach a diagnostic: the provider guard and the JSON diagnostics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kplan.cli.json_diagnostics import diagnostic_json
from kplan.diagnostics import Diagnostic, KplanError, SourcePos
from kplan.plugins import GuardedProvider
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    Attribute,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
)
from kplan.values import Secret


class Leaky(Provider):
    """Puts the revealed password into the exception it raises, in some form."""

    name = "leaky"

    def __init__(self, how: str) -> None:
        self.how = how

    def schema(self) -> ProviderSchema:
        attrs = {"password": Attribute("string", optional=True, sensitive=True)}
        return ProviderSchema({"leaky_thing": ResourceSchema("leaky_thing", attrs)})

    def read(self, req: ReadRequest) -> ReadResponse:
        return ReadResponse({})

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        pw = req.planned["password"].reveal() if req.planned else ""
        if self.how == "repr":
            raise ValueError(f"bad value {pw!r}")
        if self.how == "kplan":
            raise KplanError(f"could not set {pw}")
        raise ValueError(f"first line was {pw.splitlines()[0]}")


@pytest.mark.parametrize(
    ("how", "password"),
    [
        ("repr", "line1-secret\nline2-secret"),  # repr() escapes the newline
        ("kplan", "hunter2hunter2"),  # a KplanError from the provider itself
        ("line", "first-secret-line\nsecond"),  # one line of a multi-line secret
    ],
)
def test_the_guard_masks_a_secret_in_any_form(how: str, password: str) -> None:
    guarded = GuardedProvider(Leaky(how))
    req = ApplyRequest(
        "leaky_thing", "leaky_thing.x", None, "create", None, {"password": Secret(password)}
    )
    resp = guarded.apply(req)
    text = " ".join(f"{d.summary} {d.detail}" for d in resp.diagnostics)
    assert resp.diagnostics and "(sensitive)" in text
    assert "secret" not in text and "hunter2" not in text


def test_json_diagnostics_quote_no_line_of_a_variable_file(tmp_path: Path) -> None:
    values = tmp_path / "prod.vars.yaml"
    values.write_text("db_password: hunter2-very-secret\n")
    module = tmp_path / "main.kp.yaml"
    module.write_text("variables:\n  db_password: {type: number, sensitive: true}\n")
    in_values = diagnostic_json(
        Diagnostic.error("invalid value for db_password", "", SourcePos(str(values), 1, 14))
    )
    assert "hunter2" not in json.dumps(in_values)
    assert in_values["range"]["start"]["line"] == 1  # still placed for annotations
    in_module = diagnostic_json(Diagnostic.error("bad", "", SourcePos(str(module), 2, 3)))
    assert in_module["snippet"]["code"] == "  db_password: {type: number, sensitive: true}"
