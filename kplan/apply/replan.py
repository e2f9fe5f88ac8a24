"""The apply's resource handler: each changed instance, re-planned and scheduled.

The configuration walk hands over a block's instances; each one that the
reviewed plan changes becomes a task of the :class:`~kplan.apply.schedule.Scheduler`
that waits for its exact dependencies (and, in a rolling block, for the
previous batch). When it runs, it is planned again with every upstream
value now known, checked against the reviewed plan, and applied. The walk
goes on at once with the tasks' outcomes as values: a lookup waits for the
one instance it needs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from kplan.addrs import ResourceAddr, ResourceConfigAddr
from kplan.apply.change import Context, run_change, unreachable
from kplan.apply.schedule import Scheduler
from kplan.diagnostics import Diagnostic, KplanError
from kplan.graph.evaluate import Instance
from kplan.plan.decide import InstancePlanner, Selection, fresh_computed
from kplan.plan.model import Action, PlanMode, ResourceChange, Roll
from kplan.state.records import ResourceRecord
from kplan.values import UNKNOWN, contains_unknown

__all__ = ["ApplyHandler", "batch_waits"]


def batch_waits(rolls: tuple[Roll, ...]) -> dict[ResourceAddr, tuple[ResourceAddr, ...]]:
    """For each instance of a rolling block after its first batch: the batch before."""
    out: dict[ResourceAddr, tuple[ResourceAddr, ...]] = {}
    for roll in rolls:
        for before, batch in itertools.pairwise(roll.batches):
            for addr in batch:
                out[addr] = before
    return out


class ApplyHandler:
    def __init__(
        self,
        ctx: Context,
        changes: Mapping[ResourceAddr, ResourceChange],
        records: Mapping[str, ResourceRecord],
        schedule: Scheduler,
        rolls: tuple[Roll, ...] = (),
    ) -> None:
        self.ctx = ctx
        self.changes = changes
        self.records = records
        self.schedule = schedule
        self.batch_before = batch_waits(rolls)
        self.added: set[ResourceAddr] = set()
        # Each instance is planned again from the state the reviewed plan started from.
        before = {
            str(a): ResourceRecord.from_addr(
                a, provider=c.provider, attributes=dict(c.before), host=c.host
            )
            for a, c in changes.items()
            if c.before is not None
        }
        # -replace requests are not in the configuration: carried over from the plan,
        # so that the re-plan (and the triggers of what restarts on it) see them.
        requested = {
            str(a) for a, c in changes.items() if any(r.kind == "requested" for r in c.reasons)
        }
        self.planner = InstancePlanner(
            ctx.registry, before, before, Selection(), requested, PlanMode.NORMAL
        )

    def resource(
        self, addr: ResourceConfigAddr, instances: list[Instance]
    ) -> Mapping[ResourceAddr, Any]:
        values: dict[ResourceAddr, Any] = {}
        for inst in instances:
            saved = self.changes.get(inst.addr)
            if saved is None:
                rec = self.records.get(str(inst.addr))
                values[inst.addr] = rec.attributes if rec else UNKNOWN
                continue
            # The reviewed plan's dependencies are exact; a rolling block's batch waits
            # for the whole batch before it.
            after = (*saved.depends_on, *self.batch_before.get(inst.addr, ()))
            self.added.add(inst.addr)
            values[inst.addr] = self.schedule.add(inst.addr, after, self._task(inst, saved, after))
        return values

    def _task(
        self, inst: Instance, saved: ResourceChange, after: tuple[ResourceAddr, ...]
    ) -> Callable[[], Any]:
        return lambda: self._one(inst, saved, after)

    def _one(self, inst: Instance, saved: ResourceChange, after: tuple[ResourceAddr, ...]) -> Any:
        """Re-plan and apply one instance; KplanError when all work must stop."""
        if self.ctx.skip(saved, after):
            return UNKNOWN
        try:
            planned, now = self._replan(inst, saved)
        except KplanError as exc:
            self.ctx.fail(saved, exc.diagnostics)
            raise
        if _no_change_after_all(saved, now):
            with self.ctx.lock:
                self.ctx.result.unchanged.append(saved.address)
            return saved.before
        final = dataclasses.replace(
            saved, after=planned, depends_on=tuple(sorted(inst.deps, key=str))
        )
        value = run_change(final, inst, self.ctx)
        failed = self.ctx.result.failed.get(saved.address)
        if failed and not all(unreachable(d) for d in failed):
            raise KplanError(failed)
        if not failed:
            # What was applied is what the triggers of later re-plans must see (a
            # replace requested with -replace, a repair of drift), whatever the
            # re-plan of this instance concluded.
            self.planner.note_changed(final)
        return value

    def _replan(
        self, inst: Instance, saved: ResourceChange
    ) -> tuple[dict[str, Any], ResourceChange]:
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
        return after, change


def _no_change_after_all(saved: ResourceChange, now: ResourceChange) -> bool:
    """The reviewed change depended on values unknown when planning, and with them
    known there is nothing to do: an update whose unknown values came out as they
    were (a config rendered the same), or a restart (or a replace) caused only by
    triggers that all turned out unchanged. Nothing lands on the host, so nothing
    is done."""
    if now.action is not Action.NOOP:
        return False
    kinds = {r.kind for r in saved.reasons}
    if saved.action in (Action.RESTART, Action.REPLACE):
        # Restarted or replaced only because something it reads changed: nothing did.
        return kinds == {"trigger"}
    if saved.action is Action.UPDATE:
        # Planned with unknown values, for no drift repair and no request.
        return contains_unknown(saved.after) and not kinds & {"drift", "requested"}
    return False
