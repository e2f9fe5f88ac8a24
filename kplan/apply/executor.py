"""Make a plan real, one recorded change at a time.

Deletions go first, in reverse dependency order. Then the configuration
graph is walked again (as Terraform's apply does) so that values known only
after apply — a generated password, a file's digest — reach the resources
that use them; each instance is re-planned with those values, checked
against the reviewed plan, and applied. The changes form one instance graph
(:mod:`kplan.apply.schedule`): a change waits for the instances it depends
on, not for whole resource blocks, and at most ``parallelism`` run at once
in all. A rolling block's batches go one after the other, as the plan shows.
Every finished change is written to state before anything that depends on
it starts. After a failure nothing new starts, work in flight finishes, and
the result says what is done and what is not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kplan.addrs import ResourceAddr
from kplan.apply.change import ApplyEvent, ApplyResult, Context, Recorder, run_change
from kplan.apply.replan import ApplyHandler
from kplan.apply.schedule import Scheduler
from kplan.graph.builder import ConfigGraph, Node
from kplan.graph.dag import Graph, heights, walk
from kplan.graph.evaluate import Evaluator, collect
from kplan.plan.model import Action, Plan, PlanMode, ResourceChange
from kplan.plugins import ProviderRegistry
from kplan.state.records import ResourceRecord

__all__ = ["ApplyEvent", "ApplyResult", "Recorder", "apply_plan"]

# The walk only evaluates (and waits for values); changes run in the scheduler's
# threads. A few more walkers than places keep independent blocks coming.
_EXTRA_WALKERS = 4


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
    ctx = Context(registry, recorder, notify, max(1, parallelism))
    if plan.mode is PlanMode.REFRESH_ONLY:
        _accept_drift(plan, records, ctx)
        return ctx.result
    changes = {c.addr: c for c in plan.changes if c.action.is_change}
    _delete_all([c for c in changes.values() if c.action is Action.DELETE], ctx)
    rest = {a: c for a, c in changes.items() if c.action is not Action.DELETE}
    walk_needed = plan.mode is PlanMode.NORMAL and (rest or plan.outputs)
    if walk_needed and not ctx.stop.is_set() and cg is not None:
        _walk_and_apply(plan, cg, variables, records, rest, root_dir, ctx)
    finished = (
        {c.address for c in ctx.result.done} | set(ctx.result.failed) | set(ctx.result.unchanged)
    )
    ctx.result.not_started = sorted(
        (str(a) for a in changes if str(a) not in finished),
    )
    return ctx.result


def _walk_and_apply(
    plan: Plan,
    cg: ConfigGraph,
    variables: Mapping[str, Any],
    records: Mapping[str, ResourceRecord],
    rest: Mapping[ResourceAddr, ResourceChange],
    root_dir: str,
    ctx: Context,
) -> None:
    schedule = Scheduler(ctx.parallelism, rest, _chain_lengths(rest))
    handler = ApplyHandler(ctx, rest, records, schedule, plan.rolls)
    ev = Evaluator(cg, variables, handler, root_dir=root_dir)
    visit = ev.visit
    by_node: dict[tuple[tuple[str, ...], str], list[ResourceAddr]] = {}
    for a in rest:
        by_node.setdefault(
            (tuple(s.name for s in a.module.steps), f"{a.type}.{a.name}"), []
        ).append(a)

    def visit_or_stop(node: Node) -> None:
        try:
            visit(node)
        except BaseException:
            ctx.stop.set()  # the configuration cannot be evaluated: start nothing new
            raise
        finally:
            # Planned instances this block no longer has: nothing may wait for them.
            _abandon(by_node.get((node.module, node.name), ()), handler, schedule, ctx)

    ev.visit = visit_or_stop  # type: ignore[method-assign]
    try:
        walked = ev.run(parallelism=ctx.parallelism + _EXTRA_WALKERS, cancel=ctx.stop)
    except BaseException:  # e.g. Ctrl-C: start nothing new, let work in flight finish
        ctx.stop.set()
        raise
    finally:
        _abandon(rest, handler, schedule, ctx)  # what the walk never reached
        try:
            schedule.join()
        except BaseException:  # Ctrl-C while waiting: start nothing new, then wait
            ctx.stop.set()
            schedule.join()
            raise
    ctx.result.diagnostics.extend(
        d for d in collect(walked) if not any(d in v for v in ctx.result.failed.values())
    )
    if walked.ok and not ctx.stop.is_set():
        ctx.result.outputs = dict(ev.outputs)


def _chain_lengths(rest: Mapping[ResourceAddr, ResourceChange]) -> dict[ResourceAddr, int]:
    """For each change, the longest chain of planned changes that waits on it."""
    g: Graph[ResourceAddr] = Graph()
    for addr, change in rest.items():
        g.add(addr)
        for dep in change.depends_on:
            if dep in rest:
                g.connect(addr, dep)
    try:
        return heights(g)
    except ValueError:  # a cycle the plan should have refused: no priorities then
        return {}


def _abandon(
    addrs: Iterable[ResourceAddr], handler: ApplyHandler, schedule: Scheduler, ctx: Context
) -> None:
    """Planned changes that will never be scheduled: not started, nor what waits for them."""
    left = [a for a in addrs if a not in handler.added]
    if left:
        with ctx.lock:
            ctx.gone.update(str(a) for a in left)
        schedule.abandon(left)


def _accept_drift(plan: Plan, records: Mapping[str, ResourceRecord], ctx: Context) -> None:
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


def _delete_all(deletes: list[ResourceChange], ctx: Context) -> None:
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
        run_change(by_addr[addr], None, ctx)

    walk(g, visit, parallelism=ctx.parallelism, key=lambda a: a.sort_key(), cancel=ctx.stop)
