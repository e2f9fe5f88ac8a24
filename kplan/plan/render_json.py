"""The machine-readable plan: Terraform's JSON plan shape, plus kplan's own fields.

Tools written for ``terraform show -json`` (OPA/conftest policies, plan
summarizers) read it unchanged: ``resource_changes[].change.actions`` uses
Terraform's action lists (a kplan restart is ``["update"]``, its
``kplan_action`` says ``"restart"``). Secrets are the string ``"(sensitive)"``
and are marked ``true`` in ``before_sensitive``/``after_sensitive``; unknown
values are left out of ``after`` and marked ``true`` in ``after_unknown``.
No timestamp, so the same plan gives the same bytes. Documented in
docs/plan-json.md, with a JSON Schema in docs/plan-json.schema.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import kplan
from kplan.addrs import ModuleAddr, ModuleStep, ResourceAddr
from kplan.plan.model import Action, OutputChange, Plan, ResourceChange
from kplan.plan.render_common import sorted_changes, text_order
from kplan.provider_api import CREATE_BEFORE_DESTROY
from kplan.values import SENSITIVE_TEXT, UNKNOWN, Secret

__all__ = ["FORMAT_VERSION", "plan_to_json", "render_plan_json"]

FORMAT_VERSION: Final = "1.2"

TERRAFORM_ACTIONS: Final[dict[Action, list[str]]] = {
    Action.NOOP: ["no-op"],
    Action.CREATE: ["create"],
    Action.UPDATE: ["update"],
    Action.RESTART: ["update"],
    Action.REPLACE: ["delete", "create"],
    Action.DELETE: ["delete"],
}


# Exact types that are their own JSON and can hold no secret or unknown: checked
# first, since most values in a plan are these (and isinstance on Mapping is slow).
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def _json_value(v: Any) -> Any:
    """Plain JSON: secrets masked, unknowns dropped from objects and null in arrays."""
    if type(v) in _PLAIN:
        return v
    if isinstance(v, Secret):
        return SENSITIVE_TEXT
    if v is UNKNOWN:
        return None
    if isinstance(v, Mapping):
        return {str(k): _json_value(v[k]) for k in text_order(v) if v[k] is not UNKNOWN}
    if isinstance(v, list | tuple):
        return [_json_value(x) for x in v]
    if v is None or isinstance(v, str | bool | int | float):
        return v
    return str(v)


def _walk(v: Any) -> tuple[Any, Any, Any]:
    """``_json_value(v)`` with its shadows of secrets and of unknowns, in one pass.

    The same as three separate walks, which sorted every map's keys three times:
    at 100,000 resources the values of a plan are most of the JSON document.
    """
    if type(v) in _PLAIN:
        return v, False, False
    if isinstance(v, Secret):
        return SENSITIVE_TEXT, True, False
    if v is UNKNOWN:
        return None, False, True
    if isinstance(v, Mapping):
        values: dict[str, Any] = {}
        secret: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for k in text_order(v):
            x = v[k]
            if type(x) in _PLAIN:  # inline: most entries are plain
                values[str(k)] = x
                continue
            value, s, u = _walk(x)
            if x is not UNKNOWN:
                values[str(k)] = value
            if s is not False:
                secret[str(k)] = s
            if u is not False:
                unknown[str(k)] = u
        return values, secret, unknown
    if isinstance(v, list | tuple):
        parts = [_walk(x) for x in v]
        return [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts]
    return _json_value(v), False, False


# A resource's planned values and their shadow of secrets appear twice in the
# document (planned_values, resource_changes): made once, shared (by id of ``after``).
_Shared = dict[int, tuple[Any, Any, Any]]


def _after(after: Any, shared: _Shared) -> tuple[Any, Any, Any]:
    """``after`` as JSON, its ``sensitive`` shadow and its ``unknown`` shadow."""
    made = shared.get(id(after))
    if made is None:
        made = (None, False, {}) if after is None else _walk(after)
        shared[id(after)] = made
    return made


def _change(
    before: Any, after: Any, actions: list[str], shared: _Shared | None = None
) -> dict[str, Any]:
    before_values, before_sensitive, _ = _walk(before)
    out: dict[str, Any] = {"actions": actions, "before": before_values}
    values, sensitive, unknown = _after(after, {} if shared is None else shared)
    if after is not UNKNOWN:
        out["after"] = values
    out["after_unknown"] = unknown
    out["before_sensitive"] = before_sensitive
    out["after_sensitive"] = sensitive
    return out


def _action_reason(change: ResourceChange) -> str | None:
    kinds = {r.kind for r in change.reasons}
    if change.action is Action.REPLACE:
        if "requested" in kinds:
            return "replace_by_request"
        if "trigger" in kinds and not change.replace_paths:
            return "replace_by_triggers"
        return "replace_because_cannot_update"
    if change.action is Action.DELETE and "orphan" in kinds:
        return "delete_because_no_resource_config"
    return None


def _addr_fields(addr: ResourceAddr) -> dict[str, Any]:
    out: dict[str, Any] = {"address": str(addr)}
    if not addr.module.is_root:
        out["module_address"] = str(addr.module)
    out |= {"mode": "managed", "type": addr.type, "name": addr.name}
    if addr.key is not None:
        out["index"] = addr.key
    return out


def _resource_change(
    change: ResourceChange, drift: bool = False, shared: _Shared | None = None
) -> dict[str, Any]:
    out = _addr_fields(change.addr)
    out["provider_name"] = change.provider
    actions = TERRAFORM_ACTIONS[change.action]
    if change.action is Action.REPLACE and change.replace_order == CREATE_BEFORE_DESTROY:
        actions = ["create", "delete"]  # Terraform's create_before_destroy
    body = _change(change.before, change.after, actions, shared)
    if change.action is Action.REPLACE and change.replace_paths:
        body["replace_paths"] = [list(p) for p in change.replace_paths]
    out["change"] = body
    reason = None if drift else _action_reason(change)
    if reason:
        out["action_reason"] = reason
    out["kplan_action"] = change.action.value
    out["reasons"] = [
        {"kind": r.kind, "message": r.message, "path": list(r.path)} for r in change.reasons
    ]
    if change.host is not None:
        out["host"] = change.host
    return out


def _planned_resource(change: ResourceChange, shared: _Shared) -> dict[str, Any]:
    out = _addr_fields(change.addr)
    out.pop("module_address", None)
    out["provider_name"] = change.provider
    out["values"], out["sensitive_values"], _ = _after(change.after, shared)
    return out


def _module_tree(changes: list[ResourceChange], shared: _Shared) -> dict[str, Any]:
    """``root_module`` with nested ``child_modules``, as in Terraform's planned_values."""
    groups: dict[ModuleAddr, list[ResourceChange]] = {}
    for c in changes:  # sorted already, so each group is
        if c.after is not None:
            groups.setdefault(c.addr.module, []).append(c)
    children_of: dict[tuple[ModuleStep, ...], set[ModuleAddr]] = {}
    for m in groups:
        for d in range(1, len(m.steps) + 1):
            children_of.setdefault(m.steps[: d - 1], set()).add(ModuleAddr(m.steps[:d]))

    def node(module: ModuleAddr) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if module in groups:
            out["resources"] = [_planned_resource(c, shared) for c in groups[module]]
        if not module.is_root:
            out["address"] = str(module)
        children = children_of.get(module.steps)
        if children:
            out["child_modules"] = [node(m) for m in sorted(children, key=ModuleAddr.sort_key)]
        return out

    return node(ModuleAddr())


