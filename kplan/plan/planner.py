"""Diff the desired configuration against state: build a :class:`Plan`.

The steps: refresh what state records (one batched ``read`` per resource
type), walk the configuration graph asking each provider to plan each
instance, decide the action and its reasons, then plan the deletion of
whatever state holds that the configuration no longer has. Nothing here
changes a host or the state.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kplan.addrs import Key, ModuleAddr, ResourceAddr, ResourceConfigAddr, Target, parse_resource
from kplan.config.model import Resource
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError, did_you_mean
from kplan.graph.builder import ConfigGraph, Node
from kplan.graph.evaluate import Evaluator, Instance, collect
from kplan.plan.decide import InstancePlanner, Selection, node_matches
from kplan.plan.model import Action, OutputChange, Plan, PlanMode, ResourceChange
from kplan.plan.refresh import refresh
from kplan.plan.rolling import plan_rolls
from kplan.plugins import ProviderRegistry
from kplan.state.records import ResourceRecord
from kplan.values import UNKNOWN

__all__ = ["PlanOptions", "RecordLoader", "make_plan"]


class RecordLoader(Protocol):
    """What state records, read for a plan: every row, or what a targeted plan needs."""

    def __call__(
        self,
        blocks: set[tuple[str, ...]] | None,
        hosts: set[str] | None,
        modules: Mapping[str, set[tuple[str, ...]] | None] | None = None,
    ) -> Mapping[str, ResourceRecord]:
        """The rows of ``blocks`` ((type, name) pairs, in any module; None: all) and,
        with ``modules`` (module instance → blocks), the rows of those blocks inside
        each module instance (None: every row inside it); with ``hosts``, of those
        rows only the ones on those hosts or on none."""
        ...


@dataclass(frozen=True)
class PlanOptions:
    mode: PlanMode = PlanMode.NORMAL
    refresh: bool = True
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    parallelism: int = 10


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is computed from, besides the configuration graph."""

    cg: ConfigGraph
    root_dir: str
    variables: Mapping[str, Any]
    # What state records; a callable is asked for only the blocks a targeted plan
    # looks at ((type, name) pairs), or for everything (None).
    records: Mapping[str, ResourceRecord] | RecordLoader
    outputs: Mapping[str, Any]
    registry: ProviderRegistry
    workspace: str
    lineage: str
    serial: int
    input_checksum: str
    # One record by address, for instances a targeted plan leaves out.
    get_record: Callable[[str], ResourceRecord | None] | None = None


_EACH_KEY = re.compile(r"^\$\{\s*each\.key\s*\}$")


class _Recorded(Mapping[str, Any]):
    """The recorded attributes of an instance a targeted plan left out, read when used."""

    def __init__(self, get: Callable[[str], ResourceRecord | None], address: str) -> None:
        self._get, self._address = get, address
        self._attrs: Mapping[str, Any] | None = None

    def _load(self) -> Mapping[str, Any]:
        if self._attrs is None:
            rec = self._get(self._address)
            self._attrs = rec.attributes if rec is not None else {}
        return self._attrs

    def __getitem__(self, key: str) -> Any:
        attrs = self._load()
        return attrs.get(key, UNKNOWN)  # not in state: not known yet

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


