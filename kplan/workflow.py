"""The operations behind the commands: load, plan, apply — with state and lock.

Each function takes typed options and returns data; the CLI renders it.
Loading collects every diagnostic of the configuration before stopping.
The state lock is held from the moment state is read until the last change
is recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kplan.apply.executor import ApplyEvent, ApplyResult, apply_plan
from kplan.config.loader import load_module
from kplan.config.model import ModuleConfig
from kplan.config.variables import resolve_variables
from kplan.diagnostics import Diagnostic, Diagnostics, KplanError
from kplan.graph.builder import ConfigGraph, build_graph, iter_modules
from kplan.plan.model import Action, Plan, PlanMode
from kplan.plan.planfile import read_planfile, write_planfile
from kplan.plan.planner import PlanInputs, PlanOptions, make_plan
from kplan.plugins import ProviderRegistry
from kplan.provider_api import ConfigureRequest, HostInfo
from kplan.state.store import StateStore
from kplan.transport.hostkeys import HostKeys
from kplan.transport.pool import HostSpec, Transports
from kplan.values import contains_unknown, reveal

__all__ = [
    "Loaded",
    "RunOptions",
    "apply_saved",
    "load",
    "open_state",
    "plan_and_apply",
    "run_plan",
]


# State meta key of an SSH host key accepted with -accept-new-host-keys.
HOST_KEY_META = "hostkey:"


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


def input_checksum(cfg: ModuleConfig, variables: Mapping[str, Any]) -> str:
    """sha256 of every configuration file of the module tree and the variable values."""
    h = hashlib.sha256()
    seen: set[str] = set()
    for _, mod in iter_modules(cfg):
        for path in mod.files:  # as the loader gives them: relative to the working folder
            if path in seen:
                continue
            seen.add(path)
            h.update(path.encode() + b"\0")
            h.update(Path(path).read_bytes() + b"\0")
    h.update(json.dumps(reveal(dict(variables)), sort_keys=True, default=str).encode())
    return h.hexdigest()


BACKEND_FILE = Path(".kplan", "backend.json")


def backend_settings(loaded: Loaded) -> dict[str, Any]:
    """The backend block, overlaid with what ``kplan init -backend-config`` saved."""
    backend = dict(loaded.config.settings.backend or {})
    saved = Path(loaded.dir, BACKEND_FILE)
    if saved.is_file():
        try:
            backend.update(json.loads(saved.read_text(encoding="utf-8")))
        except ValueError:
            raise KplanError(f"{saved} is damaged: run kplan init -backend-config again") from None
    return backend


def location_of(backend: Mapping[str, Any], root: str) -> str:
    """A SQLite path or a PostgreSQL URL, from backend settings."""
    kind = backend.get("type", "sqlite")
    if kind == "sqlite":
        path = backend.get("path")
        if isinstance(path, str) and path:
            return str(Path(root, path))
        return str(Path(root, ".kplan", "state.db"))
    if kind in ("postgresql", "postgres", "pg"):
        url = backend.get("url")
        if not isinstance(url, str) or not url.startswith(("postgresql", "postgres:")):
            raise KplanError(
                Diagnostic.error(
                    "the postgresql backend needs a url",
                    "set kplan.backend.url: postgresql://USER@HOST:PORT/DB, or run "
                    "kplan init -backend-config url=...; give the password in "
                    "KPLAN_PG_PASSWORD, never in a file",
                    code="backend-config",
                )
            )
        return url
    raise KplanError(
        Diagnostic.error(
            f"unknown backend type {kind!r}", "expected sqlite or postgresql", code="backend-config"
        )
    )


def state_location(loaded: Loaded) -> str:
    return location_of(backend_settings(loaded), loaded.dir)


def current_workspace(root: str, opts: RunOptions) -> str:
    if opts.workspace:
        return opts.workspace
    env = opts.environ.get("KPLAN_WORKSPACE")
    if env:
        return env
    marker = Path(root, ".kplan", "environment")
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip() or "default"
    return "default"


def open_state(loaded: Loaded, opts: RunOptions, *, create: bool = True) -> StateStore:
    return StateStore.open(
        state_location(loaded),
        workspace=current_workspace(loaded.dir, opts),
        environ=opts.environ,
        create=create,
    )


@contextmanager
def _hosts(
    loaded: Loaded, store: StateStore, opts: RunOptions, registry: ProviderRegistry
) -> Iterator[None]:
    """The run's connections: providers get the inventory and ``connect``; every
    session opened is closed when the command ends."""
    hosts = loaded.config.hosts

    def record(host: str, key: str) -> None:
        store.set_meta(HOST_KEY_META + host, key)

    keys = HostKeys(
        lambda host: store.get_meta(HOST_KEY_META + host),
        accept_new=opts.accept_new_host_keys,
        record=record,
    )
    transports = Transports(
        [
            HostSpec(
                name=h.name,
                address=h.address,
                connection=h.connection,
                user=h.user,
                port=h.port,
                ssh_key=_from_root(loaded.dir, h.ssh_key),
                known_hosts=_from_root(loaded.dir, h.known_hosts),
            )
            for h in hosts.values()
        ],
        keys,
    )
    infos = {
        h.name: HostInfo(h.name, h.address, h.connection, h.groups, h.vars) for h in hosts.values()
    }
    registry.configure(ConfigureRequest(hosts=infos, connect=transports.connect))
    try:
        yield
    finally:
        transports.close()


def _from_root(root: str, path: str | None) -> str | None:
    if not path:
        return None
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(root, path)


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
        records=lambda blocks, hosts: store.resources(blocks=blocks, hosts=hosts),
        outputs=store.outputs(),
        registry=registry,
        workspace=store.workspace,
        lineage=store.lineage,
        serial=store.serial,
        input_checksum=loaded.checksum,
        get_record=store.get,
    )
    return make_plan(inputs, popts)


def plan_command(
    opts: RunOptions, popts: PlanOptions, out: str | None, registry: ProviderRegistry
) -> tuple[Plan, Diagnostics]:
    loaded = load(opts)
    with (
        open_state(loaded, opts) as store,
        _locked(store, opts, "plan"),
        _hosts(loaded, store, opts, registry),
    ):
        plan, diags = run_plan(loaded, store, popts, registry)
        diags.items[:0] = loaded.warnings
        if out and not diags.has_errors:
            write_planfile(out, plan, store.secret_box)
    return plan, diags


@dataclass
class ApplyOutcome:
    plan: Plan
    result: ApplyResult | None
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
    with (
        open_state(loaded, opts) as store,
        _locked(store, opts, "apply"),
        _hosts(loaded, store, opts, registry),
    ):
        plan, diags = run_plan(loaded, store, popts, registry)
        diags.items[:0] = loaded.warnings
        if diags.has_errors or not plan.has_changes or not confirm(plan):
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
    with (
        open_state(loaded, opts) as store,
        _locked(store, opts, "apply"),
        _hosts(loaded, store, opts, registry),
    ):
        plan = read_planfile(planfile, store.secret_box, store.lineage)
        loaded.variables = dict(plan.variables)
        _check_fresh(plan, loaded, store, planfile)
        result = _execute(plan, loaded, store, registry, opts, notify)
        return ApplyOutcome(plan, result, Diagnostics())


def _check_fresh(plan: Plan, loaded: Loaded, store: StateStore, planfile: str) -> None:
    why = ""
    if plan.workspace != store.workspace:
        why = (
            f"it was made for workspace {plan.workspace!r}, the current one is {store.workspace!r}"
        )
    elif plan.serial != store.serial:
        why = (
            f"the state changed since the plan was made (serial {plan.serial} then, "
            f"{store.serial} now)"
        )
    elif input_checksum(loaded.config, plan.variables) != plan.input_checksum:
        why = "the configuration files changed since the plan was made"
    if why:
        raise KplanError(
            Diagnostic.error(
                f"saved plan {planfile} is stale",
                why + ". Run kplan plan again and review the new plan.",
                code="stale-plan",
            )
        )


def _execute(
    plan: Plan,
    loaded: Loaded,
    store: StateStore,
    registry: ProviderRegistry,
    opts: RunOptions,
    notify: Callable[[ApplyEvent], None],
) -> ApplyResult:
    summary = plan.summary()
    text = (
        f"{summary.add} to add, {summary.change} to change, {summary.restart} to restart, "
        f"{summary.destroy} to destroy"
    )
    operation = "destroy" if plan.mode is PlanMode.DESTROY else "apply"
    serial = store.begin_run(operation, text)
    outcome = "failed"
    result: ApplyResult | None = None
    try:
        result = apply_plan(
            plan,
            cg=loaded.graph,
            variables=loaded.variables,
            records=store.resources(),
            registry=registry,
            recorder=store,
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
        store.finish_run(serial, outcome, _result_summary(plan, result))


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


def _result_summary(plan: Plan, result: ApplyResult | None) -> str:
    if result is None:
        return "stopped before the summary was known; kplan state list shows what was recorded"
    counts = {a: 0 for a in Action}
    for c in result.done:
        counts[c.action] += 1
    done = (
        f"{counts[Action.CREATE] + counts[Action.REPLACE]} added, "
        f"{counts[Action.UPDATE]} changed, {counts[Action.RESTART]} restarted, "
        f"{counts[Action.DELETE] + counts[Action.REPLACE]} destroyed"
    )
    if result.failed:
        done += f"; {len(result.failed)} failed, {len(result.not_started)} not started"
    return done