def _output_change(out: OutputChange) -> dict[str, Any]:
    before = None if out.action is Action.CREATE else out.before
    after = None if out.action is Action.DELETE else out.after
    if out.sensitive:
        before = None if before is None else Secret(before)
        after = after if after is None or after is UNKNOWN else Secret(after)
    body = _change(before, after, TERRAFORM_ACTIONS[out.action])
    if out.sensitive:
        body["before_sensitive"] = body["after_sensitive"] = True
    if after is UNKNOWN or not isinstance(after, Mapping | list | tuple):
        body["after_unknown"] = after is UNKNOWN
    return body


def _planned_outputs(plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for o in sorted(plan.outputs, key=lambda o: o.name):
        if o.action is Action.DELETE:
            continue
        entry: dict[str, Any] = {"sensitive": o.sensitive}
        if o.after is not UNKNOWN:
            entry["value"] = SENSITIVE_TEXT if o.sensitive else _json_value(o.after)
        out[o.name] = entry
    return out


def _kplan_meta(plan: Plan) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "workspace": plan.workspace,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "mode": plan.mode.value,
        "targets": list(plan.targets),
        "excludes": list(plan.excludes),
        "input_checksum": plan.input_checksum,
    }
    if plan.rolls:  # present only when a block rolls
        meta["rolls"] = [
            {
                "resource": r.resource,
                "serial": r.serial,
                "batches": [[str(a) for a in batch] for batch in r.batches],
            }
            for r in plan.rolls
        ]
    return meta


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as a JSON-ready dict, keys in Terraform's order (see docs/plan-json.md).

    A resource's values are one object in both ``planned_values`` and
    ``resource_changes``: copy before changing either."""
    changes = sorted_changes(plan.changes)
    shared: _Shared = {}
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kplan_version": plan.kplan_version or kplan.__version__,
        "variables": {k: {"value": _json_value(plan.variables[k])} for k in sorted(plan.variables)},
        "planned_values": {
            "outputs": _planned_outputs(plan),
            "root_module": _module_tree(changes, shared),
        },
    }
    if plan.drift:
        doc["resource_drift"] = [_resource_change(c, True) for c in sorted_changes(plan.drift)]
    doc["resource_changes"] = [_resource_change(c, False, shared) for c in changes]
    doc["output_changes"] = {o.name: _output_change(o) for o in sorted(plan.outputs, key=_name)}
    doc["applyable"] = plan.has_changes
    doc["complete"] = not (plan.targets or plan.excludes)
    doc["errored"] = False
    doc["kplan"] = _kplan_meta(plan)
    return doc


def _name(o: OutputChange) -> str:
    return o.name


def render_plan_json(plan: Plan) -> str:
    """:func:`plan_to_json` as one line of JSON and a newline."""
    text = json.dumps(plan_to_json(plan), ensure_ascii=False, separators=(",", ":"))
    return text + "\n"
