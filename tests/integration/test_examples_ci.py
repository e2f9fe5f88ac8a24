"""examples/ci: the GitHub Actions workflow's commands work as written, against PostgreSQL.

The workflow file is read, not restated: each job's steps run in order, each job in
its own fresh copy of the example (a runner's checkout). A ``run:`` step that calls
kplan runs as GitHub runs it (``bash --noprofile --norc -eo pipefail``) with the
workflow's environment, where ``${{ secrets.X }}`` and ``${{ vars.X }}`` take this
test's values. Artifacts move between the jobs' folders by the names and paths the
workflow gives. What needs GitHub itself (installing kplan from PyPI, the API calls
that find the pull request's run, posting the comment) is not run: the test checks
those steps are only that, so a new kplan step cannot hide among them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kplan.state.crypto import generate_key
from kplan.state.store import StateStore
from tests.e2e.conftest import REPO
from tests.integration.conftest import PgServer

EXAMPLE = REPO / "examples" / "ci"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "kplan.yml"
_EXPR = re.compile(r"\$\{\{\s*(secrets|vars)\.([A-Za-z0-9_]+)\s*\}\}")


def load_workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _is_kplan_step(script: str) -> bool:
    return any(line.strip().startswith("kplan ") for line in script.splitlines())


def _is_github_only(script: str) -> bool:
    """Installing kplan, or a step that talks to GitHub's API (gh)."""
    first = script.strip().split()[0]
    return first == "pip" or bool(re.search(r"(^|[\s$(])gh ", script))


@dataclass
class Runner:
    """Runs the jobs of the workflow; ``artifacts`` is the run's artifact storage."""

    tmp: Path
    secrets: Mapping[str, str]
    variables: Mapping[str, str]
    artifacts: dict[str, Path] = field(default_factory=dict)
    count: int = 0

    def _expand(self, text: str, where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            table = self.secrets if m[1] == "secrets" else self.variables
            assert m[2] in table, f"{where}: no test value for {m[0]}"
            return table[m[2]]

        out = _EXPR.sub(sub, str(text))
        assert "${{" not in out, f"{where}: an expression a kplan step cannot get: {out}"
        return out

    def _env(self, *layers: Mapping[str, Any] | None, where: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPLAN_")}
        bindir = self.tmp / "bin"
        if not bindir.is_dir():  # `kplan` as on the runner: the real one, this interpreter's
            bindir.mkdir()
            shim = bindir / "kplan"
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kplan "$@"\n')
            shim.chmod(0o755)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        for layer in layers:
            for key, value in (layer or {}).items():
                env[key] = self._expand(value, f"{where} env {key}")
        return env

    def run_job(self, name: str) -> tuple[Path, list[subprocess.CompletedProcess[str]]]:
        """Run job ``name`` in a fresh checkout; stops at the first failing step."""
        wf = load_workflow()
        job = wf["jobs"][name]
        self.count += 1
        work = self.tmp / f"{name}-{self.count}"
        done: list[subprocess.CompletedProcess[str]] = []
        for i, step in enumerate(job["steps"]):
            where = f"jobs.{name}.steps[{i}] ({step.get('name') or step.get('uses')})"
            if "uses" in step:
                self._uses(step, work, where)
                continue
            script = step["run"]
            if not _is_kplan_step(script):
                assert _is_github_only(script), f"{where}: the test does not know this step"
                continue
            env = self._env(wf.get("env"), job.get("env"), step.get("env"), where=where)
            proc = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                cwd=work / step.get("working-directory", "."),
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
            )
            done.append(proc)
            if proc.returncode != 0:
                break
        return work, done

    def _uses(self, step: Mapping[str, Any], work: Path, where: str) -> None:
        action = step["uses"].split("@")[0]
        args = step.get("with", {})
        if action == "actions/checkout":
            shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns(".kplan", "out"))
        elif action == "actions/setup-python":
            assert str(args["python-version"]) == f"{sys.version_info[0]}.{sys.version_info[1]}"
        elif action == "actions/upload-artifact":
            src = work / args["path"]
            assert src.is_file(), f"{where}: nothing to upload at {args['path']}"
            stored = self.tmp / "artifacts" / args["name"]
            stored.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, stored / src.name)
            self.artifacts[args["name"]] = stored
        elif action == "actions/download-artifact":
            stored = self.artifacts[args["name"]]
            dest = work / args.get("path", ".")
            for f in stored.iterdir():
                shutil.copy2(f, dest / f.name)
        else:
            raise AssertionError(f"{where}: the test does not know the action {action}")


