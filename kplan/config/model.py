"""The loaded configuration: one :class:`ModuleConfig` per module folder.

Values written by the user are kept raw — plain YAML data whose strings may
hold ``${ expr }`` — together with the position of every node
(:class:`Positions`), so that evaluation errors can name file, line and
column. Nothing here is evaluated yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kplan.diagnostics import SourcePos
from kplan.values import Path

__all__ = [
    "MISSING",
    "Host",
    "Lifecycle",
    "Local",
    "ModuleCall",
    "ModuleConfig",
    "Output",
    "Positions",
    "Resource",
    "Settings",
    "Validation",
    "Variable",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A variable without a default.
MISSING: Any = _Missing()


@dataclass(frozen=True)
class Positions:
    """Where each node of a raw value was written.

    ``at(path)`` returns the position of the node at ``path`` (keys and list
    indexes relative to the value), falling back to the nearest ancestor.
    """

    base: SourcePos
    nodes: Mapping[Path, SourcePos] = field(default_factory=dict)
    # sub() results, asked for once per instance of a block: kept.
    _subs: dict[str | int, Positions] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def at(self, path: Path = ()) -> SourcePos:
        p = tuple(path)
        while p:
            pos = self.nodes.get(p)
            if pos is not None:
                return pos
            p = p[:-1]
        return self.nodes.get((), self.base)

    def sub(self, key: str | int) -> Positions:
        """Positions of a child node, with paths relative to it."""
        found = self._subs.get(key)
        if found is None:
            nodes = {p[1:]: pos for p, pos in self.nodes.items() if p[:1] == (key,)}
            found = self._subs[key] = Positions(self.at((key,)), nodes)
        return found


@dataclass(frozen=True)
class Validation:
    condition: str  # an expression string, usually "${ ... }", over var.NAME
    error_message: str
    pos: SourcePos


@dataclass(frozen=True)
class Variable:
    name: str
    type: str  # as written: "string", "list(string)", "map(number)", "object({a=string})", "any"
    default: Any  # MISSING when required
    description: str
    sensitive: bool
    validations: tuple[Validation, ...]
    pos: SourcePos

    @property
    def required(self) -> bool:
        return self.default is MISSING


@dataclass(frozen=True)
class Local:
    name: str
    value: Any  # raw
    pos: Positions


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    groups: tuple[str, ...]
    connection: str  # "ssh" | "local"
    user: str | None
    port: int
    vars: Mapping[str, Any]
    pos: SourcePos
    ssh_key: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True)
class Lifecycle:
    prevent_destroy: bool = False
    ignore_changes: tuple[str, ...] = ()
    # Each entry is a reference written without ${}: "local_file.conf" or
    # "local_file.conf.content" or "secret_password.db".
    replace_on: tuple[str, ...] = ()
    restart_on: tuple[str, ...] = ()
    # rolling: {"serial": N or "P%"}, checked at load (N ≥ 1, P from 1 to 100); the
    # plan cuts the block's changes into batches (kplan/plan/rolling.py).
    rolling: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    # Provider attributes, raw; meta-arguments are taken out.
    config: Mapping[str, Any]
    for_each: Any  # raw or None
    count: Any  # raw or None
    depends_on: tuple[str, ...]  # references written without ${}
    host: Any  # raw or None: the host this instance runs on
    lifecycle: Lifecycle
    pos: SourcePos  # of the "TYPE.NAME" key
    # Positions of the whole block; paths are relative to the block mapping
    # (so config["content"] is at ("content",)).
    positions: Positions


@dataclass(frozen=True)
class ModuleCall:
    name: str
    source: str  # as written
    inputs: Mapping[str, Any]  # raw
    hosts: Any  # raw or None
    for_each: Any
    count: Any
    depends_on: tuple[str, ...]
    pos: SourcePos
    positions: Positions  # relative to the call's mapping
    module: ModuleConfig  # the loaded child


@dataclass(frozen=True)
class Output:
    name: str
    value: Any  # raw
    description: str
    sensitive: bool
    pos: Positions  # relative to the output mapping (value at ("value",))
    # What a caller using the output waits for beyond what its value refers to
    # (a service's URL is usable once its container runs, not once it is known).
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    required_version: str | None = None
    backend: Mapping[str, Any] | None = None  # {"type": "sqlite", "path": ...}
    pos: SourcePos | None = None


@dataclass(frozen=True)
class ModuleConfig:
    dir: str  # absolute path of the module folder
    files: tuple[str, ...]  # the *.kp.yaml files, sorted (paths as shown in errors)
    settings: Settings
    variables: Mapping[str, Variable]
    locals: Mapping[str, Local]
    hosts: Mapping[str, Host]  # root module only
    groups: Mapping[str, tuple[str, ...]]  # group → host names (from hosts' groups and `groups:`)
    modules: Mapping[str, ModuleCall]
    resources: Mapping[tuple[str, str], Resource]  # (type, name) →
    outputs: Mapping[str, Output]
