"""The shapes of configuration blocks, checked with pydantic, errors placed in the file.

Each block (a variable, a host, a module call, an output, a resource's
lifecycle, the ``kplan`` settings) has a pydantic model with
``extra="forbid"`` and strict types. :func:`check` validates raw YAML data
against one and turns every pydantic error into a :class:`Diagnostic` at
the file, line and column of the offending node: its ``loc`` is a path
relative to the block, looked up in the block's position maps. Also here:
the small version-constraint check for ``kplan.required_version``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kplan.config.model import MISSING
from kplan.config.types import describe_value
from kplan.diagnostics import Diagnostics, SourcePos, did_you_mean
from kplan.values import Path

__all__ = [
    "BackendBlock",
    "Block",
    "HostBlock",
    "LifecycleBlock",
    "ModuleBlock",
    "OutputBlock",
    "RollingBlock",
    "SettingsBlock",
    "ValidationBlock",
    "VariableBlock",
    "Where",
    "check",
    "check_version",
    "format_path",
]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)


class ValidationBlock(_Shape):
    condition: str
    error_message: str


class VariableBlock(_Shape):
    type: str = "any"
    default: Any = MISSING
    description: str = ""
    sensitive: bool = False
    validation: Any = None  # one mapping or a list of them; checked item by item


class HostBlock(_Shape):
    address: str | None = None
    groups: list[str] = []
    connection: Literal["ssh", "local"] = "ssh"
    user: str | None = None
    port: int = Field(22, ge=1, le=65535)
    # The private key to log in with, and the known_hosts file its host key is
    # checked against (paths; ~ expanded, relative to the root module).
    ssh_key: str | None = None
    known_hosts: str | None = None
    vars: dict[str, Any] = {}


class ModuleBlock(_Shape):
    source: str
    inputs: dict[str, Any] = {}
    hosts: Any = None
    for_each: Any = None
    count: Any = None
    depends_on: list[str] = []


class OutputBlock(_Shape):
    value: Any
    description: str = ""
    sensitive: bool = False
    depends_on: list[str] = []


_PERCENT = re.compile(r"\s*(\d+)\s*%\s*\Z")


class RollingBlock(_Shape):
    """``rolling: {serial: N}``: change N instances (or "P%" of them) at a time."""

    serial: Any

    @field_validator("serial")
    @classmethod
    def _serial(cls, value: Any) -> Any:
        if type(value) is int and value >= 1:
            return value
        m = _PERCENT.match(value) if isinstance(value, str) else None
        if m is not None and 1 <= int(m.group(1)) <= 100:
            return f"{int(m.group(1))}%"
        raise ValueError('a whole number ≥ 1, or a percentage from "1%" to "100%"')


class LifecycleBlock(_Shape):
    prevent_destroy: bool = False
    ignore_changes: list[str] = []
    replace_on: list[str] = []
    restart_on: list[str] = []
    rolling: RollingBlock | None = None


class BackendBlock(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["sqlite", "postgresql"]


class SettingsBlock(_Shape):
    required_version: str | None = None
    backend: BackendBlock | None = None


@dataclass(frozen=True)
class Where:
    """A block's label (``variables.port``) and where its nodes are, relative to it."""

    label: str
    pos: SourcePos  # the block's key
    values: Mapping[Path, SourcePos]
    keys: Mapping[Path, SourcePos]

    def value_at(self, path: Path) -> SourcePos:
        p = tuple(path)
        while p:
            found = self.values.get(p)
            if found is not None:
                return found
            p = p[:-1]
        return self.values.get((), self.pos)

    def key_at(self, path: Path) -> SourcePos:
        return self.keys.get(tuple(path)) or self.value_at(path)


def format_path(label: str, path: Path) -> str:
    out = label
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

Block = TypeVar("Block", bound=BaseModel)


def _message(err: Mapping[str, Any], model: type[BaseModel], loc: Path) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required attribute is missing"
    if kind == "extra_forbidden":
        fields = _fields(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), fields) if loc else ""
        return f"unknown attribute; {hint}expected one of: {', '.join(fields)}"
    want = _EXPECTED.get(kind)
    if want is None:
        msg = str(err.get("msg", "invalid value"))
        want = msg.removeprefix("Input should be ").removeprefix("Value error, ")
    return f"expected {want}, got {describe_value(err.get('input'))}"


def _fields(model: type[BaseModel], loc: Path) -> list[str]:
    """The attribute names allowed at ``loc`` (a nested model's, when loc points into one)."""
    current: Any = model
    for step in loc:
        if isinstance(step, int) or not hasattr(current, "model_fields"):
            continue
        field = current.model_fields.get(step)
        annotation = getattr(field, "annotation", None)
        args = getattr(annotation, "__args__", ())
        nested = [
            a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        current = nested[0] if nested else current
    return sorted(getattr(current, "model_fields", {}))


def check(model: type[Block], data: Any, where: Where, diags: Diagnostics) -> Block | None:
    """Validate ``data`` against ``model``; errors go to ``diags`` with their positions."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        diags.error(
            f"{where.label}: expected a mapping, got {describe_value(data)}",
            pos=where.value_at(()),
            code="invalid-block",
        )
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc: Path = tuple(step for step in err["loc"] if isinstance(step, str | int))
            if err["type"] == "extra_forbidden":
                pos = where.key_at(loc)
            elif err["type"] == "missing":
                pos = where.value_at(loc[:-1])
            else:
                pos = where.value_at(loc)
            diags.error(
                f"{format_path(where.label, loc)}: {_message(err, model, loc)}",
                pos=pos,
                code="invalid-attribute",
            )
        return None


_CONSTRAINT = re.compile(r"^\s*(>=|<=|==|!=|>|<|=)?\s*v?(\d+(?:\.\d+)*)(?:[.-]?[A-Za-z]\w*)?\s*$")


def _release(version: str) -> tuple[int, ...]:
    """The numeric release part: "0.1.0.dev0" → (0, 1, 0)."""
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in m.group(1).split(".")) if m else (0,)


def check_version(constraints: str, version: str) -> bool:
    """True when ``version`` meets every comma-separated constraint (">=0.1, <1").

    Versions compare by their numeric release part, padded with zeros;
    pre-release suffixes (".dev0", "-rc1") are ignored, so a development
    build of 0.1.0 satisfies ">=0.1". Raises ValueError for a bad constraint.
    """
    have = _release(version)
    for part in constraints.split(","):
        m = _CONSTRAINT.match(part)
        if m is None:
            raise ValueError(f"invalid version constraint {part.strip()!r}")
        op = m.group(1) or "=="
        want = tuple(int(p) for p in m.group(2).split("."))
        width = max(len(have), len(want))
        a = have + (0,) * (width - len(have))
        b = want + (0,) * (width - len(want))
        ok = {
            ">=": a >= b,
            "<=": a <= b,
            ">": a > b,
            "<": a < b,
            "==": a == b,
            "=": a == b,
            "!=": a != b,
        }[op]
        if not ok:
            return False
    return True
