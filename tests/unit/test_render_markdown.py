"""Unit tests of the Markdown (pull-request comment) plan renderer."""

from __future__ import annotations

from kplan.addrs import ROOT
from kplan.plan.model import Action, Plan, Reason, ResourceChange
from kplan.plan.render_markdown import render_plan_markdown
from kplan.values import Secret


def _plan(n: int) -> Plan:
    changes = tuple(
        ResourceChange(
            ROOT.child("svc", f"h{i:03d}").resource("host_file", "conf"),
            "p",
            Action.UPDATE,
            {"content": "a\nb\n", "pw": Secret("raw-old")},
            {"content": "a\nc\n", "pw": Secret("raw-new")},
            reasons=(Reason("attribute", "content <changed>", ("content",)),),
        )
        for i in range(n)
    )
    return Plan(changes)


def test_sections_per_module_and_summary_table() -> None:
    md = render_plan_markdown(_plan(2))
    assert "| Action | Count |" in md
    assert "| `~` update in-place | 2 |" in md
    assert '<details><summary>module.svc["h000"] (1 change)</summary>' in md
    assert "  - because content &lt;changed&gt;" in md
    assert '  ```diff\n  !   resource "host_file" "conf" {\n' in md
    assert "-           b\n  +           c\n" in md
    assert "raw-" not in md


def test_trimmed_under_max_chars_with_note() -> None:
    for limit in (1500, 3000, 10000):
        md = render_plan_markdown(_plan(50), max_chars=limit)
        assert len(md) <= limit
        shown = md.count("- `~`")
        assert f"… {50 - shown} more changes not shown; run `kplan show PLANFILE`" in md
        assert md.count("<details>") == md.count("</details>")


def test_not_trimmed_when_it_fits() -> None:
    md = render_plan_markdown(_plan(3))
    assert "not shown" not in md
    assert md.count("- `~`") == 3


def test_fence_grows_past_backticks_in_content() -> None:
    change = ResourceChange(
        ROOT.resource("host_file", "readme"), "p", Action.CREATE, None, {"content": "```\nx\n"}
    )
    md = render_plan_markdown(Plan((change,)))
    assert "  ````diff\n" in md


def test_a_create_first_replace_has_its_own_row_and_symbol() -> None:
    first = ResourceChange(
        ROOT.resource("local_file", "f"),
        "builtin",
        Action.REPLACE,
        {"path": "/a"},
        {"path": "/b"},
        replace_order="create_before_destroy",
    )
    md = render_plan_markdown(Plan((first,)))
    assert "| `-/+` destroy and then create replacement | 0 |" in md
    assert "| `+/-` create replacement and then destroy | 1 |" in md
    assert "- `+/-` `local_file.f` must be replaced" in md
