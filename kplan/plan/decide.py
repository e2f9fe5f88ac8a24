"""Decide one instance's action and its reasons; which instances a run selects.

:class:`InstancePlanner` asks the provider for the planned state of one
instance and turns the difference from the prior state into an
:class:`~kplan.plan.model.Action` with reasons people can read: the
attributes that differ, drift, ``-replace``, and ``restart_on`` /
``replace_on`` triggers. :class:`Selection` implements ``-target`` and
``-exclude``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kplan.addrs import (
    AddressError,
    Key,
    ModuleAddr,
    ResourceAddr,
    ResourceConfigAddr,
    Target,
    TriggerRef,
    parse_resource,
)
from kplan.config.model import Resource
from kplan.config.resource_blocks import invalid_trigger
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.graph.builder import ConfigGraph, Node
from kplan.graph.evaluate import Instance
from kplan.plan.model import Action, PlanMode, Reason, ResourceChange
from kplan.plugins import ProviderRegistry
from kplan.provider_api import (
    DESTROY_BEFORE_CREATE,
    PlanRequest,
    PlanResponse,
    Provider,
    ResourceSchema,
    ValidateRequest,
)
from kplan.state.records import ResourceRecord
from kplan.values import UNKNOWN, Secret

__all__ = ["InstancePlanner", "Selection", "fresh_computed", "node_matches", "placed"]

_CHANGED = (Action.CREATE, Action.UPDATE, Action.REPLACE)
# The response standing for a provider that was not asked (the instance is unchanged):
# nothing forces a replace, no drift. Only those fields are read; one for all instances.
_NOT_ASKED = PlanResponse(planned={})


@dataclass
class Selection:
    """``-target`` and ``-exclude``: which instances this run may change."""

    targets: list[Target] = field(default_factory=list)
    host_targets: list[str] = field(default_factory=list)
    excludes: list[Target] = field(default_factory=list)
    host_excludes: list[str] = field(default_factory=list)
    # Resource blocks some target depends on: all their instances are included.
    dep_nodes: set[tuple[tuple[str, ...], str]] = field(default_factory=set)
    # The same for host selectors: only instances on that host, or on none.
    host_dep_nodes: set[tuple[tuple[str, ...], str]] = field(default_factory=set)
    excluded: set[ResourceAddr] = field(default_factory=set)
    # With targets: the configuration nodes a targeted plan evaluates (None: all).
    scope_nodes: set[Node] | None = None
    # The module instances every target lies in, each named to its key (see
    # _module_focus): a plan evaluates and reads only those of their calls.
    focus: tuple[ModuleAddr, ...] | None = None

    @classmethod
    def parse(
        cls, targets: Iterable[str], excludes: Iterable[str], cg: ConfigGraph | None
    ) -> Selection:
        sel = cls()
        for text, addrs, hosts in (
            (targets, sel.targets, sel.host_targets),
            (excludes, sel.excludes, sel.host_excludes),
        ):
            for t in text:
                if t.startswith("host:"):
                    hosts.append(t[5:])
                else:
                    try:
                        addrs.append(Target.parse(t))
                    except ValueError as exc:
                        raise KplanError(
                            Diagnostic.error(
                                f"invalid target {t!r}",
                                f"{exc}. A target is an address or a prefix of one "
                                '(module.NAME, TYPE.NAME, TYPE.NAME["KEY"]) or host:NAME',
                                code="invalid-target",
                            )
                        ) from None
        if cg is not None and (sel.targets or sel.host_targets):
            sel._dependencies(cg)
            sel.focus = _module_focus(sel, cg)
        return sel

    def _dependencies(self, cg: ConfigGraph) -> None:
        g = cg.graph
        picked: list[Node] = []
        for node in g.nodes:
            if node.kind != "resource":
                continue
            direct = any(node_matches(t, node) for t in self.targets)
            # A host selector can only pick instances of blocks that set `host`.
            on_hosts = bool(self.host_targets) and _sets_host(cg, node)
            if direct or on_hosts:
                picked.append(node)
                deps = {
                    (n.module, n.name) for n in g.ancestors([node]) - {node} if n.kind == "resource"
                }
                (self.dep_nodes if direct else self.host_dep_nodes).update(deps)
        # Only these need evaluating: the targeted blocks and what they depend on.
        self.scope_nodes = g.ancestors(picked)

    @property
    def targeted(self) -> bool:
        return bool(self.targets or self.host_targets)

    def included(
        self, addr: ResourceAddr, host: str | None, deps: Callable[[], Iterable[ResourceAddr]]
    ) -> bool:
        """Whether this run may change the instance; ``deps`` is asked only with -exclude."""
        if (self.excludes or self.host_excludes) and (
            self.is_excluded(addr, host) or not self.excluded.isdisjoint(deps())
        ):
            self.excluded.add(addr)
            return False
        if not self.targeted:
            return True
        if any(t.matches(addr) for t in self.targets) or host in self.host_targets:
            return True
        node = (tuple(s.name for s in addr.module.steps), f"{addr.type}.{addr.name}")
        if node in self.dep_nodes:
            return True
        return node in self.host_dep_nodes and host is None

    def is_excluded(self, addr: ResourceAddr, host: str | None) -> bool:
        return any(t.matches(addr) for t in self.excludes) or (
            host is not None and host in self.host_excludes
        )

    def matches_directly(self, addr: ResourceAddr, host: str | None) -> bool:
        if self.is_excluded(addr, host):
            return False
        if not self.targeted:
            return True
        return any(t.matches(addr) for t in self.targets) or host in self.host_targets


def _module_focus(sel: Selection, cg: ConfigGraph) -> tuple[ModuleAddr, ...] | None:
    """The module instances the targets lie in, when nothing else of their calls is needed.

    ``-target 'module.node["h1"]'`` (or a block inside it) plans that one instance:
    what the plan evaluates beyond it (the call's inputs, what they read) cannot
    depend on the call, or the configuration would have a cycle. So the other
    instances of ``module.node`` need no evaluating and their rows no reading
    (at 1,000 hosts, a one-host plan did both for every host). Only for targets
    alone (no host selector, no -exclude), each inside a module call of the
    configuration, every step of a for_each or count call naming its key, all in
    instances of one call reached through the same instances.
    """
    if not sel.targets or sel.host_targets or sel.excludes or sel.host_excludes:
        return None
    out: list[ModuleAddr] = []
    for t in sel.targets:
        steps = t.addr.steps if isinstance(t.addr, ModuleAddr) else t.addr.module.steps
        if not steps:
            return None
        path: tuple[str, ...] = ()
        for step in steps:
            module = cg.modules.get(path)
            call = module.modules.get(step.name) if module is not None else None
            if call is None:  # a module only the state knows: its rows are all read
                return None
            if step.key is None and (call.for_each is not None or call.count is not None):
                return None  # module.NAME of a for_each call: every instance
            path = (*path, step.name)
        out.append(ModuleAddr(steps))
    # Instances of one call, reached through the same instances: the plan evaluates
    # only those of that call and of the calls on the way, and reads their rows. Of
    # targets through different calls, each call would be evaluated whole.
    if len({(f.steps[:-1], f.steps[-1].name) for f in out}) != 1:
        return None
    return tuple(out)


def fresh_computed(planned: Mapping[str, Any], schema: ResourceSchema) -> dict[str, Any]:
    """A replacement is a new object: what the provider computes is not known yet."""
    out = dict(planned)
    for name, attr in schema.attributes.items():
        if attr.computed and not attr.optional and name in out:
            out[name] = UNKNOWN
    return out


def _unchanged(schema: ResourceSchema, prior: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Every configured attribute equals its recorded value, every omitted one its default."""
    attrs = schema.attributes
    for name, value in config.items():
        if name not in attrs or prior.get(name) != value:
            return False
    for name, attr in attrs.items():
        if name not in config and not attr.computed and prior.get(name) != attr.default:
            return False
    return True


def placed(diags: Iterable[Diagnostic], resource: Resource) -> list[Diagnostic]:
    """A provider's diagnostics at the attribute they name, or at the resource."""
    out = []
    for d in diags:
        pos = resource.positions.at(tuple(d.attribute)) if d.attribute else None
        out.append(d.with_pos(pos or resource.pos))
    return out


def _sorted_deps(deps: frozenset[ResourceAddr]) -> tuple[ResourceAddr, ...]:
    return tuple(sorted(deps, key=str)) if len(deps) > 1 else tuple(deps)


def _sets_host(cg: ConfigGraph, node: Node) -> bool:
    type_, name = node.name.split(".", 1)
    return cg.modules[node.module].resources[(type_, name)].host is not None


def node_matches(t: Target, node: Node) -> bool:
    a = t.addr
    if isinstance(a, ModuleAddr):  # a module target: every block inside it
        names = tuple(s.name for s in a.steps)
        return node.module[: len(names)] == names
    names = tuple(s.name for s in a.module.steps)
    return node.module == names and node.name == f"{a.type}.{a.name}"


def trigger_attribute_errors(res: Resource, registry: ProviderRegistry) -> list[Diagnostic]:
    """restart_on / replace_on entries naming an attribute their resource type lacks:
    such a trigger could never fire (``config.c.txet`` compares two absent values)."""
    out: list[Diagnostic] = []
    for verb, entries in (
        ("restart", res.lifecycle.restart_on),
        ("replace", res.lifecycle.replace_on),
    ):
        for i, text in enumerate(entries):
            try:
                ref = TriggerRef.parse(text)
            except AddressError:
                continue  # said by the loader
            if ref.attr is None:
                continue
            try:
                _, schema = registry.get(ref.type, res.pos)
            except KplanError:
                continue  # an unknown type is said where it is declared
            if ref.attr not in schema.attributes:
                where = f"resources.{res.type}.{res.name}.{verb}_on[{i}]"
                known = ", ".join(sorted(schema.attributes))
                why = f'{ref.type} has no attribute "{ref.attr}" (it has: {known})'
                out.append(invalid_trigger(where, text, why, res.pos))
    return out


class InstancePlanner:
    def __init__(
        self,
        registry: ProviderRegistry,
        records: Mapping[str, ResourceRecord],
        recorded: Mapping[str, ResourceRecord],
        selection: Selection,
        replace: set[str],
        mode: PlanMode,
    ) -> None:
        self.registry = registry
        self.records = records  # refreshed
        self.recorded = recorded  # as state holds them
        self.selection = selection
        self.replace = replace
        self.mode = mode
        # Changes that create, update or replace, for restart_on / replace_on lookups.
        self.changed: dict[ResourceConfigAddr, dict[Key, ResourceChange]] = defaultdict(dict)
        self.prevent_destroy: set[ResourceAddr] = set()
        # Resource blocks whose trigger attributes were checked (once a block).
        self._trigger_checked: set[int] = set()

    def plan_instance(self, inst: Instance) -> tuple[ResourceChange | None, Any]:
        """The change for one instance (None when not selected) and its value for references."""
        rec = self.records.get(str(inst.addr))
        if not self.selection.included(inst.addr, inst.host, lambda: inst.deps):
            return None, (rec.attributes if rec else UNKNOWN)
        provider, schema = self.registry.get(inst.addr.type, inst.resource.pos)
        if inst.resource.lifecycle.prevent_destroy:
            self.prevent_destroy.add(inst.addr)
        config = inst.config()
        # Not copied: the fast path below only reads it, the slow path copies what it plans.
        prior = rec.attributes if rec else None
        if prior is not None and inst.resource.lifecycle.ignore_changes:
            # As Terraform: ignored attributes keep their recorded value in the proposal.
            config = dict(config)
            for name in inst.resource.lifecycle.ignore_changes:
                if name in prior:
                    config[name] = prior[name]
        if (
            prior is not None
            and str(inst.addr) not in self.replace
            and not self._drifted(str(inst.addr), rec)
            and _unchanged(schema, prior, config)
        ):
            # The configuration is what was applied (and refresh found it real): a
            # provider plans nothing for that, so it is not asked — the hot path of
            # a large no-op plan. `planned is prior` tells _decide so.
            resp = _NOT_ASKED
            planned = prior
        else:
            req = ValidateRequest(inst.addr.type, config, str(inst.addr))
            diags = provider.validate(req).diagnostics
            self._validate(diags, inst)
            resp = self._provider_plan(provider, inst, prior, config)
            planned = self._adjust(dict(resp.planned), prior, schema, inst)
        action, reasons = self._decide(inst, schema, prior, planned, resp)
        if resp.notes and action.is_change:  # where the changed values come from
            reasons += [Reason("source", text, tuple(path)) for path, text in resp.notes]
        replace_order = DESTROY_BEFORE_CREATE
        if action is Action.REPLACE:
            planned = fresh_computed(planned, schema)
            replace_order = schema.replace_order  # the order its type declares
        change = ResourceChange(
            inst.addr,
            provider.name,
            action,
            prior,
            planned,
            tuple(reasons),
            _sorted_deps(inst.deps),
            inst.host,
            tuple(resp.requires_replace) if action is Action.REPLACE else (),
            schema.input_attributes(),
            replace_order,
        )
        if action in _CHANGED:
            self.changed[inst.addr.config][inst.addr.key] = change
        return change, planned

    def note_changed(self, change: ResourceChange) -> None:
        """Record a change made elsewhere (apply) for restart_on / replace_on lookups."""
        if change.action in _CHANGED:
            self.changed[change.addr.config][change.addr.key] = change

    def _drifted(self, addr_s: str, rec: ResourceRecord | None) -> bool:
        """Refresh changed the record: the provider must see it (drift of computed values)."""
        before = self.recorded.get(addr_s)
        return (
            rec is not None
            and before is not None
            and before is not rec
            and before.attributes != rec.attributes
        )

    def _provider_plan(
        self,
        provider: Provider,
        inst: Instance,
        prior: dict[str, Any] | None,
        config: dict[str, Any],
    ) -> PlanResponse:
        # The registry's guard turns an exception or an invalid plan into diagnostics.
        resp = provider.plan(PlanRequest(inst.addr.type, str(inst.addr), inst.host, prior, config))
        self._validate(resp.diagnostics, inst)
        return resp

    def _validate(self, diags: Sequence[Diagnostic], inst: Instance) -> None:
        if not diags:
            return  # the usual case, once or twice per instance
        out = Diagnostics(placed(diags, inst.resource))
        out.raise_if_errors()

    def _adjust(
        self,
        planned: dict[str, Any],
        prior: dict[str, Any] | None,
        schema: ResourceSchema,
        inst: Instance,
    ) -> dict[str, Any]:
        if prior is not None:
            for name in inst.resource.lifecycle.ignore_changes:
                if name in prior:
                    planned[name] = prior[name]
        for name in schema.sensitive_attributes():
            v = planned.get(name)
            if v is not None and v is not UNKNOWN and not isinstance(v, Secret):
                planned[name] = Secret(v)
        return planned

    def _decide(
        self,
        inst: Instance,
        schema: ResourceSchema,
        prior: dict[str, Any] | None,
        planned: dict[str, Any],
        resp: PlanResponse,
    ) -> tuple[Action, list[Reason]]:
        addr_s = str(inst.addr)
        if prior is None:
            if addr_s in self.recorded:
                return Action.CREATE, [Reason("drift", "deleted outside kplan")]
            return Action.CREATE, []
        replace: list[Reason] = []
        if addr_s in self.replace:
            replace.append(Reason("requested", "replacement requested with -replace"))
        forcing = {tuple(p) for p in resp.requires_replace} if resp.requires_replace else set()
        for p in sorted(forcing, key=str):
            replace.append(Reason("attribute", f"{'.'.join(map(str, p))} forces replacement", p))
        lifecycle = inst.resource.lifecycle
        if lifecycle.replace_on:
            replace += self._triggers(inst, lifecycle.replace_on, "replace")
        if not replace and planned is prior:  # the unchanged fast path: nothing differs
            changed: list[Reason] = []
        else:
            changed = self._attribute_reasons(addr_s, schema, prior, planned, forcing)
        drift = [Reason("drift", text) for text in resp.reasons] if resp.reasons else []
        if drift:  # the provider named the drift: per-attribute drift reasons would repeat it
            changed = [r for r in changed if r.kind == "attribute"]
        if replace:
            return Action.REPLACE, drift + replace + [r for r in changed if r.kind != "unknown"]
        if drift:
            return Action.UPDATE, drift + changed
        if changed:
            return Action.UPDATE, changed
        restart = (
            self._triggers(inst, lifecycle.restart_on, "restart") if lifecycle.restart_on else []
        )
        if restart:
            return (Action.RESTART if schema.restartable else Action.REPLACE), restart
        return Action.NOOP, []

    def _attribute_reasons(
        self,
        addr_s: str,
        schema: ResourceSchema,
        prior: Mapping[str, Any],
        planned: Mapping[str, Any],
        forcing: set[Any],
    ) -> list[Reason]:
        recorded = self.recorded.get(addr_s)
        before = recorded.attributes if recorded else prior
        out: list[Reason] = []
        unknown: list[str] = []
        for k in sorted(set(prior) | set(planned)):
            if (k,) in forcing or prior.get(k) == planned.get(k):
                continue
            attr = schema.attributes.get(k)
            if attr is not None and attr.compared_via:
                continue  # an input: its result (the rendered content) is what counts
            if attr is not None and attr.connection:
                continue  # how the object is reached, not the object
            if attr is not None and attr.computed and not attr.optional:
                if planned.get(k) is UNKNOWN:
                    unknown.append(k)
                continue  # a consequence of another change, not a reason
            if before.get(k) != prior.get(k) and before.get(k) == planned.get(k):
                out.append(Reason("drift", f"{k} changed outside kplan; restoring it", (k,)))
            else:
                out.append(Reason("attribute", f"{k} changed", (k,)))
        if not out:
            out = [Reason("unknown", f"{k} will be known after apply", (k,)) for k in unknown]
        return out

    def _triggers(self, inst: Instance, entries: Iterable[str], verb: str) -> list[Reason]:
        out: list[Reason] = []
        if id(inst.resource) not in self._trigger_checked:  # blocks live as long as the plan
            errors = trigger_attribute_errors(inst.resource, self.registry)
            Diagnostics(errors).raise_if_errors()
            self._trigger_checked.add(id(inst.resource))
        for i, text in enumerate(entries):
            try:
                m = TriggerRef.parse(text)
            except AddressError as exc:  # the loader refuses these; a config built in code
                res = inst.resource
                where = f"resources.{res.type}.{res.name}.{verb}_on[{i}]"
                raise KplanError(invalid_trigger(where, text, str(exc), res.pos)) from None
            key: Any = None
            if m.key is not None:
                key = inst.evaluate("${" + m.key + "}")
            cfg = ResourceConfigAddr(inst.addr.module, m.type, m.name)
            found = self.changed.get(cfg, {})
            candidates = (
                list(found.values()) if key is None else [found[key]] if key in found else []
            )
            for ch in candidates:
                attr = m.attr
                if (
                    attr is not None
                    and ch.before is not None
                    and ch.after is not None
                    and ch.before.get(attr) == ch.after.get(attr)
                ):
                    continue
                what = f"{ch.addr}.{attr}" if attr else str(ch.addr)
                out.append(Reason("trigger", f"{verb}: {what} changed"))
        return out

    # -- deletions ----------------------------------------------------------

    def orphans(self, seen: set[ResourceAddr]) -> dict[ResourceAddr, ResourceChange]:
        out: dict[ResourceAddr, ResourceChange] = {}
        seen_text = {str(a) for a in seen}
        for addr_s, rec in self.recorded.items():
            if addr_s in seen_text:
                continue
            addr = parse_resource(addr_s)
            if not self.selection.matches_directly(addr, rec.host):
                continue
            before = self.records.get(addr_s, rec).attributes
            reason = Reason("orphan", "no longer in the configuration")
            out[addr] = self._delete(addr, rec, before, (reason,))
        return out

    def destroy_all(self) -> dict[ResourceAddr, ResourceChange]:
        kept = self._kept_by_excludes()
        chosen = {
            a
            for a, r in self.recorded.items()
            if a not in kept and self.selection.matches_directly(parse_resource(a), r.host)
        }
        users: dict[str, set[str]] = defaultdict(set)
        for a, r in self.recorded.items():
            for d in r.dependencies:
                users[d].add(a)
        because: dict[str, str] = {}
        stack = sorted(chosen)
        while stack:  # what depends on a destroyed resource goes too
            dep = stack.pop()
            for u in sorted(users.get(dep, ())):
                if u not in chosen:
                    chosen.add(u)
                    because[u] = dep
                    stack.append(u)
        out: dict[ResourceAddr, ResourceChange] = {}
        for a in chosen:
            rec = self.recorded[a]
            addr = parse_resource(a)
            reasons = (
                (Reason("destroy", f"depends on {because[a]}, which will be destroyed"),)
                if a in because
                else ()
            )
            out[addr] = self._delete(addr, rec, rec.attributes, reasons)
        return out

    def _kept_by_excludes(self) -> set[str]:
        """What -exclude keeps from a destroy: the excluded and all they depend on."""
        sel = self.selection
        if not (sel.excludes or sel.host_excludes):
            return set()
        stack = [a for a, r in self.recorded.items() if sel.is_excluded(parse_resource(a), r.host)]
        kept = set(stack)
        while stack:
            for dep in self.recorded[stack.pop()].dependencies:
                if dep in self.recorded and dep not in kept:
                    kept.add(dep)
                    stack.append(dep)
        return kept

    def _delete(
        self,
        addr: ResourceAddr,
        rec: ResourceRecord,
        before: Mapping[str, Any],
        reasons: tuple[Reason, ...],
    ) -> ResourceChange:
        deps = tuple(
            sorted((parse_resource(d) for d in rec.dependencies), key=lambda a: a.sort_key())
        )
        return ResourceChange(
            addr, rec.provider, Action.DELETE, before, None, reasons, deps, rec.host
        )

    def check_prevent_destroy(self, changes: Iterable[ResourceChange]) -> None:
        diags = Diagnostics()
        for ch in changes:
            if ch.action in (Action.DELETE, Action.REPLACE) and ch.addr in self.prevent_destroy:
                diags.error(
                    f"{ch.addr} has prevent_destroy set, but the plan would destroy it",
                    "remove prevent_destroy from its lifecycle to allow this, or change the "
                    "plan (-target/-exclude) so that it is not destroyed",
                    code="prevent-destroy",
                )
        diags.raise_if_errors()
