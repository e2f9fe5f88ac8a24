"""The operations behind the commands: load, plan, apply — with state and lock.

Orchestration only: each step's data and rules live in the package they
belong to (where the state is: kplan.state.location; connections and host
keys: kplan.transport.session; a saved plan's freshness: kplan.plan.freshness;
history text: kplan.plan.history_text). Each function takes typed options and
returns data; the CLI renders it. Loading collects every diagnostic of the
configuration before stopping. The state lock is held from the moment state is
read until the last change is recorded. The state key is resolved right after
the lock is taken, before any refresh or change (see kplan.state.keys).

One error channel: a step that cannot go on raises
:class:`~kplan.diagnostics.KplanError` carrying all its diagnostics (the
warnings found before included); what a caller gets back holds only warnings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kplan.apply.executor import ApplyEvent, ApplyResult, apply_plan
from kplan.apply.recording import GroupCommit
from kplan.config.loader import load_module
from kplan.config.model import ModuleConfig
from kplan.config.variables import resolve_variables
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.graph.builder import ConfigGraph, build_graph
from kplan.plan.freshness import check_fresh, input_checksum
from kplan.plan.history_text import done_text, planned_text
from kplan.plan.model import Plan, PlanMode
from kplan.plan.planfile import read_planfile, write_planfile
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plan.secrets import may_seal_secrets
from kplan.plugins import ProviderRegistry
from kplan.state import location
from kplan.state.location import BACKEND_FILE
from kplan.state.store import StateStore
from kplan.transport.session import connect_inventory
from kplan.values import contains_unknown

__all__ = [
    "BACKEND_FILE",
    "ApplyOutcome",
    "Loaded",
    "RunOptions",
    "apply_saved",
    "check_state_key",
    "current_workspace",
    "init_state",
    "input_checksum",
    "load",
    "open_state",
    "plan_and_apply",
    "plan_command",
    "run_plan",
    "state_location",
]


@dataclass(frozen=True)
class RunOptions:
    dir: str = "."
    var_args: tuple[tuple[str, str], ...] = ()
    lock: bool = True
    lock_timeout: float = 0.0
    parallelism: int = 10
    workspace: str = ""
    accept_new_host_keys: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class Loaded:
    dir: str
    config: ModuleConfig
    graph: ConfigGraph
    variables: dict[str, Any]
    checksum: str
    warnings: list[Diagnostic]


def load(opts: RunOptions, *, with_variables: bool = True) -> Loaded:
    """Load and check the root module; raise KplanError with every problem found."""
    root = str(Path(opts.dir).resolve())
    if not Path(root).is_dir():
        raise KplanError(f"{opts.dir}: no such directory", code="no-such-directory")
    # The folder as given, so that errors name files as the user wrote them.
    cfg, diags = load_module(opts.dir)
    if cfg is None or diags.has_errors:
        raise KplanError(diags.items)
    cg, gdiags = build_graph(cfg)
    diags.extend(gdiags)
    variables: dict[str, Any] = {}
    if with_variables:
        variables, vdiags = resolve_variables(
            cfg.variables, cli_args=opts.var_args, environ=opts.environ
        )
        diags.extend(vdiags)
    diags.raise_if_errors()
    warnings = [d for d in diags if not d.is_error]
    return Loaded(root, cfg, cg, variables, input_checksum(cfg, variables), warnings)


def state_location(loaded: Loaded) -> str:
    return location.state_location(loaded.dir, loaded.config.settings.backend)


def current_workspace(root: str, opts: RunOptions) -> str:
    return location.current_workspace(root, opts.environ, opts.workspace)


def open_state(
    loaded: Loaded, opts: RunOptions, *, create: bool = True, check_key: bool = False
) -> StateStore:
    """The root module's state, in the current workspace. With ``check_key``, a
    malformed state key is refused before the state is opened (or created)."""
    return location.open_root_state(
        loaded.dir,
        loaded.config.settings.backend,
        environ=opts.environ,
        workspace=opts.workspace,
        create=create,
        check_key=check_key,
    )


def _hosts(
    loaded: Loaded, store: StateStore, opts: RunOptions, registry: ProviderRegistry
) -> AbstractContextManager[object]:
    """The run's connections: providers get the inventory and ``connect``; every
    session opened is closed when the command ends."""
    return connect_inventory(
        loaded.config.hosts.values(),
        root=loaded.dir,
        records=store,
        accept_new_host_keys=opts.accept_new_host_keys,
        configure=registry.configure,
    )


@contextmanager
def _locked(store: StateStore, opts: RunOptions, operation: str) -> Iterator[None]:
    if not opts.lock:
        yield
        return
    with store.lock(operation, timeout=opts.lock_timeout):
        yield


def run_plan(
    loaded: Loaded,
    store: StateStore,
    popts: PlanOptions,
    registry: ProviderRegistry,
) -> tuple[Plan, Diagnostics]:
    inputs = PlanInputs(
        cg=loaded.graph,
        root_dir=loaded.dir,
        variables=loaded.variables,
        records=lambda blocks, hosts, modules=None: store.resources(
            blocks=blocks, hosts=hosts, modules=modules
        ),
        outputs=store.outputs(),
        registry=registry,
        workspace=store.workspace,
        lineage=store.lineage,
        serial=store.serial,
        input_checksum=loaded.checksum,
        get_record=store.get,
    )
    return make_plan(inputs, popts)


@contextmanager
def _session(
    loaded: Loaded, opts: RunOptions, operation: str, registry: ProviderRegistry
) -> Iterator[StateStore]:
    """What plan and apply run inside: the state (opened once the key's form is
    checked), locked, its key resolved against it, and the hosts connected."""
    with open_state(loaded, opts, check_key=True) as store, _locked(store, opts, operation):
        store.prepare_key()
        with _hosts(loaded, store, opts, registry):
            yield store


def check_state_key(loaded: Loaded, opts: RunOptions) -> None:
    """Refuse a malformed state key, or a wrong one for the current state when it
    exists; creates nothing (``init`` runs it before it saves or copies anything)."""
    try:
        store = open_state(loaded, opts, create=False, check_key=True)
    except KplanError as exc:
        if all(d.code in ("state-missing", "workspace-missing") for d in exc.diagnostics):
            return
        raise
    with store:
        store.prepare_key()


def init_state(loaded: Loaded, opts: RunOptions) -> str:
    """``kplan init``: create the state (and its workspace) if needed and check the
    state key against it; the state's description."""
    with open_state(loaded, opts, check_key=True) as store:
        store.prepare_key()
        return store.description


