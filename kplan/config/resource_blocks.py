"""Building resources and module calls from raw YAML.

A resource ``TYPE.NAME: {...}`` is split into its provider attributes
(``Resource.config``, kept raw) and its meta-arguments: ``for_each``,
``count``, ``depends_on``, ``host`` and the lifecycle keys
(``prevent_destroy``, ``ignore_changes``, ``replace_on``, ``restart_on``,
``rolling``), which may be written at the top of the resource or inside a
``lifecycle:`` mapping. A module call's attributes are checked here; its
``source`` is followed by ``loader``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kplan.addrs import AddressError, TriggerRef
from kplan.config import shapes
from kplan.config.blocks import Entry, check_name, parse_references
from kplan.config.model import Lifecycle, Resource
from kplan.config.shapes import Where, check
from kplan.config.yamlpos import relative
from kplan.diagnostics import Diagnostic, Diagnostics, SourcePos
from kplan.values import Path

__all__ = [
    "LIFECYCLE_KEYS",
    "RESOURCE_META",
    "build_resource",
    "check_module_call",
    "invalid_trigger",
]

RESOURCE_KEY = re.compile(r"(?P<type>[a-z_][a-z0-9_]*)\.(?P<name>[A-Za-z_][A-Za-z0-9_-]*)")
LIFECYCLE_KEYS = ("prevent_destroy", "ignore_changes", "replace_on", "restart_on", "rolling")
RESOURCE_META = ("for_each", "count", "depends_on", "host", "provider", "lifecycle")


def build_resource(entry: Entry, diags: Diagnostics) -> Resource | None:
    m = RESOURCE_KEY.fullmatch(entry.name)
    if m is None:
        diags.error(
            f"invalid resource key {entry.name!r}",
            'a resource is written "TYPE.NAME": TYPE of lowercase letters, digits and "_"; '
            'NAME of letters, digits, "_" and "-" (e.g. local_file.keystone_conf)',
            entry.pos,
            code="invalid-resource-key",
        )
        return None
    body = {} if entry.value is None else entry.value
    if not isinstance(body, dict):
        diags.error(
            f"{entry.label}: expected a mapping of attributes, got {type(body).__name__}",
            pos=entry.at(),
            code="invalid-block",
        )
        return None
    before = len(diags.errors)
    _check_meta(entry, body, diags)
    lifecycle = _lifecycle(entry, body, diags)
    depends = body.get("depends_on")
    depends_on: tuple[str, ...] = ()
    if depends is not None:
        if isinstance(depends, list) and all(isinstance(d, str) for d in depends):
            depends_on = parse_references(depends, entry, ("depends_on",), diags)
        else:
            diags.error(
                f"{entry.label}.depends_on: expected a list of references",
                pos=entry.at("depends_on"),
                code="invalid-attribute",
            )
    if lifecycle is None or len(diags.errors) > before:
        return None
    hidden = set(RESOURCE_META) | set(LIFECYCLE_KEYS)
    return Resource(
        type=m.group("type"),
        name=m.group("name"),
        config={k: v for k, v in body.items() if k not in hidden},
        for_each=body.get("for_each"),
        count=body.get("count"),
        depends_on=depends_on,
        host=body.get("host"),
        lifecycle=lifecycle,
        pos=entry.pos,
        positions=entry.positions(),
    )


def _check_meta(entry: Entry, body: Mapping[str, Any], diags: Diagnostics) -> None:
    if "for_each" in body and "count" in body:
        diags.error(
            f"{entry.label}: for_each and count cannot both be set",
            "use count for N identical copies, for_each for one copy per key",
            entry.key_at("count"),
            code="count-and-for-each",
        )
    if "provider" in body:
        diags.error(
            f"{entry.label}: the provider meta-argument is not supported",
            "a resource type's provider is chosen by its type name",
            entry.key_at("provider"),
            code="unsupported-provider",
        )


def _lifecycle(entry: Entry, body: Mapping[str, Any], diags: Diagnostics) -> Lifecycle | None:
    nested = body.get("lifecycle")
    if nested is not None and not isinstance(nested, dict):
        diags.error(
            f"{entry.label}.lifecycle: expected a mapping",
            pos=entry.at("lifecycle"),
            code="invalid-block",
        )
        return None
    data: dict[str, Any] = {}
    values: dict[Path, SourcePos] = {}
    keys: dict[Path, SourcePos] = {}
    for prefix, source in ((("lifecycle",), nested or {}), ((), body)):
        for key, value in source.items():
            if prefix == () and key not in LIFECYCLE_KEYS:
                continue
            if key in data:
                diags.error(
                    f"{entry.label}: {key} is set both in lifecycle and at the top of the resource",
                    pos=entry.key_at(*prefix, key),
                    code="duplicate-attribute",
                )
                return None
            data[key] = value
            values.update(
                {(key, *p): pos for p, pos in relative(entry.values, (*prefix, key)).items()}
            )
            keys.update({(key, *p): pos for p, pos in relative(entry.keys, (*prefix, key)).items()})
    if data.get("rolling") is not None and not isinstance(data["rolling"], dict):
        data["rolling"] = {"serial": data["rolling"]}  # rolling: 1 or "30%" is the serial
    where = Where(entry.label, entry.pos, values, keys)
    block = check(shapes.LifecycleBlock, data, where, diags)
    if block is None:
        return None
    lifecycle_entry = Entry(entry.section, entry.name, data, entry.pos, values, keys)
    return Lifecycle(
        prevent_destroy=block.prevent_destroy,
        ignore_changes=tuple(block.ignore_changes),
        replace_on=_triggers(block.replace_on, lifecycle_entry, "replace_on", diags),
        restart_on=_triggers(block.restart_on, lifecycle_entry, "restart_on", diags),
        rolling=block.rolling.as_dict() if block.rolling is not None else None,
    )


def _triggers(items: list[str], entry: Entry, key: str, diags: Diagnostics) -> tuple[str, ...]:
    """restart_on / replace_on entries in their canonical form (``TriggerRef``'s str)."""
    out: list[str] = []
    for i, item in enumerate(items):
        try:
            out.append(str(TriggerRef.parse(item)))
        except AddressError as exc:
            where = shapes.format_path(entry.label, (key, i))
            diags.add(invalid_trigger(where, item, str(exc), entry.at(key, i)))
    return tuple(out)


def invalid_trigger(where: str, text: str, why: str, pos: SourcePos | None) -> Diagnostic:
    """The one wording of a bad restart_on / replace_on entry (loader, graph, planner)."""
    return Diagnostic.error(
        f'{where}: invalid trigger "{text}"',
        f"{why}.\nExpected {TriggerRef.FORMS}, naming a resource of this module "
        '(KEY is an expression such as each.key, count.index or "ctl1")',
        pos,
        code="invalid-trigger",
    )


def check_module_call(entry: Entry, diags: Diagnostics) -> shapes.ModuleBlock | None:
    """Check a module call's attributes (its source is resolved by the loader)."""
    if not check_name(entry, diags):
        return None
    block = check(shapes.ModuleBlock, entry.value, entry.where(), diags)
    if block is None:
        return None
    if block.for_each is not None and block.count is not None:
        diags.error(
            f"{entry.label}: for_each and count cannot both be set",
            pos=entry.key_at("count"),
            code="count-and-for-each",
        )
        return None
    return block