class _PlanHandler:
    def __init__(
        self, planner: InstancePlanner, get_record: Callable[[str], ResourceRecord | None] | None
    ) -> None:
        self.planner = planner
        self.get_record = get_record
        self.changes: dict[ResourceAddr, ResourceChange] = {}

    def wanted_keys(self, addr: ResourceConfigAddr, resource: Resource) -> set[Key] | None:
        """With only host:NAME targets, a block whose host is each.key needs only those keys."""
        sel = self.planner.selection
        if self.get_record is None or not sel.host_targets or sel.targets:
            return None
        if sel.excludes or sel.host_excludes or resource.for_each is None:
            return None
        if not isinstance(resource.host, str) or not _EACH_KEY.match(resource.host):
            return None
        return set(sel.host_targets)

    def wanted_module_keys(self, parent: ModuleAddr, name: str) -> set[Key] | None:
        """The instances of module call ``name`` (in ``parent``) a focused plan needs."""
        focus = self.planner.selection.focus
        if not focus:
            return None
        depth = len(parent.steps)
        keys: set[Key] = set()
        for f in focus:  # every target must go through this very call, or all are needed
            if len(f.steps) <= depth or f.steps[:depth] != parent.steps:
                return None
            if f.steps[depth].name != name:
                return None
            keys.add(f.steps[depth].key)
        return keys

    def deferred(self, addr: ResourceAddr) -> Any:
        rec = self.planner.records.get(str(addr))
        if rec is not None:
            return rec.attributes
        assert self.get_record is not None
        return _Recorded(self.get_record, str(addr))

    def resource(
        self, addr: ResourceConfigAddr, instances: list[Instance]
    ) -> Mapping[ResourceAddr, Any]:
        values: dict[ResourceAddr, Any] = {}
        for inst in instances:
            change, value = self.planner.plan_instance(inst)
            if change is not None:
                self.changes[inst.addr] = change
            values[inst.addr] = value
        return values


def _load(inputs: PlanInputs, selection: Selection, mode: PlanMode) -> dict[str, ResourceRecord]:
    if not callable(inputs.records):
        return dict(inputs.records)
    scope = selection.scope_nodes
    if scope is None or mode is not PlanMode.NORMAL:
        return dict(inputs.records(None, None))  # a destroy must see what depends on it
    if selection.focus:
        outside, inside = _focused_rows(selection, scope)
        return dict(inputs.records(outside, None, inside))
    # A target selects directly what state records even once its block (or module) is
    # gone from the configuration, to be deleted: read those rows too. A module target
    # may name blocks only state knows: all rows.
    if any(isinstance(t.addr, ModuleAddr) for t in selection.targets):
        return dict(inputs.records(None, None))
    blocks = {tuple(n.name.split(".", 1)) for n in scope if n.kind == "resource"}
    blocks |= {
        (t.addr.type, t.addr.name) for t in selection.targets if not isinstance(t.addr, ModuleAddr)
    }
    only_hosts = selection.host_targets and not selection.targets and inputs.get_record
    return dict(inputs.records(blocks, set(selection.host_targets) if only_hosts else None))


def _focused_rows(
    selection: Selection, scope: set[Node]
) -> tuple[set[tuple[str, ...]], dict[str, set[tuple[str, ...]] | None]]:
    """What a plan focused on module instances reads: of each instance, the blocks
    it evaluates there, or every row when the target is the instance itself (blocks
    only the state still knows, to delete); outside them, the blocks it evaluates.

    Every row read is refreshed: reading a focused instance whole for a target on
    one resource in it refreshed its siblings too (keystone's objects, for a
    targeted apply of its database grant while keystone could not answer).
    """
    assert selection.focus is not None
    paths = {str(f): tuple(s.name for s in f.steps) for f in selection.focus}
    whole = {str(t.addr) for t in selection.targets if isinstance(t.addr, ModuleAddr)}
    outside: set[tuple[str, ...]] = set()
    inside: dict[str, set[tuple[str, ...]] | None] = {
        m: None if m in whole else set() for m in paths
    }
    # The instances on the way to the focus (the same for every focused instance:
    # _module_focus), the root ("") first: of those only the one instance is evaluated.
    way = selection.focus[0].steps[:-1]
    ancestors = {
        tuple(s.name for s in way[:i]): str(ModuleAddr(way[:i])) for i in range(len(way) + 1)
    }
    for n in scope:
        if n.kind != "resource":
            continue
        block = tuple(n.name.split(".", 1))
        within = [m for m, p in paths.items() if n.module[: len(p)] == p]
        if not within and n.module in ancestors:
            within = [ancestors[n.module]]
            inside.setdefault(within[0], set())
        if not within:
            outside.add(block)
        for m in within:
            wanted = inside[m]
            if wanted is not None:
                wanted.add(block)
    for t in selection.targets:  # a resource target only the state knows, to delete
        if isinstance(t.addr, ModuleAddr):
            continue
        m = str(t.addr.module)
        wanted = inside.get(m)
        if wanted is not None:
            wanted.add((t.addr.type, t.addr.name))
    return outside, inside


