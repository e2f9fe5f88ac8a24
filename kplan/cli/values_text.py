"""Recorded attributes as text (``kplan show``, ``kplan state show``); secrets masked."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kplan.values import UNKNOWN, Secret

__all__ = ["attributes_json", "render_attributes"]


def attributes_json(value: Any) -> Any:
    """A JSON-ready copy with every secret replaced by "(sensitive)"."""
    if isinstance(value, Secret):
        return "(sensitive)"
    if value is UNKNOWN:
        return None
    if isinstance(value, dict):
        return {k: attributes_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [attributes_json(v) for v in value]
    return value


def _value(v: Any, indent: str) -> str:
    if isinstance(v, Secret):
        return "(sensitive value)"
    if isinstance(v, dict):
        if not v:
            return "{}"
        width = max(len(json.dumps(k)) for k in v)
        inner = [
            f"{indent}    {json.dumps(k).ljust(width)} = {_value(v[k], indent + '    ')}"
            for k in sorted(v)
        ]
        return "{\n" + "\n".join(inner) + f"\n{indent}}}"
    if isinstance(v, list):
        if not v:
            return "[]"
        inner = [f"{indent}    {_value(x, indent + '    ')}," for x in v]
        return "[\n" + "\n".join(inner) + f"\n{indent}]"
    if isinstance(v, str) and "\n" in v:
        body = "\n".join(f"{indent}    {line}" for line in v.rstrip("\n").split("\n"))
        return f"<<-EOT\n{body}\n{indent}EOT"
    return json.dumps(v)


def render_attributes(type_: str, name: str, attrs: Mapping[str, Any]) -> str:
    lines = [f'resource "{type_}" "{name}" {{']
    width = max((len(k) for k in attrs), default=0)
    for k in sorted(attrs):
        lines.append(f"    {k.ljust(width)} = {_value(attrs[k], '    ')}")
    lines.append("}")
    return "\n".join(lines)
