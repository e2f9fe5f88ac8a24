"""Golden tests for the plan renderers: text, JSON and Markdown, byte for byte.

Each folder under tests/golden/plans/<case>/ holds ``plan.py`` (``build() ->
Plan``; an optional ``MARKDOWN_MAX_CHARS``) and the expected renderings
``expected.txt``, ``expected.json`` and ``expected.md``.

To rewrite the expected files after an intended change, run:

    KPLAN_UPDATE_GOLDENS=1 pytest tests/unit/test_render_golden.py

and review the diff (``git diff tests/golden``) before committing.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from kplan import forked
from kplan.plan.model import Plan, ResourceChange
from kplan.plan.render_json import render_plan_json
from kplan.plan.render_markdown import render_plan_markdown
from kplan.plan.render_text import render_plan_text
from kplan.values import Secret, iter_paths, reveal

UPDATE = os.environ.get("KPLAN_UPDATE_GOLDENS") == "1"
CASES_DIR = Path(__file__).resolve().parents[1] / "golden" / "plans"
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "plan.py").is_file())


def load_case(name: str) -> ModuleType:
    path = CASES_DIR / name / "plan.py"
    spec = importlib.util.spec_from_file_location(f"golden_plan_{name.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(name: str) -> Plan:
    plan = load_case(name).build()
    assert isinstance(plan, Plan)
    return plan


def _leaves(value: Any) -> list[str]:
    return [str(v) for _, v in iter_paths(reveal(value)) if isinstance(v, str | int)]


def secret_texts(plan: Plan) -> set[str]:
    """Every raw value the plan holds as sensitive (secrets and sensitive outputs)."""
    found: set[str] = set()

    def scan(value: Any) -> None:
        for _, leaf in iter_paths(value):
            if isinstance(leaf, Secret):
                found.update(_leaves(leaf.reveal()))

    changes: list[ResourceChange] = [*plan.changes, *plan.drift]
    for c in changes:
        scan(c.before)
        scan(c.after)
    for o in plan.outputs:
        scan(o.before)
        scan(o.after)
        if o.sensitive:
            found.update(_leaves(o.before) + _leaves(o.after))
    scan(dict(plan.variables))
    return {s for s in found if len(s) >= 4}


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "plan-json.schema.json"


def _markdown(name: str) -> Callable[[Plan], str]:
    limit = getattr(load_case(name), "MARKDOWN_MAX_CHARS", 65000)
    return lambda plan: render_plan_markdown(plan, max_chars=limit)


def _renderers(name: str) -> dict[str, Callable[[Plan], str]]:
    return {
        "expected.txt": render_plan_text,
        "expected.json": render_plan_json,
        "expected.md": _markdown(name),
    }


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("filename", ["expected.txt", "expected.json", "expected.md"])
def test_golden(name: str, filename: str) -> None:
    got = _renderers(name)[filename](build(name))
    path = CASES_DIR / name / filename
    if UPDATE:
        path.write_text(got, encoding="utf-8")
    assert path.is_file(), f"missing {path}; run with KPLAN_UPDATE_GOLDENS=1 to create it"
    assert got == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_golden_json_matches_schema(name: str) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    doc = json.loads((CASES_DIR / name / "expected.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(doc)


@pytest.mark.parametrize("name", CASES)
def test_no_secret_in_any_output(name: str) -> None:
    plan = build(name)
    secrets = secret_texts(plan)
    for render in _renderers(name).values():
        text = render(plan)
        for secret in secrets:
            assert secret not in text


def test_cases_do_hold_secrets() -> None:
    # The leak test above means something only if some cases carry secrets.
    assert {"s3cr3t-db-pw", "new-admin-pw", "db-pw-raw"} <= set().union(
        *(secret_texts(build(n)) for n in CASES)
    )


@pytest.mark.parametrize("name", CASES)
def test_rendering_is_deterministic(name: str) -> None:
    for render in _renderers(name).values():
        assert render(build(name)) == render(build(name))


@pytest.mark.parametrize("name", CASES)
def test_golden_with_half_the_text_made_by_a_forked_child(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large plan's text is half made by a child process (kplan.forked):
    forced here on every case, the bytes are the same."""
    monkeypatch.setattr(forked, "FORK_ABOVE", 0)
    monkeypatch.setattr(forked, "_can_fork", lambda: True)
    forks: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    got = render_plan_text(build(name))
    assert got == (CASES_DIR / name / "expected.txt").read_text(encoding="utf-8")
    plan = build(name)
    if [c for c in plan.changes if c.action.is_change]:
        assert len(forks) == 1, "the renderer should have forked a child"
