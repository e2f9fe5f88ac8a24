"""What the plan renderers (text, JSON, Markdown) share: words, symbols, order.

Every renderer sorts changes by :meth:`ResourceAddr.sort_key`, groups them by
module the same way and counts them with :meth:`Plan.summary`, so the three
formats never disagree about what a plan contains. Nothing here writes
output or reveals a :class:`~kplan.values.Secret`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kplan.addrs import ModuleAddr
from kplan.plan.model import Action, Plan, Reason, ResourceChange, Roll
from kplan.provider_api import CREATE_BEFORE_DESTROY

__all__ = [
    "ACTION_PHRASE",
    "ACTION_SYMBOL",
    "CREATE_FIRST_LEGEND",
    "CREATE_FIRST_SYMBOL",
    "DRIFT_PHRASE",
    "LEGEND",
    "LEGEND_ORDER",
    "by_module",
    "change_symbol",
    "changed",
    "drift_phrase",
    "module_label",
    "plural",
    "roll_phrase",
    "sorted_changes",
    "source_phrase",
    "summary_line",
    "text_order",
]

ACTION_SYMBOL: dict[Action, str] = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.RESTART: "↻",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.NOOP: " ",
}

# "# ADDRESS will be created": the words after the address.
ACTION_PHRASE: dict[Action, str] = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in-place",
    Action.RESTART: "will be restarted",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be destroyed",
    Action.NOOP: "has no changes",
}

# Drift is told as what already happened, as Terraform does.
DRIFT_PHRASE: dict[Action, str] = {
    Action.DELETE: "has been deleted",
}

LEGEND: dict[Action, str] = {
    Action.CREATE: "create",
    Action.UPDATE: "update in-place",
    Action.RESTART: "restart",
    Action.REPLACE: "destroy and then create replacement",
    Action.DELETE: "destroy",
}
LEGEND_ORDER = (Action.CREATE, Action.UPDATE, Action.RESTART, Action.REPLACE, Action.DELETE)

# A replace whose type creates the new object first (Terraform's create_before_destroy).
CREATE_FIRST_SYMBOL = "+/-"
CREATE_FIRST_LEGEND = "create replacement and then destroy"


def change_symbol(change: ResourceChange) -> str:
    """The change's symbol: ``-/+`` or, for a create-first replace, ``+/-``."""
    if change.action is Action.REPLACE and change.replace_order == CREATE_BEFORE_DESTROY:
        return CREATE_FIRST_SYMBOL
    return ACTION_SYMBOL[change.action]


def drift_phrase(action: Action) -> str:
    return DRIFT_PHRASE.get(action, "has changed")


def text_order(keys: Iterable[Any]) -> list[Any]:
    """Map keys in the order of their text (``sorted(keys, key=str)``), faster for strings."""
    keys = list(keys)
    if keys and type(keys[0]) is str:
        try:  # all strings, the common case: their own order is their text's
            return sorted(keys)
        except TypeError:
            pass
    return sorted(keys, key=str)


def sorted_changes(changes: Iterable[ResourceChange]) -> list[ResourceChange]:
    """Changes in address order (module path, type, name, key); ties by action."""
    return sorted(changes, key=lambda c: (c.addr.sort_key(), c.action.value))


def changed(changes: Iterable[ResourceChange]) -> list[ResourceChange]:
    """The non-no-op changes, sorted."""
    return sorted_changes(c for c in changes if c.action.is_change)


def module_label(module: ModuleAddr) -> str:
    return "root module" if module.is_root else str(module)


def by_module(changes: Iterable[ResourceChange]) -> list[tuple[ModuleAddr, list[ResourceChange]]]:
    """Group sorted changes by module instance, the root module first."""
    groups: dict[ModuleAddr, list[ResourceChange]] = {}
    for c in sorted_changes(changes):
        groups.setdefault(c.addr.module, []).append(c)
    return sorted(groups.items(), key=lambda kv: kv[0].sort_key())


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    return (
        f"Plan: {s.add} to add, {s.change} to change, "
        f"{s.restart} to restart, {s.destroy} to destroy."
    )


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def roll_phrase(roll: Roll) -> str:
    """``docker_container.keystone rolls 1 at a time: ["ctl1"], then ["ctl2"]``."""
    count = sum(len(b) for b in roll.batches)
    size = f"{roll.serial} at a time"
    if isinstance(roll.serial, str):
        size += f" ({len(roll.batches[0])} of {count})"
    batches = ", then ".join(
        "[" + ", ".join(json.dumps(a.key, ensure_ascii=False) for a in batch) + "]"
        for batch in roll.batches
    )
    return f"{roll.resource} rolls {size}: {batches}"


def source_phrase(reason: Reason) -> str:
    """A ``source`` reason: ``content: [token] expiration from config/keystone.conf``."""
    where = ".".join(str(p) for p in reason.path)
    return f"{where}: {reason.message}" if where else reason.message
