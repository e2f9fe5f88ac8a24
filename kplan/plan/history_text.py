"""The one-line summaries an apply leaves in the state's history.

:func:`planned_text` is what a run planned to do (recorded when it starts);
:func:`done_text` what it did (recorded when it ends). Text for people only.
"""

from __future__ import annotations

from collections.abc import Iterable

from kplan.plan.model import Action, Plan, ResourceChange

__all__ = ["done_text", "planned_text"]


def planned_text(plan: Plan) -> str:
    s = plan.summary()
    return f"{s.add} to add, {s.change} to change, {s.restart} to restart, {s.destroy} to destroy"


def done_text(
    done: Iterable[ResourceChange] | None, *, failed: int = 0, not_started: int = 0
) -> str:
    """``done`` is None when the run stopped before its result was known."""
    if done is None:
        return "stopped before the summary was known; kplan state list shows what was recorded"
    counts = {a: 0 for a in Action}
    for c in done:
        counts[c.action] += 1
    text = (
        f"{counts[Action.CREATE] + counts[Action.REPLACE]} added, "
        f"{counts[Action.UPDATE]} changed, {counts[Action.RESTART]} restarted, "
        f"{counts[Action.DELETE] + counts[Action.REPLACE]} destroyed"
    )
    if failed:
        text += f"; {failed} failed, {not_started} not started"
    return text
