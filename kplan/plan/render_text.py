"""The human plan, in ``terraform plan``'s conventions.

Layout: the legend of the symbols used; drift ("Objects have changed outside
of kplan"), when a refresh found any; one block per changed resource
instance, sorted by address, each under ``# ADDRESS will be ...`` and its
reasons, and after a rolling block's last change its batches (``# TYPE.NAME
rolls 1 at a time: ["ctl1"], then ["ctl2"]``); the ``Plan: N to add, N to
change, N to restart, N to destroy.`` line; then ``Changes to Outputs:``.
Secrets print as ``(sensitive value)``. The same plan always gives the same
bytes; colour (ANSI) only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from kplan.forked import forked
from kplan.plan.model import Action, OutputChange, Plan, PlanMode, Reason, ResourceChange
from kplan.plan.render_common import (
    ACTION_PHRASE,
    ACTION_SYMBOL,
    CREATE_FIRST_LEGEND,
    CREATE_FIRST_SYMBOL,
    LEGEND,
    LEGEND_ORDER,
    change_symbol,
    changed,
    drift_phrase,
    roll_phrase,
    sorted_changes,
    source_phrase,
    summary_line,
)
from kplan.plan.render_diff import DiffOptions, Line, diff_attribute, diff_object
from kplan.values import Secret

__all__ = ["render_plan_text", "resource_lines"]

RULE = "─" * 77
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_COLORS = {
    "+": "\x1b[32m",
    "~": "\x1b[33m",
    "↻": "\x1b[36m",
    "-": "\x1b[31m",
}
# Reasons the diff itself already shows, or that say nothing a create does not.
_SILENT_KINDS = frozenset({"attribute", "new"})


@dataclass(frozen=True, slots=True)
class _Style:
    color: bool

    def sym(self, sym: str) -> str:
        if not self.color or not sym.strip():
            return sym
        if sym == "-/+":
            return f"{_COLORS['-']}-{_RESET}/{_COLORS['+']}+{_RESET}"
        if sym == CREATE_FIRST_SYMBOL:
            return f"{_COLORS['+']}+{_RESET}/{_COLORS['-']}-{_RESET}"
        return f"{_COLORS.get(sym, '')}{sym}{_RESET}"

    def bold(self, text: str) -> str:
        return f"{_BOLD}{text}{_RESET}" if self.color else text


def _format(line: Line, style: _Style) -> str:
    col, sym, text = line
    if not sym:
        return " " * col + text
    pad = max(col - len(sym) - 1, 0)
    return " " * pad + (style.sym(sym) if style.color else sym) + " " + text


def resource_lines(change: ResourceChange, sym: str, sensitive_text: str) -> list[Line]:
    """``resource "TYPE" "NAME" { ... }`` for one change, as structured lines."""
    opts = DiffOptions(sensitive_text=sensitive_text, replace_paths=change.replace_paths)
    addr = change.addr
    head = Line(4, sym, f'resource "{addr.type}" "{addr.name}" {{')
    before, after = change.before or {}, change.after or {}
    shown = [n for n in change.inputs if before.get(n) is not None or after.get(n) is not None]
    if change.inputs:
        # Inputs (a template, its vars) are compared through what they feed: the diff
        # shows that result, the rendered text, as it lands on the host.
        before = {k: v for k, v in before.items() if k not in change.inputs}
        after = {k: v for k, v in after.items() if k not in change.inputs}
    body = diff_object(before, after, 8, (), opts)
    if shown:
        body.append(Line(8, "", f"# ({', '.join(shown)} not shown: compared through the result)"))
    return [head, *body, Line(4, "", "}")]


def _reason_text(reason: Reason) -> str:
    if reason.kind == "source":  # not a cause: where a changed value comes from
        return f"  # {source_phrase(reason)}"
    return f"  # (because {reason.message})"


def _change_block(change: ResourceChange, phrase: str, style: _Style, drift: bool) -> list[str]:
    out = [style.bold(f"  # {change.address}") + f" {phrase}"]
    out += [_reason_text(r) for r in change.reasons if r.kind not in _SILENT_KINDS]
    if change.host:
        out.append(f"  # on host {change.host}")
    sym = change_symbol(change)
    if drift:
        sym = "-" if change.action is Action.DELETE else "~"
    out += [_format(line, style) for line in resource_lines(change, sym, "(sensitive value)")]
    return out


def _legend(plan: Plan, style: _Style) -> list[str]:
    used = {change_symbol(c) for c in plan.changes}
    out = [
        "kplan used the selected providers to generate the following execution plan. "
        "Resource actions are indicated with the following symbols:"
    ]
    legend = [(ACTION_SYMBOL[a], LEGEND[a]) for a in LEGEND_ORDER]
    legend.insert(
        LEGEND_ORDER.index(Action.REPLACE) + 1, (CREATE_FIRST_SYMBOL, CREATE_FIRST_LEGEND)
    )
    for sym, words in legend:
        if sym in used:
            out.append(" " * (3 - len(sym)) + style.sym(sym) + " " + words)
    return out


def _refresh_only(plan: Plan, style: _Style) -> list[str]:
    if not plan.drift:
        return [
            style.bold("No changes.") + " Your infrastructure still matches the configuration.",
            "",
            "kplan has checked that the real remote objects still match the result of your "
            "most recent changes, and found no differences.",
        ]
    out = _drift(plan, style)[:-4]
    out += [
        "",
        "This is a refresh-only plan, so kplan will not take any actions to undo these. If "
        "you were expecting these changes then you can apply this plan to record the updated "
        "values in the kplan state without changing any remote objects.",
    ]
    return out


def _drift(plan: Plan, style: _Style) -> list[str]:
    out = [
        "",
        style.bold("Note: Objects have changed outside of kplan"),
        "",
        "kplan detected the following changes made outside of kplan since the last "
        '"kplan apply" which may have affected this plan:',
    ]
    for change in sorted_changes(plan.drift):
        out += ["", *_change_block(change, drift_phrase(change.action), style, drift=True)]
    out += [
        "",
        "Unless you have made equivalent changes to your configuration, or ignored the "
        "relevant attributes using ignore_changes, the following plan may include actions "
        "to undo or respond to these changes.",
        "",
        RULE,
    ]
    return out


def _output_lines(out: OutputChange, style: _Style) -> list[str]:
    sym = ACTION_SYMBOL[out.action] if out.action is not Action.REPLACE else "~"
    if out.sensitive or isinstance(out.before, Secret) or isinstance(out.after, Secret):
        return [_format(Line(4, sym, f"{out.name} = (sensitive value)"), style)]
    before = None if out.action is Action.CREATE else out.before
    after = None if out.action is Action.DELETE else out.after
    lines = diff_attribute(f"{out.name} = ", before, after, 4, (), DiffOptions())
    return [_format(line, style) for line in lines]


def _outputs(plan: Plan, style: _Style) -> list[str]:
    outputs = sorted((o for o in plan.outputs if o.action.is_change), key=lambda o: o.name)
    if not outputs:
        return []
    out = ["", "Changes to Outputs:"]
    for o in outputs:
        out += _output_lines(o, style)
    return out


def _no_changes(style: _Style) -> list[str]:
    return [
        "",
        style.bold("No changes.") + " Your infrastructure matches the configuration.",
        "",
        "kplan has compared your real infrastructure against your configuration and found "
        "no differences, so no changes are needed.",
    ]


def render_plan_text(plan: Plan, *, color: bool = False) -> str:
    """The plan as ``terraform plan`` would print it; ends with a newline."""
    style = _Style(color)
    if plan.mode is PlanMode.REFRESH_ONLY:
        return "".join(line.rstrip() + "\n" for line in _refresh_only(plan, style)).lstrip("\n")
    out: list[str] = _drift(plan, style) if plan.drift else []
    todo = changed(plan.changes)
    outputs = _outputs(plan, style)
    if not todo and not outputs:
        out += _no_changes(style)
    elif not todo:
        out += [*outputs, ""]
        out.append(
            "You can apply this plan to save these new output values to the kplan state, "
            "without changing any real infrastructure."
        )
    else:
        out += ["", *_legend(plan, style), "", "kplan will perform the following actions:"]
        rolls = {r.resource: r for r in plan.rolls}

        def blocks(lo: int, hi: int) -> list[str]:
            lines: list[str] = []
            for i in range(lo, hi):
                change = todo[i]
                lines += ["", *_change_block(change, ACTION_PHRASE[change.action], style, False)]
                if not rolls:
                    continue
                block = change.addr.config
                last = i + 1 == len(todo) or todo[i + 1].addr.config != block
                if last and str(block) in rolls:  # after the block's last change: its order
                    lines += ["", f"  # {roll_phrase(rolls[str(block)])}"]
            return lines

        # The second half's text is made by a child process on another core (kplan.forked).
        mid = len(todo) // 2
        with forked(lambda: _joined(blocks(mid, len(todo))), len(todo)) as second_half:
            out += blocks(0, mid)
            tail = ["", style.bold(summary_line(plan)), *outputs]
            return (
                _joined(_lstripped(out)) + "\n" + second_half.result() + "\n" + _joined(tail) + "\n"
            )
    out = _lstripped(out)
    return _joined(out) + "\n" if out else ""


def _lstripped(lines: list[str]) -> list[str]:
    start = 0
    while start < len(lines) and lines[start] == "":
        start += 1
    return lines[start:]


def _joined(lines: list[str]) -> str:
    return "\n".join(map(str.rstrip, lines))
