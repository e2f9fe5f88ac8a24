"""Whether applying a plan may seal a secret in the state (and so needs the state key)."""

from __future__ import annotations

from collections.abc import Callable, Collection

from kplan.plan.model import Action, Plan

__all__ = ["may_seal_secrets"]

_WRITES = (Action.CREATE, Action.UPDATE, Action.REPLACE, Action.RESTART)


def may_seal_secrets(plan: Plan, sensitive_attributes: Callable[[str], Collection[str]]) -> bool:
    """True when a change writes a sensitive value: a Secret in its planned values, or
    a resource type with sensitive attributes (known only after apply), or a
    sensitive output. ``sensitive_attributes(type)`` reads the type's schema."""
    if any(o.sensitive and o.action.is_change for o in plan.outputs):
        return True
    types: set[str] = set()
    for c in plan.changes:
        if c.action in _WRITES:
            if c.after_sensitive:
                return True
            types.add(c.addr.type)
    return any(sensitive_attributes(t) for t in sorted(types))