def make_plan(inputs: PlanInputs, options: PlanOptions) -> tuple[Plan, Diagnostics]:
    selection = Selection.parse(options.targets, options.excludes, inputs.cg)
    # The records live as long as the plan: keep the collector from rescanning them
    # on every collection while the plan is made (a fifth of a large plan's time).
    # Frozen before the collector runs again: the first collection after a large
    # load would otherwise walk every record once more (0.1 s at 100,000).
    enabled = gc.isenabled()
    gc.disable()
    try:
        recorded = _load(inputs, selection, options.mode)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
    try:
        plan, diags = _make_plan(inputs, options, selection, recorded)
    finally:
        gc.unfreeze()
    if not diags.has_errors:
        diags.extend(_unmatched_selectors(inputs, selection))
    return plan, diags


def _unmatched_selectors(inputs: PlanInputs, selection: Selection) -> list[Diagnostic]:
    """A warning for each -target / -exclude that names no block of the configuration
    and nothing in the state: most likely a typo, which would otherwise plan nothing
    (or exclude nothing) without a word."""
    if not selection.targets and not selection.excludes:
        return []
    blocks = [n for n in inputs.cg.graph.nodes if n.kind == "resource"]
    known = {"".join(f"module.{m}." for m in n.module) + n.name for n in blocks}
    known |= {"module." + ".module.".join(n.module) for n in blocks if n.module}
    out: list[Diagnostic] = []
    for flag, selectors in (("-target", selection.targets), ("-exclude", selection.excludes)):
        for t in selectors:
            if any(node_matches(t, n) for n in blocks) or _in_state(inputs, t):
                continue
            what = "selects" if flag == "-target" else "keeps out"
            out.append(
                Diagnostic.warning(
                    f"{flag} {t} matches nothing in the configuration or the state",
                    f"so it {what} nothing; {did_you_mean(str(t), sorted(known))}".strip(" ;"),
                    code="unmatched-target",
                )
            )
    return out


def _in_state(inputs: PlanInputs, t: Target) -> bool:
    if not callable(inputs.records):
        records: Mapping[str, ResourceRecord] = inputs.records
    elif isinstance(t.addr, ModuleAddr):
        records = inputs.records(None, None)
    else:
        records = inputs.records({(t.addr.type, t.addr.name)}, None)
    return any(t.matches(parse_resource(a)) for a in records)


