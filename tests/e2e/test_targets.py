"""-target and -exclude on what only the state still knows, and on nothing at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_kplan

pytestmark = pytest.mark.e2e

MAIN = """\
modules:
  m: {source: ./m}
resources:
  local_file.r:
    for_each: [a, b]
    path: out/${each.key}
    content: "${each.key}\\n"
  local_file.kept: {path: out/kept, content: "kept\\n"}
"""


def _module(root: Path) -> None:
    (root / "m").mkdir()
    (root / "m" / "main.kp.yaml").write_text(
        'resources:\n  local_file.f: {path: out/m, content: "m\\n"}\n'
    )
    (root / "main.kp.yaml").write_text(MAIN)


def _actions(proc) -> list[str]:
    return [
        line.strip()
        for line in proc.stdout.splitlines()
        if line.startswith("  # ") and "will" in line
    ]


@pytest.mark.parametrize(
    ("target", "want"),
    [
        ("module.m", ["# module.m.local_file.f will be destroyed"]),
        ("local_file.r", ['# local_file.r["a"] will be destroyed',
                          '# local_file.r["b"] will be destroyed']),
        ('local_file.r["b"]', ['# local_file.r["b"] will be destroyed']),
    ],
)  # fmt: skip
def test_a_target_deletes_what_was_removed_from_the_configuration(
    tmp_path: Path, target: str, want: list[str]
) -> None:
    # Such instances are deleted only when a -target selects them directly (docs/cli.md);
    # their rows were not read for a targeted plan, which then said "No changes".
    _module(tmp_path)
    run_kplan(tmp_path, "apply", "-auto-approve", check=True)
    (tmp_path / "main.kp.yaml").write_text(
        'resources:\n  local_file.kept: {path: out/kept, content: "kept\\n"}\n'
    )
    proc = run_kplan(tmp_path, "plan", "-target", target, check=True)
    assert _actions(proc) == want
    assert "Warning" not in proc.stderr


def test_a_selector_that_matches_nothing_is_a_warning(tmp_path: Path) -> None:
    _module(tmp_path)
    run_kplan(tmp_path, "apply", "-auto-approve", check=True)
    proc = run_kplan(tmp_path, "plan", "-target", "local_file.rr", "-exclude", "module.mm")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.split("\n\n")[:2] == [
        "Warning: -target local_file.rr matches nothing in the configuration or the state\n"
        '  so it selects nothing; did you mean "local_file.r"?',
        "Warning: -exclude module.mm matches nothing in the configuration or the state\n"
        '  so it keeps out nothing; did you mean "module.m"?',
    ]
    for fine in ("local_file.r", 'local_file.r["a"]', "module.m", "module.m.local_file.f"):
        assert "Warning" not in run_kplan(tmp_path, "plan", "-target", fine).stderr, fine
