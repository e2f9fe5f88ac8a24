"""One change through its provider, and what an apply shares while it runs.

:func:`run_change` applies one change and records the outcome in state
before it returns (a crash loses at most the change in flight).
:class:`Context` is the run's shared state: the stop flag set by a failure,
the hosts found down, the addresses left behind because of them, and the
result. Nothing here decides order: that is :mod:`kplan.apply.schedule`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.graph.evaluate import Instance
from kplan.plan.model import Action, ResourceChange
from kplan.plugins import ProviderRegistry
from kplan.provider_api import ApplyRequest, ApplyResponse
from kplan.state.records import ResourceRecord
from kplan.transport.base import UNREACHABLE_CODE
from kplan.values import UNKNOWN, Secret, mark_paths, secret_paths

__all__ = ["ApplyEvent", "ApplyResult", "Context", "Recorder", "run_change", "unreachable"]


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
    # Planned with values known only at apply, and found unchanged once they were
    # known: nothing was done (a change is what lands on the host).
    unchanged: list[str] = field(default_factory=list)
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.diagnostics.has_errors


@dataclass
class Context:
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

    def fail(self, change: ResourceChange, diags: list[Diagnostic], elapsed: float = 0.0) -> None:
        """Record a failed change; unless only its host was unreachable, stop all new work."""
        host_down = change.host is not None and all(unreachable(d) for d in diags)
        with self.lock:
            self.result.failed[change.address] = list(diags)
            if host_down:
                self.down.add(str(change.host))
                self.gone.add(change.address)
        if not host_down:
            self.stop.set()
        first = str(diags[0]) if diags else ""
        self.notify(ApplyEvent("error", change.address, change.action, elapsed, first))


def run_change(change: ResourceChange, inst: Instance | None, ctx: Context) -> Any:
    """Apply one change through its provider and record the outcome at once."""
    if ctx.skip(change):
        return UNKNOWN
    provider, _ = ctx.registry.get(change.addr.type)
    ctx.notify(ApplyEvent("start", change.address, change.action))
    started = time.monotonic()
    req = ApplyRequest(
        change.addr.type,
        change.address,
        change.host,
        _APPLY_ACTION[change.action],
        change.before,
        change.after,
    )
    # The registry hands out providers behind its guard: an exception in apply is
    # already a diagnostic naming the resource.
    resp = provider.apply(req)
    diags = [d for d in resp.diagnostics if d.is_error]
    warnings = [d for d in resp.diagnostics if not d.is_error]
    if warnings:
        with ctx.lock:
            ctx.result.diagnostics.extend(warnings)
    try:
        attrs = _record(change, resp, provider.name, ctx)
    except (KplanError, ValueError) as exc:
        # The host has the change; the state does not. Say so for this change, and
        # stop: what depends on it would be planned from a state that lacks it.
        why = [d.summary for d in exc.diagnostics] if isinstance(exc, KplanError) else [str(exc)]
        lost = Diagnostic.error(
            f"{change.address}: applied, but the state could not record it",
            "; ".join(why) + ". Run `kplan plan` to see what the state is missing.",
        )
        ctx.fail(change, [*diags, lost], time.monotonic() - started)
        return UNKNOWN
    elapsed = time.monotonic() - started
    if diags:
        ctx.fail(change, diags, elapsed)
        return UNKNOWN
    with ctx.lock:
        ctx.result.done.append(change)
    ctx.notify(ApplyEvent("done", change.address, change.action, elapsed))
    return attrs if attrs is not None else UNKNOWN


def _record(
    change: ResourceChange, resp: ApplyResponse, provider: str, ctx: Context
) -> dict[str, Any] | None:
    """Write what the provider reports to state (even after an error: it may have acted)."""
    if resp.new_state is None:
        if change.before is not None or change.action is Action.DELETE:
            ctx.recorder.delete(change.address)
        return None
    _, schema = ctx.registry.get(change.addr.type)
    attrs: dict[str, Any] = mark_paths(dict(resp.new_state), secret_paths(change.after or {}))
    for name in schema.sensitive_attributes():
        v = attrs.get(name)
        if v is not None and not isinstance(v, Secret):
            attrs[name] = Secret(v)
    ctx.recorder.put(
        ResourceRecord.from_addr(
            change.addr,
            provider=provider,
            attributes=attrs,
            dependencies=tuple(str(d) for d in change.depends_on),
            host=change.host,
        )
    )
    return attrs


_APPLY_ACTION: dict[Action, Any] = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.RESTART: "restart",
    Action.REPLACE: "replace",
    Action.DELETE: "delete",
}


def unreachable(d: Diagnostic) -> bool:
    return d.code == UNREACHABLE_CODE
