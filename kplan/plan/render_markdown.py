"""The plan as a pull-request comment (GitHub-flavoured Markdown).

A title, the ``Plan:`` line, a ``| Action | Count |`` table, the rolling
blocks and their batches (never cut), then one
collapsible ``<details>`` section per module instance (the root module
first), each change a list item with its symbol, address, action, reasons
and a ``diff`` block of its attributes (secrets ``(sensitive)``). Drift and
output changes get sections of their own. Kept under ``max_chars`` (GitHub
refuses comments over 65,536 characters): changes that do not fit are cut,
in order, and a closing note says how many.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from kplan.plan.model import Action, OutputChange, Plan, ResourceChange
from kplan.plan.render_common import (
    ACTION_PHRASE,
    ACTION_SYMBOL,
    CREATE_FIRST_LEGEND,
    CREATE_FIRST_SYMBOL,
    LEGEND,
    LEGEND_ORDER,
    by_module,
    change_symbol,
    changed,
    drift_phrase,
    module_label,
    plural,
    roll_phrase,
    sorted_changes,
    source_phrase,
    summary_line,
)
from kplan.plan.render_diff import DiffOptions, Line, diff_attribute
from kplan.plan.render_text import resource_lines
from kplan.values import Secret

__all__ = ["render_plan_markdown"]

SENSITIVE = "(sensitive)"
# GitHub's diff highlighting knows "+", "-" and "!" (changed) at column 0.
_MD_SYMBOL = {"+": "+", "-": "-", "~": "!", "↻": "!", "-/+": "!", "+/-": "!", "": " "}
_NOTE_RESERVE = 200


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _diff_line(line: Line) -> str:
    text = " " * line.col + line.text
    return (_MD_SYMBOL.get(line.sym, " ") + text[1:]).rstrip()


def _fence(lines: list[str], indent: str) -> list[str]:
    runs = [len(m) for line in lines for m in re.findall(r"`+", line)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [f"{indent}{fence}diff", *(indent + line for line in lines), f"{indent}{fence}"]


def _item(change: ResourceChange, drift: bool = False) -> str:
    if drift:
        sym, phrase = ("-" if change.action is Action.DELETE else "~"), drift_phrase(change.action)
    else:
        sym, phrase = change_symbol(change), ACTION_PHRASE[change.action]
    out = [f"- `{sym}` `{change.address}` {phrase}"]
    out += [
        f"  - {_esc(source_phrase(r))}" if r.kind == "source" else f"  - because {_esc(r.message)}"
        for r in change.reasons
        if r.kind != "new"
    ]
    if change.host:
        out.append(f"  - on host `{change.host}`")
    diff = [_diff_line(line) for line in resource_lines(change, sym, SENSITIVE)]
    out += ["", *_fence(diff, "  ")]
    return "\n".join(out) + "\n"


def _header(plan: Plan) -> str:
    symbols = [change_symbol(c) for c in plan.changes]
    rows = [
        f"| `{ACTION_SYMBOL[a]}` {LEGEND[a]} | {symbols.count(ACTION_SYMBOL[a])} |"
        for a in LEGEND_ORDER
    ]
    if CREATE_FIRST_SYMBOL in symbols:  # a row only when used: Terraform has no such row
        count = symbols.count(CREATE_FIRST_SYMBOL)
        row = f"| `{CREATE_FIRST_SYMBOL}` {CREATE_FIRST_LEGEND} | {count} |"
        rows.insert(LEGEND_ORDER.index(Action.REPLACE) + 1, row)
    title = f"### kplan plan for workspace `{plan.workspace}`"
    if not plan.has_changes:
        body = "**No changes.** Your infrastructure matches the configuration."
        return f"{title}\n\n{body}\n"
    table = ["| Action | Count |", "| --- | ---: |", *rows]
    text = f"{title}\n\n**{summary_line(plan)}**\n\n" + "\n".join(table) + "\n"
    if plan.rolls:
        text += "\n**Rolling**, each batch finished before the next starts:\n\n"
        text += "".join(f"- `{roll_phrase(r)}`\n" for r in plan.rolls)
    return text


def _section(summary: str, items: Iterable[str]) -> tuple[str, str, list[str]]:
    return f"\n<details><summary>{_esc(summary)}</summary>\n\n", "\n</details>\n", list(items)


def _output_diff(out: OutputChange) -> list[str]:
    sym = ACTION_SYMBOL[out.action] if out.action is not Action.REPLACE else "~"
    if out.sensitive or isinstance(out.before, Secret) or isinstance(out.after, Secret):
        return [_diff_line(Line(2, sym, f"{out.name} = {SENSITIVE}"))]
    before = None if out.action is Action.CREATE else out.before
    after = None if out.action is Action.DELETE else out.after
    lines = diff_attribute(f"{out.name} = ", before, after, 2, (), DiffOptions(SENSITIVE))
    return [_diff_line(line) for line in lines]


def _sections(plan: Plan) -> list[tuple[str, str, list[str]]]:
    out: list[tuple[str, str, list[str]]] = []
    if plan.drift:
        drift = sorted_changes(plan.drift)
        label = f"Drift: {plural(len(drift), 'object')} changed outside of kplan"
        out.append(_section(label, (_item(c, drift=True) for c in drift)))
    for module, group in by_module(changed(plan.changes)):
        label = f"{module_label(module)} ({plural(len(group), 'change')})"
        out.append(_section(label, (_item(c) for c in group)))
    outputs = sorted((o for o in plan.outputs if o.action.is_change), key=lambda o: o.name)
    if outputs:
        lines = [line for o in outputs for line in _output_diff(o)]
        block = "\n".join(_fence(lines, "")) + "\n"
        out.append(_section(f"Changes to Outputs ({len(outputs)})", [block]))
    return out


def render_plan_markdown(plan: Plan, *, max_chars: int = 65000) -> str:
    """The plan as Markdown for a pull-request comment, at most ``max_chars`` long."""
    text = _header(plan)
    budget = max_chars - _NOTE_RESERVE
    cut = 0
    for opening, closing, items in _sections(plan):
        fits: list[str] = []
        for item in items:
            size = len(text) + len(opening) + sum(map(len, fits)) + len(fits) + len(item)
            size += len(closing)
            if cut or size > budget:
                cut += 1
            else:
                fits.append(item)
        if fits:
            text += opening + "\n".join(fits) + closing
    if cut:
        text += (
            f"\n… {plural(cut, 'more change')} not shown; "
            "run `kplan show PLANFILE` for the full plan.\n"
        )
    return text
