"""The plan as inert data: what will change, and why.

A :class:`Plan` holds one :class:`ResourceChange` per resource instance the
run looked at (no-ops included, so renderers can count them), sorted by
address. A change's ``reasons`` are for people: the apply never decides
anything from them. Values in ``before``/``after`` may hold ``UNKNOWN``
(known after apply) and :class:`~kplan.values.Secret` (sensitive); renderers
must print those as ``(known after apply)`` and ``(sensitive)``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kplan.addrs import ResourceAddr
from kplan.provider_api import DESTROY_BEFORE_CREATE, ReplaceOrder
from kplan.values import Path, secret_paths, unknown_paths

__all__ = [
    "Action",
    "OutputChange",
    "Plan",
    "PlanMode",
    "Reason",
    "ResourceChange",
    "Roll",
]


class Action(enum.Enum):
    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    RESTART = "restart"
    REPLACE = "replace"
    DELETE = "delete"

    @property
    def is_change(self) -> bool:
        return self is not Action.NOOP


class PlanMode(enum.Enum):
    NORMAL = "normal"
    DESTROY = "destroy"
    REFRESH_ONLY = "refresh-only"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an action is planned.

    kind is one of: ``attribute`` (a value differs; ``path`` names it),
    ``trigger`` (restart_on / replace_on / keepers), ``drift`` (changed outside
    kplan), ``requested`` (``-replace``), ``orphan`` (no longer in the
    configuration), ``destroy`` (a destroy plan), ``new`` (not in state yet),
    ``unknown`` (only values known after apply differ), ``source`` (not a cause:
    where a changed value comes from, e.g. the override file that set a config key).
    """

    kind: str
    message: str
    path: Path = ()


@dataclass(frozen=True, slots=True)
class ResourceChange:
    addr: ResourceAddr
    provider: str
    action: Action
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reasons: tuple[Reason, ...] = ()
    # Instances this one depends on (from references and depends_on).
    depends_on: tuple[ResourceAddr, ...] = ()
    host: str | None = None
    # Attribute paths whose change forces the replace.
    replace_paths: tuple[Path, ...] = ()
    # Attributes compared through what they feed (a template through the rendered
    # content): never a reason, and not shown in the diff (the result is).
    inputs: tuple[str, ...] = ()
    # A replace: the order the resource type's schema declares (create_before_destroy
    # or destroy_before_create); the planner copies it from the schema.
    replace_order: ReplaceOrder = DESTROY_BEFORE_CREATE

    @property
    def address(self) -> str:
        return str(self.addr)

    @property
    def after_unknown(self) -> list[Path]:
        return unknown_paths(self.after) if self.after is not None else []

    @property
    def before_sensitive(self) -> list[Path]:
        return secret_paths(self.before) if self.before is not None else []

    @property
    def after_sensitive(self) -> list[Path]:
        return secret_paths(self.after) if self.after is not None else []


@dataclass(frozen=True, slots=True)
class OutputChange:
    name: str
    action: Action
    before: Any
    after: Any
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Roll:
    """A resource block whose changes roll: batch after batch, in this order.

    ``serial`` is as written (``1``, ``"30%"``); ``batches`` hold the addresses of
    the block's changed instances (deletes excepted), each batch finished — its
    health gates passed — before the next starts. Apply follows these batches.
    """

    resource: str  # the block's address, e.g. module.db.docker_container.mariadb
    serial: int | str
    batches: tuple[tuple[ResourceAddr, ...], ...]


@dataclass(frozen=True, slots=True)
class PlanSummary:
    add: int = 0
    change: int = 0
    restart: int = 0
    destroy: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.restart or self.destroy)


@dataclass(frozen=True)
class Plan:
    changes: tuple[ResourceChange, ...]
    outputs: tuple[OutputChange, ...] = ()
    # Objects that changed outside kplan since the last apply (refresh), as
    # changes from the recorded to the real state; shown before the plan.
    drift: tuple[ResourceChange, ...] = ()
    mode: PlanMode = PlanMode.NORMAL
    workspace: str = "default"
    lineage: str = ""
    serial: int = 0
    # sha256 of the configuration files and the variable values.
    input_checksum: str = ""
    variables: Mapping[str, Any] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    kplan_version: str = ""
    # Blocks whose changes roll in batches (lifecycle ``rolling``), by address.
    rolls: tuple[Roll, ...] = ()

    def summary(self) -> PlanSummary:
        add = change = restart = destroy = 0
        for c in self.changes:
            if c.action is Action.CREATE:
                add += 1
            elif c.action is Action.UPDATE:
                change += 1
            elif c.action is Action.RESTART:
                restart += 1
            elif c.action is Action.REPLACE:
                add += 1
                destroy += 1
            elif c.action is Action.DELETE:
                destroy += 1
        return PlanSummary(add, change, restart, destroy)

    @property
    def has_changes(self) -> bool:
        if self.mode is PlanMode.REFRESH_ONLY:
            return bool(self.drift)  # applying it records what refresh found
        return self.summary().has_changes or any(o.action.is_change for o in self.outputs)
