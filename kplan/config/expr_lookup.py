"""Name and attribute lookup for expressions, with errors that say what exists.

``var.x``, ``module.db.endpoint``, ``local_file.conf.sha256`` and ``m["k"]``
are all map (or list) lookups; a miss names the reference and lists what
is available ('unknown variable "x"; declared: a, b'). Lookups on UNKNOWN
give UNKNOWN; on a Secret, a Secret (and the error hides the keys).
Python attributes of values are never read.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kplan.config.expr_ops import EvalFailure
from kplan.config.functions_base import as_secret, type_name
from kplan.values import UNKNOWN, Secret

__all__ = ["Access", "chain_text", "lookup", "root_value", "slice_value"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_LISTED = 30

_EMPTY_ROOTS: dict[str, Any] = {
    "var": {},
    "local": {},
    "module": {},
    "hosts": [],
    "groups": {},
    "path": {},
}
_UNAVAILABLE = {
    "each": "each.key and each.value are only available in a resource or module with for_each",
    "count": "count.index is only available in a resource or module with count",
    "host": '"host" is only available where a host is set (a resource\'s host, or per host)',
    "self": '"self" is not available here',
}
# (root, depth) → (summary template, code); {k} is the missing key, {m} the first part.
_MISSING = {
    ("var", 1): ('unknown variable "{k}"; declared: {avail}', "unknown-variable"),
    ("local", 1): ('unknown local value "{k}"; declared: {avail}', "unknown-local"),
    ("module", 1): ('unknown module "{k}"; module calls: {avail}', "unknown-module"),
    ("module", 2): ('module "{m}" has no output "{k}"; outputs: {avail}', "unknown-output"),
    ("resource", 2): ('unknown resource "{m}.{k}"; {m} resources: {avail}', "unknown-resource"),
    ("each", 1): ('each has no attribute "{k}"; use each.key or each.value', "unknown-attribute"),
    ("count", 1): ('count has no attribute "{k}"; use count.index', "unknown-attribute"),
    ("groups", 1): ('unknown group "{k}"; groups: {avail}', "unknown-group"),
}


def chain_text(name: str, steps: list[str | int] | tuple[str | int, ...]) -> str:
    """Source-like text of a reference: var.m["k"].x, list[0]."""
    out = [name]
    for step in steps:
        if isinstance(step, str) and _IDENT.match(step):
            out.append(f".{step}")
        elif isinstance(step, str):
            out.append(f'["{step}"]')
        else:
            out.append(f"[{step}]")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Access:
    """What a lookup reads from, for its error message."""

    text: str  # e.g. "module.db" or "value" when not a plain reference
    root: str | None  # "var", ..., "resource"; None when not a plain reference
    parts: tuple[str | int, ...]  # static parts before the key (for resource: type first)

    def missing(self, container: Any, key: Any, hidden: bool) -> EvalFailure:
        if hidden:
            return EvalFailure(f'{self.text} has no key "{key}"', "unknown-attribute")
        avail = _available(container)
        rule = _MISSING.get((self.root or "", len(self.parts) + 1))
        if rule is not None:
            first = self.parts[0] if self.parts else ""
            return EvalFailure(rule[0].format(k=key, m=first, avail=avail), rule[1])
        return EvalFailure(
            f'{self.text} has no attribute "{key}"; available: {avail}', "unknown-attribute"
        )


def _available(container: Any) -> str:
    names = sorted(str(k) for k in container)
    if not names:
        return "(none)"
    more = f", … ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def root_value(scope: Mapping[str, Any], name: str, roots: frozenset[str]) -> Any:
    """The value of a top-level name that the scope may lack."""
    if name in scope:
        return scope[name]
    if name in _EMPTY_ROOTS:
        return _EMPTY_ROOTS[name]
    if name in _UNAVAILABLE:
        raise EvalFailure(_UNAVAILABLE[name], "unavailable-reference")
    types = sorted(k for k in scope if k not in roots and ":" not in k)  # ":": kplan's own
    close = difflib.get_close_matches(name, [*types, *roots], n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    raise EvalFailure(
        f'unknown name "{name}": {hint}expected var, local, module, each, count, host, hosts, '
        f"groups, path, a function call, or a resource type declared in this module "
        f"({', '.join(types) or 'none'})",
        "unknown-reference",
    )


def lookup(base: Any, key: Any, access: Access) -> Any:
    """``base.key`` or ``base[key]``."""
    if type(base) is dict and type(key) is str and key in base:
        return base[key]
    if base is UNKNOWN or key is UNKNOWN:
        return UNKNOWN
    if type(base) is Secret or type(key) is Secret:
        hide_base, hide_key = type(base) is Secret, type(key) is Secret
        base = base.reveal() if hide_base else base
        key = key.reveal() if hide_key else key
        return as_secret(_lookup(base, key, access, hide_base, hide_key))
    return _lookup(base, key, access, False, False)


def _lookup(base: Any, key: Any, access: Access, hide_base: bool, hide_key: bool) -> Any:
    shown = "(sensitive)" if hide_key else str(key)
    if type(base) is dict or isinstance(base, Mapping):
        if type(key) not in (str, int):
            raise EvalFailure(f"{access.text} is a map; its keys are strings, not {type_name(key)}")
        try:
            return base[key]
        except KeyError:
            raise access.missing(base, shown, hide_base) from None
    if isinstance(base, list | tuple):
        if type(key) is float and key.is_integer():
            key = int(key)
        if type(key) is not int:
            what = f'attribute "{shown}"' if type(key) is str else type_name(key)
            raise EvalFailure(f"{access.text} is a list; index it with a whole number, not {what}")
        if -len(base) <= key < len(base):
            return base[key]
        raise EvalFailure(
            f"index {shown} out of range for {access.text} (a list of {len(base)})",
            "index-out-of-range",
        )
    kind = "a sensitive value" if hide_base else type_name(base)
    raise EvalFailure(f'{access.text} is {kind}; it has no attribute "{shown}"')


def slice_value(base: Any, bounds: list[Any]) -> Any:
    """``base[start:stop:step]`` on a list or string."""
    if base is UNKNOWN or any(b is UNKNOWN for b in bounds):
        return UNKNOWN
    if type(base) is Secret or any(type(b) is Secret for b in bounds):
        opened = [b.reveal() if type(b) is Secret else b for b in bounds]
        raw = base.reveal() if type(base) is Secret else base
        return as_secret(slice_value(raw, opened))
    if not isinstance(base, list | str):
        raise EvalFailure(f"only lists and strings can be sliced, got {type_name(base)}")
    for b in bounds:
        if b is not None and type(b) is not int:
            raise EvalFailure(f"slice bounds must be whole numbers, got {type_name(b)}")
    if bounds[2] == 0:
        raise EvalFailure("slice step must not be 0")
    return base[bounds[0] : bounds[1] : bounds[2]]
