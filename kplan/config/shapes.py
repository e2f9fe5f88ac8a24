"""The shapes of configuration blocks, checked strictly, errors placed in the file.

Each block (a variable, a host, a module call, an output, a resource's
lifecycle, the ``kplan`` settings) is a dataclass whose annotations are its
shape: :func:`check` validates raw YAML data against one -- unknown keys
refused, types strict (``"22"`` is not a port, ``1`` is not ``true``) -- and
turns every problem into a :class:`Diagnostic` at the file, line and column
of the offending node: the problem's path, relative to the block, is looked
up in the block's position maps. Also here: the small version-constraint
check for ``kplan.required_version``.

The checker is this module's own, not pydantic: importing pydantic and
building its models took 0.1 s of every kplan command's start, for nine
small blocks.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar, cast

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


@dataclass(frozen=True)
class _Range:
    """``Annotated[int, _Range(lo, hi)]``: a whole number from lo to hi."""

    lo: int
    hi: int


@dataclass(frozen=True)
class _Serial:
    """``Annotated[Any, _Serial()]``: rolling's serial, a count or a percentage."""


@dataclass
class _Shape:
    """A block's fields; subclasses are dataclasses with the block's attributes."""

    #: Keys beyond the fields are kept (in ``extra``) instead of refused.
    EXTRA: ClassVar[bool] = False

    @classmethod
    def fields(cls) -> list[str]:
        """The block's attribute names, in their order."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    def as_dict(self) -> dict[str, Any]:
        """The fields and (for a block that keeps them) the extra keys, as plain data."""
        out = {name: getattr(self, name) for name in self.fields()}
        out.update(getattr(self, "extra", {}))
        return out


@dataclass
class ValidationBlock(_Shape):
    condition: str
    error_message: str


@dataclass
class VariableBlock(_Shape):
    type: str = "any"
    default: Any = MISSING
    description: str = ""
    sensitive: bool = False
    validation: Any = None  # one mapping or a list of them; checked item by item


@dataclass
class HostBlock(_Shape):
    address: str | None = None
    groups: list[str] = field(default_factory=list)
    connection: Literal["ssh", "local"] = "ssh"
    user: str | None = None
    port: Annotated[int, _Range(1, 65535)] = 22
    # The private key to log in with, and the known_hosts file its host key is
    # checked against (paths; ~ expanded, relative to the root module).
    ssh_key: str | None = None
    known_hosts: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModuleBlock(_Shape):
    source: str
    inputs: dict[str, Any] = field(default_factory=dict)
    hosts: Any = None
    for_each: Any = None
    count: Any = None
    depends_on: list[str] = field(default_factory=list)


@dataclass
class OutputBlock(_Shape):
    value: Any
    description: str = ""
    sensitive: bool = False
    depends_on: list[str] = field(default_factory=list)


_PERCENT = re.compile(r"\s*(\d+)\s*%\s*\Z")
_SERIAL = 'a whole number ≥ 1, or a percentage from "1%" to "100%"'


@dataclass
class RollingBlock(_Shape):
    """``rolling: {serial: N}``: change N instances (or "P%" of them) at a time."""

    serial: Annotated[Any, _Serial()]


@dataclass
class LifecycleBlock(_Shape):
    prevent_destroy: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replace_on: list[str] = field(default_factory=list)
    restart_on: list[str] = field(default_factory=list)
    rolling: RollingBlock | None = None


@dataclass
class BackendBlock(_Shape):
    EXTRA: ClassVar[bool] = True
    type: Literal["sqlite", "postgresql"]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
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


Block = TypeVar("Block", bound=_Shape)


@dataclass(frozen=True)
class _Problem:
    loc: Path  # relative to the block
    kind: str  # "missing", "extra" or "type"
    want: str = ""  # for "type": what was expected
    value: Any = None
    allowed: tuple[str, ...] = ()  # for "extra": the block's attribute names


class _Checker:
    """One block's data against its class: the checked value, problems collected."""

    def __init__(self) -> None:
        self.problems: list[_Problem] = []

    def block(self, cls: type[_Shape], data: dict[Any, Any], loc: Path) -> _Shape | None:
        hints = _hints(cls)
        names = cls.fields()
        values: dict[str, Any] = {}
        before = len(self.problems)
        for name in names:
            if name in data:
                values[name] = self.value(hints[name], data[name], (*loc, name))
            elif _required(cls, name):
                self.problems.append(_Problem((*loc, name), "missing"))
        extra = {}
        for key, value in data.items():
            if key in names:
                continue
            if not isinstance(key, str):
                self.problems.append(_Problem((*loc, key), "type", "a string key", key))
            elif cls.EXTRA:
                extra[key] = value
            else:
                allowed = tuple(sorted(names))
                self.problems.append(_Problem((*loc, key), "extra", allowed=allowed))
        if len(self.problems) > before:
            return None
        if cls.EXTRA:
            values["extra"] = extra
        return cls(**values)

    def value(self, hint: Any, value: Any, loc: Path) -> Any:
        origin = typing.get_origin(hint)
        if hint is Any:
            return value
        if origin is Annotated:
            base, mark = typing.get_args(hint)[:2]
            if isinstance(mark, _Serial):
                return self._serial(value, loc)
            checked = self.value(base, value, loc)
            if isinstance(mark, _Range) and type(checked) is int:
                if checked < mark.lo:
                    return self._bad(loc, f"greater than or equal to {mark.lo}", value)
                if checked > mark.hi:
                    return self._bad(loc, f"less than or equal to {mark.hi}", value)
            return checked
        if origin in (types.UnionType, typing.Union):  # X | None
            if value is None:
                return None
            (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
            return self.value(inner, value, loc)
        if origin is Literal:
            allowed = typing.get_args(hint)
            if isinstance(value, str) and value in allowed:
                return value
            return self._bad(loc, _one_of(allowed), value)
        if origin is list:
            if not isinstance(value, list):
                return self._bad(loc, "a list", value)
            (item,) = typing.get_args(hint)
            return [self.value(item, v, (*loc, i)) for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                return self._bad(loc, "a mapping", value)
            for key in value:
                if not isinstance(key, str):
                    self._bad((*loc, key), "a string key", key)
            return dict(value)
        if isinstance(hint, type) and issubclass(hint, _Shape):
            if not isinstance(value, dict):
                return self._bad(loc, "a mapping", value)
            return self.block(hint, value, loc)
        want, ok = _SCALARS[hint]
        return value if ok(value) else self._bad(loc, want, value)

    def _serial(self, value: Any, loc: Path) -> Any:
        if type(value) is int and value >= 1:
            return value
        m = _PERCENT.match(value) if isinstance(value, str) else None
        if m is not None and 1 <= int(m.group(1)) <= 100:
            return f"{int(m.group(1))}%"
        return self._bad(loc, _SERIAL, value)

    def _bad(self, loc: Path, want: str, value: Any) -> None:
        self.problems.append(_Problem(loc, "type", want, value))


# Strict: a string is not a number, a number is not a bool (nor a bool a number).
_SCALARS: dict[Any, tuple[str, Any]] = {
    str: ("a string", lambda v: isinstance(v, str)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("a whole number", lambda v: type(v) is int),
}

_HINTS: dict[type[_Shape], dict[str, Any]] = {}


def _hints(cls: type[_Shape]) -> dict[str, Any]:
    """The class's resolved annotations (worked out once per class)."""
    found = _HINTS.get(cls)
    if found is None:
        found = typing.get_type_hints(cls, include_extras=True)
        _HINTS[cls] = found
    return found


def _required(cls: type[_Shape], name: str) -> bool:
    f = cls.__dataclass_fields__[name]
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _one_of(allowed: tuple[Any, ...]) -> str:
    quoted = [repr(a) for a in allowed]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


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
    checker = _Checker()
    block = checker.block(model, data, ())
    for problem in checker.problems:
        loc = problem.loc
        if problem.kind == "extra":
            fields = list(problem.allowed)
            hint = did_you_mean(str(loc[-1]), fields)
            message = f"unknown attribute; {hint}expected one of: {', '.join(fields)}"
            pos = where.key_at(loc)
        elif problem.kind == "missing":
            message = "required attribute is missing"
            pos = where.value_at(loc[:-1])
        else:
            message = f"expected {problem.want}, got {describe_value(problem.value)}"
            pos = where.value_at(loc)
        diags.error(
            f"{format_path(where.label, loc)}: {message}", pos=pos, code="invalid-attribute"
        )
    # checker.block made an instance of ``model`` itself: the type is the caller's.
    return cast(Block, block) if not checker.problems else None


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