def _runner(tmp_path: Path, pg_server: PgServer, pg_url: str) -> Runner:
    return Runner(
        tmp_path,
        secrets={"KPLAN_PG_PASSWORD": pg_server.password, "KPLAN_STATE_KEY": generate_key()},
        variables={"KPLAN_PG_URL": pg_url},
    )


def _ok(done: list[subprocess.CompletedProcess[str]]) -> None:
    for proc in done:
        assert proc.returncode == 0, f"{proc.args[-1]}\n{proc.stdout}\n{proc.stderr}"


def _kplan(runner: Runner, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = runner._env(load_workflow().get("env"), where="test")
    return subprocess.run(
        ["kplan", *args], cwd=work, env=env, capture_output=True, text=True, timeout=180
    )


def test_the_workflow_has_the_shape_the_readme_describes() -> None:
    wf = load_workflow()
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(on) == {"pull_request", "push"}
    plan, apply = wf["jobs"]["plan"], wf["jobs"]["apply"]
    assert "pull_request" in plan["if"] and "push" in apply["if"]
    runs = [s["run"] for s in plan["steps"] if "run" in s]
    assert any("kplan plan" in r and "-out plan.kplan" in r for r in runs)
    assert any("kplan show -markdown plan.kplan" in r for r in runs)
    assert any("gh pr comment" in r for r in runs)
    assert any(
        "kplan apply" in s.get("run", "") and "plan.kplan" in s["run"] for s in apply["steps"]
    )
    assert not any(
        re.search(r"kplan (plan|apply)(?!.*plan\.kplan)", s.get("run", "")) for s in apply["steps"]
    ), "the apply job applies the saved plan and nothing else"
    # The password and the key only ever come from secrets.
    assert wf["env"]["KPLAN_PG_PASSWORD"] == "${{ secrets.KPLAN_PG_PASSWORD }}"
    assert wf["env"]["KPLAN_STATE_KEY"] == "${{ secrets.KPLAN_STATE_KEY }}"


def test_plan_in_the_pull_request_then_apply_after_the_merge(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    runner = _runner(tmp_path, pg_server, pg_url)
    planned, done = runner.run_job("plan")
    _ok(done)
    assert [p.args[-1].split()[1] for p in done] == ["init", "plan", "show"]
    comment = (planned / "plan.md").read_text(encoding="utf-8")
    assert "null_resource.keystone" in comment and "secret_password.keystone_db" in comment
    assert "kplan-plan" in runner.artifacts
    assert pg_server.password not in (planned / ".kplan" / "backend.json").read_text()

    applied, done = runner.run_job("apply")
    _ok(done)
    assert [p.args[-1].split()[1] for p in done] == ["init", "apply"]
    assert "Apply complete" in done[-1].stdout, done[-1].stdout
    # The reviewed plan is what the state now holds: a new plan finds nothing to do.
    again = _kplan(runner, applied, "plan", "-detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    listed = _kplan(runner, applied, "state", "list").stdout.split()
    assert listed == ["null_resource.keystone", "secret_password.keystone_db"]


def test_apply_of_a_plan_made_before_the_state_moved_is_refused(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    runner = _runner(tmp_path, pg_server, pg_url)
    _, done = runner.run_job("plan")  # pull request A
    _ok(done)
    plan_a = dict(runner.artifacts)
    runner.artifacts.clear()
    _, done = runner.run_job("plan")  # pull request B, planned from the same state
    _ok(done)
    _, done = runner.run_job("apply")  # B is merged first and applied
    _ok(done)
    before = _checksum(runner, pg_url)

    runner.artifacts = plan_a  # then A is merged: its plan is stale
    _, done = runner.run_job("apply")
    assert [p.args[-1].split()[1] for p in done] == ["init", "apply"]
    refused = done[-1]
    assert refused.returncode == 1
    assert "saved plan plan.kplan is stale" in refused.stderr
    assert "the state changed since the plan was made" in refused.stderr
    assert _checksum(runner, pg_url) == before  # nothing was written


def _checksum(runner: Runner, pg_url: str) -> tuple[int, str]:
    with StateStore.open(pg_url, environ=dict(runner.secrets), create=False) as store:
        return store.serial, store.content_checksum()
