"""Make a plan real, one recorded change at a time.

Deletions go first, in reverse dependency order. Then the configuration
graph is walked again (as Terraform's apply does) so that values known only
after apply — a generated password, a file's digest — reach the resources
that use them; each instance is re-planned with those values, checked
against the reviewed plan, and applied. Every finished change is written to
state before anything that depends on it starts. After a failure nothing new
starts, work in flight finishes, and the result says what is done and what
is not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from kplan.addrs import ResourceAddr, ResourceConfigAddr
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.graph.builder import ConfigGraph
from kplan.graph.dag import Graph, walk
from kplan.graph.evaluate import Evaluator, Instance, collect
from kplan.plan.decide import InstancePlanner, Selection, fresh_computed
from kplan.plan.model import Action, Plan, PlanMode, ResourceChange
from kplan.plugins import ProviderRegistry
from kplan.provider_api import ApplyRequest, ApplyResponse, Provider
from kplan.state.records import ResourceRecord
from kplan.transport.base import UNREACHABLE_CODE
from kplan.values import UNKNOWN, Secret, contains_unknown, mark_paths, secret_paths

__all__ = ["ApplyEvent", "ApplyResult", "Recorder", "apply_plan"]


class Recorder(Protocol):
    """Where finished changes go: each call is committed before it returns."""

    def put(self, record: ResourceRecord) -> None: ...
    def delete(self, address: str) -> None: ...


@dataclass(frozen=True)
class ApplyEvent:
    kind: str  # "start" | "done" | "error"
    address: str
    action: Action
    elapsed: float = 0.0
    message: str = ""


@dataclass
class ApplyResult:
    done: list[ResourceChange] = field(default_factory=list)
    failed: dict[str, list[Diagnostic]] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.diagnostics.has_errors


@dataclass
class _Context:
    registry: ProviderRegistry
    recorder: Recorder
    notify: Callable[[ApplyEvent], None]
    parallelism: int
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    result: ApplyResult = field(default_factory=ApplyResult)
    # Hosts found unreachable: their remaining changes are not started, while the
    # other hosts' changes go on (a failure of any other kind stops all new work).
    down: set[str] = field(default_factory=set)
    # Addresses whose change failed or was left because a host was down: what depends
    # on them is left too, on whatever host (it would see unknown values).
    gone: set[str] = field(default_factory=set)

    def skip(self, change: ResourceChange, after: Iterable[Any] = ()) -> bool:
        """True when ``change`` must not start: all work stopped, its host is down, or
        one of ``after`` (addresses it waits for) was left because of a down host."""
        if self.stop.is_set():
            return True
        with self.lock:
            if (change.host is not None and change.host in self.down) or any(
                str(a) in self.gone for a in after
            ):
                self.gone.add(change.address)
                return True
            return False


def apply_plan(
    plan: Plan,
    *,
    cg: ConfigGraph | None,
    variables: Mapping[str, Any],
    records: Mapping[str, ResourceRecord],
    registry: ProviderRegistry,
    recorder: Recorder,
    root_dir: str,
    parallelism: int = 10,
    notify: Callable[[ApplyEvent], None] = lambda e: None,
) -> ApplyResult:
    ctx = _Context(registry, recorder, notify, max(1, parallelism))
    if plan.mode is PlanMode.REFRESH_ONLY:
        _accept_drift(plan, records, ctx)
        return ctx.result
    changes = {c.addr: c for c in plan.changes if c.action.is_change}
    _delete_all([c for c in changes.values() if c.action is Action.DELETE], ctx)
    rest = {a: c for a, c in changes.items() if c.action is not Action.DELETE}
    walk_needed = plan.mode is PlanMode.NORMAL and (rest or plan.outputs)
    if walk_needed and not ctx.stop.is_set() and cg is not None:
        handler = _ApplyHandler(ctx, rest, records)
        ev = Evaluator(cg, variables, handler, root_dir=root_dir)
        walked = ev.run(parallelism=ctx.parallelism)
        ctx.result.diagnostics.extend(
            d for d in collect(walked) if not any(d in v for v in ctx.result.failed.values())
        )
        if walked.ok:
            ctx.result.outputs = dict(ev.outputs)
    finished = {c.address for c in ctx.result.done} | set(ctx.result.failed)
    ctx.result.not_started = sorted(
        (str(a) for a in changes if str(a) not in finished),
    )
    return ctx.result


def _accept_drift(plan: Plan, records: Mapping[str, ResourceRecord], ctx: _Context) -> None:
    """Apply of a -refresh-only plan: record the real state; no object is touched."""
    for change in plan.drift:
        rec = records.get(change.address)
        if change.after is None or rec is None:
            ctx.recorder.delete(change.address)
        else:
            ctx.recorder.put(
                ResourceRecord.from_addr(
                    change.addr,
                    provider=rec.provider,
                    attributes=dict(change.after),
                    dependencies=rec.dependencies,
                    host=rec.host,
                )
            )
        ctx.result.done.append(change)


def _delete_all(deletes: list[ResourceChange], ctx: _Context) -> None:
    if not deletes:
        return
    g: Graph[ResourceAddr] = Graph()
    by_addr = {c.addr: c for c in deletes}
    dependents: dict[ResourceAddr, list[ResourceAddr]] = {}
    for c in deletes:
        g.add(c.addr)
        for d in c.depends_on:
            if d in by_addr:
                g.connect(d, c.addr)  # the dependency goes after what depends on it
                dependents.setdefault(d, []).append(c.addr)

    def visit(addr: ResourceAddr) -> None:
        # Not while something that depends on it is still there (its host was down).
        if ctx.skip(by_addr[addr], dependents.get(addr, ())):
            return
        _run_change(by_addr[addr], None, ctx)

    walk(g, visit, parallelism=ctx.parallelism, key=lambda a: a.sort_key(), cancel=ctx.stop)


class _ApplyHandler:
    def __init__(
        self,
        ctx: _Context,
        changes: Mapping[ResourceAddr, ResourceChange],
        records: Mapping[str, ResourceRecord],
    ) -> None:
        self.ctx = ctx
        self.changes = changes
        self.records = records
        # Each instance is planned again from the state the reviewed plan started from.
        before = {
            str(a): ResourceRecord.from_addr(
                a, provider=c.provider, attributes=dict(c.before), host=c.host
            )
            for a, c in changes.items()
            if c.before is not None
        }
        self.planner = InstancePlanner(
            ctx.registry, before, before, Selection(), set(), PlanMode.NORMAL
        )

    def resource(
        self, addr: ResourceConfigAddr, instances: list[Instance]
    ) -> Mapping[ResourceAddr, Any]:
        values: dict[ResourceAddr, Any] = {}
        todo: list[tuple[Instance, ResourceChange]] = []
        for inst in instances:
            saved = self.changes.get(inst.addr)
            if saved is None:
                rec = self.records.get(str(inst.addr))
                values[inst.addr] = rec.attributes if rec else UNKNOWN
            else:
                todo.append((inst, saved))
        if len(todo) <= 1:
            results = [self._one(i, c) for i, c in todo]
        else:
            with ThreadPoolExecutor(max_workers=min(len(todo), self.ctx.parallelism)) as pool:
                results = list(pool.map(lambda ic: self._one(*ic), todo))
        errors: list[Diagnostic] = []
        for (inst, _), (value, diags) in zip(todo, results, strict=True):
            values[inst.addr] = value
            errors.extend(diags)
        if any(not _unreachable(d) for d in errors):
            raise KplanError(errors)
        # Only unreachable hosts failed (recorded in the result): the instances on other
        # hosts are done, and what depends on them may go on.
        return values

    def _one(self, inst: Instance, saved: ResourceChange) -> tuple[Any, list[Diagnostic]]:
        if self.ctx.skip(saved, inst.deps):
            return UNKNOWN, []
        try:
            planned = self._replan(inst, saved)
        except KplanError as exc:
            self._fail(saved, exc.diagnostics)
            return UNKNOWN, exc.diagnostics
        final = ResourceChange(
            saved.addr,
            saved.provider,
            saved.action,
            saved.before,
            planned,
            saved.reasons,
            tuple(sorted(inst.deps, key=str)),
            saved.host,
            saved.replace_paths,
            saved.inputs,
        )
        value = _run_change(final, inst, self.ctx)
        failed = self.ctx.result.failed.get(saved.address, [])
        return value, failed

    def _fail(self, change: ResourceChange, diags: list[Diagnostic]) -> None:
        with self.ctx.lock:
            self.ctx.result.failed[change.address] = list(diags)
        self.ctx.stop.set()
        self.ctx.notify(ApplyEvent("error", change.address, change.action, 0.0, _first(diags)))

    def _replan(self, inst: Instance, saved: ResourceChange) -> dict[str, Any]:
        """Plan again with every upstream value now known; it must match the reviewed plan."""
        change, _ = self.planner.plan_instance(inst)
        assert change is not None and change.after is not None
        after = dict(change.after)
        if saved.action is Action.REPLACE and change.action is not Action.REPLACE:
            # Replaced on request (-replace) or by a trigger, which the re-plan does not
            # see: the new object's computed values are still to come.
            _, schema = self.ctx.registry.get(inst.addr.type)
            after = fresh_computed(after, schema)
        for key, want in (saved.after or {}).items():
            if contains_unknown(want):
                continue
            if after.get(key) != want:
                raise KplanError(
                    Diagnostic.error(
                        f"{inst.addr}: the configuration now gives {key} a different value "
                        "than the reviewed plan",
                        "something the plan was computed from changed since; run kplan plan again",
                        inst.resource.pos,
                        code="inconsistent-plan",
                    )
                )
        return after


def _run_change(change: ResourceChange, inst: Instance | None, ctx: _Context) -> Any:
    """Apply one change through its provider and record the outcome at once."""
    if ctx.skip(change):
        return UNKNOWN
    provider, schema = ctx.registry.get(change.addr.type)
    ctx.notify(ApplyEvent("start", change.address, change.action))
    started = time.monotonic()
    action = _APPLY_ACTION[change.action]
    req = ApplyRequest(
        change.addr.type, change.address, change.host, action, change.before, change.after
    )
    resp = _call(provider, req)
    diags = [d for d in resp.diagnostics if d.is_error]
    warnings = [d for d in resp.diagnostics if not d.is_error]
    if warnings:
        with ctx.lock:
            ctx.result.diagnostics.extend(warnings)
    new_state = resp.new_state
    attrs: dict[str, Any] | None = None
    if new_state is not None:
        attrs = dict(new_state)
        attrs = mark_paths(attrs, secret_paths(change.after or {}))
        for name in schema.sensitive_attributes():
            v = attrs.get(name)
            if v is not None and not isinstance(v, Secret):
                attrs[name] = Secret(v)
        ctx.recorder.put(
            ResourceRecord.from_addr(
                change.addr,
                provider=provider.name,
                attributes=attrs,
                dependencies=tuple(str(d) for d in change.depends_on),
                host=change.host,
            )
        )
    elif change.before is not None or change.action is Action.DELETE:
        ctx.recorder.delete(change.address)
    elapsed = time.monotonic() - started
    if diags:
        host_down = change.host is not None and all(_unreachable(d) for d in diags)
        with ctx.lock:
            ctx.result.failed[change.address] = diags
            if host_down:
                ctx.down.add(str(change.host))
                ctx.gone.add(change.address)
        if not host_down:
            ctx.stop.set()
        ctx.notify(ApplyEvent("error", change.address, change.action, elapsed, _first(diags)))
        return UNKNOWN
    with ctx.lock:
        ctx.result.done.append(change)
    ctx.notify(ApplyEvent("done", change.address, change.action, elapsed))
    return attrs if attrs is not None else UNKNOWN


_APPLY_ACTION: dict[Action, Any] = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.RESTART: "restart",
    Action.REPLACE: "replace",
    Action.DELETE: "delete",
}


def _call(provider: Provider, req: ApplyRequest) -> ApplyResponse:
    try:
        return provider.apply(req)
    except Exception as exc:  # a provider bug becomes a failed change, not a crash
        return ApplyResponse(
            req.prior,
            [
                Diagnostic.error(
                    f"provider {provider.name} failed to {req.action} {req.address}",
                    f"{type(exc).__name__}: {exc}",
                    code="provider-error",
                )
            ],
        )


def _unreachable(d: Diagnostic) -> bool:
    return d.code == UNREACHABLE_CODE


def _first(diags: list[Diagnostic]) -> str:
    return str(diags[0]) if diags else ""
