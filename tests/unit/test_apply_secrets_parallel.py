"""The first apply of many secrets at once, on a fresh state with no key given.

It used to fail about 5 times in 12: one worker created the default key file
while another read it still empty. The key is now made once, atomically, before
the apply starts; 20 fresh states in a row must all apply cleanly.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kplan.plan.planner import PlanOptions
from kplan.plugins import ProviderRegistry
from kplan.state.store import StateStore
from kplan.workflow import RunOptions, plan_and_apply

SECRETS = 12

MODULE = (
    "resources:\n"
    + "".join(f"  secret_password.s{i}: {{length: 24}}\n" for i in range(SECRETS))
    + ("  local_file.note:\n    path: ${path.module}/out/note.txt\n    content: hello\n")
)


@pytest.mark.parametrize("run", range(20))
def test_parallel_secrets_on_a_fresh_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: int
) -> None:
    (tmp_path / "main.kp.yaml").write_text(MODULE)
    monkeypatch.chdir(tmp_path)  # as the CLI does: paths are taken from the root module
    opts = RunOptions(dir=".", parallelism=64, environ={})
    outcome = plan_and_apply(
        opts,
        PlanOptions(parallelism=64),
        ProviderRegistry.from_entry_points(),
        confirm=lambda plan: True,
        notify=lambda event: None,
    )
    assert outcome.result is not None
    failed = {a: [str(d) for d in ds] for a, ds in outcome.result.failed.items()}
    assert outcome.result.ok, (failed, outcome.result.not_started, outcome.result.diagnostics)
    assert len(outcome.result.done) == SECRETS + 1

    key = tmp_path / ".kplan" / "state.key"
    assert len(base64.b64decode(key.read_text().strip(), validate=True)) == 32
    with StateStore.open(str(tmp_path / ".kplan" / "state.db"), environ={}) as store:
        values = {
            a: r.attributes["value"].reveal()
            for a, r in store.resources().items()
            if a.startswith("secret_password.")
        }
    assert len(values) == SECRETS and all(len(v) == 24 for v in values.values())
    assert (tmp_path / "out" / "note.txt").read_text() == "hello"