def _make_plan(
    inputs: PlanInputs,
    options: PlanOptions,
    selection: Selection,
    recorded: dict[str, ResourceRecord],
) -> tuple[Plan, Diagnostics]:
    diags = Diagnostics()
    records = dict(recorded)
    drift: list[ResourceChange] = []
    if options.refresh and records:
        # An excluded host is not read either: -exclude host:NAME is how a plan goes
        # ahead while that host is down.
        skipped: dict[str, ResourceRecord] = {}
        fresh = records
        if selection.host_excludes:
            skipped = {a: r for a, r in records.items() if r.host in selection.host_excludes}
            fresh = {a: r for a, r in records.items() if a not in skipped}
        records, drift, rdiags = refresh(fresh, inputs.registry)
        records.update(skipped)
        diags.extend(rdiags)
        if diags.has_errors:
            return _empty(inputs, options), diags
    replace = {str(parse_resource(r)) for r in options.replace}
    planner = InstancePlanner(inputs.registry, records, recorded, selection, replace, options.mode)
    handler = _PlanHandler(planner, inputs.get_record)
    changes: dict[ResourceAddr, ResourceChange] = {}
    outputs: tuple[OutputChange, ...] = ()
    if options.mode is PlanMode.NORMAL:
        ev = Evaluator(inputs.cg, inputs.variables, handler, root_dir=inputs.root_dir)
        diags.extend(collect(ev.run(parallelism=1, only=selection.scope_nodes)))
        if diags.has_errors:
            return _empty(inputs, options), diags
        changes = handler.changes
        if not (options.targets or options.excludes):  # else some configs are not looked at
            diags.extend(ev.override_reads.unused())
        for addr, change in planner.orphans(ev.seen).items():
            changes[addr] = change
        if selection.scope_nodes is None:  # a targeted plan leaves outputs as they are
            outputs = _output_changes(inputs.outputs, ev.outputs)
    elif options.mode is PlanMode.DESTROY:
        changes = planner.destroy_all()
        planner.prevent_destroy.update(a for a in changes if _prevents_destroy(inputs.cg, a))
        outputs = _destroyed_outputs(inputs, changes, bool(options.targets or options.excludes))
    try:
        planner.check_prevent_destroy(changes.values())
    except KplanError as exc:
        diags.extend(exc.diagnostics)
        return _empty(inputs, options), diags
    plan = Plan(
        changes=tuple(sorted(changes.values(), key=lambda c: c.addr.sort_key())),
        outputs=outputs,
        drift=tuple(sorted(drift, key=lambda c: c.addr.sort_key())),
        mode=options.mode,
        workspace=inputs.workspace,
        lineage=inputs.lineage,
        serial=inputs.serial,
        input_checksum=inputs.input_checksum,
        variables=dict(inputs.variables),
        targets=options.targets,
        excludes=options.excludes,
        kplan_version=_version(),
        rolls=plan_rolls(changes.values(), lambda a: _rolling(inputs.cg, a)),
    )
    return plan, diags


def _empty(inputs: PlanInputs, options: PlanOptions) -> Plan:
    return Plan(changes=(), mode=options.mode, workspace=inputs.workspace)


def _output_changes(
    before: Mapping[str, Any], after: Mapping[str, tuple[Any, bool]]
) -> tuple[OutputChange, ...]:
    out: list[OutputChange] = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            out.append(OutputChange(name, Action.DELETE, before[name], None, False))
            continue
        value, sensitive = after[name]
        if name not in before:
            action = Action.CREATE
        elif value is UNKNOWN or before[name] != value:
            action = Action.UPDATE
        else:
            action = Action.NOOP
        out.append(OutputChange(name, action, before.get(name), value, sensitive))
    return tuple(out)


def _destroyed_outputs(
    inputs: PlanInputs, changes: Mapping[ResourceAddr, ResourceChange], partial: bool
) -> tuple[OutputChange, ...]:
    """A destroy deletes every output; a targeted one only those that read what it destroys."""
    names = sorted(inputs.outputs)
    if partial:
        gone = {(tuple(s.name for s in a.module.steps), f"{a.type}.{a.name}") for a in changes}
        g = inputs.cg.graph

        def reads_gone(name: str) -> bool:
            # Through locals, module calls and outputs; a resource that stays ends the path.
            stack, seen = [Node((), "output", name)], set[Node]()
            while stack:
                node = stack.pop()
                if node in seen or node not in g:
                    continue
                seen.add(node)
                if node.kind == "resource":
                    if (node.module, node.name) in gone:
                        return True
                    continue
                stack.extend(g.dependencies(node))
            return False

        names = [n for n in names if reads_gone(n)]
    return tuple(OutputChange(n, Action.DELETE, inputs.outputs[n], None, False) for n in names)


def _block(cg: ConfigGraph, addr: ResourceAddr) -> Resource | None:
    """The resource block an instance comes from (None: only state knows it)."""
    cfg = cg.modules.get(tuple(s.name for s in addr.module.steps))
    return cfg.resources.get((addr.type, addr.name)) if cfg else None


def _prevents_destroy(cg: ConfigGraph, addr: ResourceAddr) -> bool:
    res = _block(cg, addr)
    return bool(res and res.lifecycle.prevent_destroy)


def _rolling(cg: ConfigGraph, addr: ResourceAddr) -> Mapping[str, Any] | None:
    res = _block(cg, addr)
    return res.lifecycle.rolling if res else None


def _version() -> str:
    from kplan import __version__

    return __version__