def plan_command(
    opts: RunOptions, popts: PlanOptions, out: str | None, registry: ProviderRegistry
) -> tuple[Plan, Diagnostics]:
    """``kplan plan``: the plan and its warnings; KplanError when it cannot be made."""
    loaded = load(opts)
    with _session(loaded, opts, "plan", registry) as store:
        plan, diags = run_plan(loaded, store, popts, registry)
        diags.items[:0] = loaded.warnings
        diags.raise_if_errors()
        if out:
            write_planfile(out, plan, store.secret_box)
    return plan, diags


@dataclass
class ApplyOutcome:
    plan: Plan
    # None when nothing was applied: no changes, or the plan was not confirmed.
    result: ApplyResult | None
    # Warnings (errors are raised as KplanError).
    diagnostics: Diagnostics


def plan_and_apply(
    opts: RunOptions,
    popts: PlanOptions,
    registry: ProviderRegistry,
    *,
    confirm: Callable[[Plan], bool],
    notify: Callable[[ApplyEvent], None],
) -> ApplyOutcome:
    """``kplan apply`` without a plan file: plan, show, ask, apply — under one lock."""
    loaded = load(opts)
    with _session(loaded, opts, "apply", registry) as store:
        plan, diags = run_plan(loaded, store, popts, registry)
        diags.items[:0] = loaded.warnings
        diags.raise_if_errors()
        if not plan.has_changes or not confirm(plan):
            return ApplyOutcome(plan, None, diags)
        result = _execute(plan, loaded, store, registry, opts, notify)
        return ApplyOutcome(plan, result, diags)


def apply_saved(
    opts: RunOptions,
    planfile: str,
    registry: ProviderRegistry,
    *,
    notify: Callable[[ApplyEvent], None],
) -> ApplyOutcome:
    """``kplan apply PLANFILE``: refuse a stale plan, then apply exactly it."""
    loaded = load(opts, with_variables=False)
    with _session(loaded, opts, "apply", registry) as store:
        plan = read_planfile(planfile, store.secret_box, store.lineage)
        loaded.variables = dict(plan.variables)
        check_fresh(
            plan, loaded.config, workspace=store.workspace, serial=store.serial, planfile=planfile
        )
        result = _execute(plan, loaded, store, registry, opts, notify)
        return ApplyOutcome(plan, result, Diagnostics())


def _execute(
    plan: Plan,
    loaded: Loaded,
    store: StateStore,
    registry: ProviderRegistry,
    opts: RunOptions,
    notify: Callable[[ApplyEvent], None],
) -> ApplyResult:
    # The key, made now if this apply may seal a secret: before the first change,
    # once for all the workers (a missing key is refused before anything changes).
    store.prepare_key(
        create=may_seal_secrets(plan, lambda t: registry.get(t)[1].sensitive_attributes())
    )
    operation = "destroy" if plan.mode is PlanMode.DESTROY else "apply"
    serial = store.begin_run(operation, planned_text(plan))
    outcome = "failed"
    result: ApplyResult | None = None
    try:
        result = apply_plan(
            plan,
            cg=loaded.graph,
            variables=loaded.variables,
            records=store.resources(),
            registry=registry,
            recorder=GroupCommit(store),
            root_dir=loaded.dir,
            parallelism=opts.parallelism,
            notify=notify,
        )
        if result.ok:
            if plan.mode is PlanMode.DESTROY:  # a destroy plan lists the outputs it deletes
                gone = {o.name for o in plan.outputs}
                store.set_outputs({k: v for k, v in store.outputs().items() if k not in gone})
            elif plan.mode is PlanMode.NORMAL:
                store.set_outputs(_known_outputs(store.outputs(), result.outputs))
            outcome = "success"
        return result
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        store.finish_run(serial, outcome, _done_text(result))


def _done_text(result: ApplyResult | None) -> str:
    if result is None:
        return done_text(None)
    return done_text(result.done, failed=len(result.failed), not_started=len(result.not_started))


def _known_outputs(
    recorded: Mapping[str, Any], outputs: Mapping[str, tuple[Any, bool]]
) -> dict[str, Any]:
    """Outputs to record: a value still unknown (its resource was not targeted) keeps
    what was recorded before, or is left out."""
    out: dict[str, Any] = {}
    for name, (value, _) in outputs.items():
        if contains_unknown(value):
            if name in recorded:
                out[name] = recorded[name]
        else:
            out[name] = value
    return out
