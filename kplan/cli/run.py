"""``kplan plan``, ``kplan apply`` and ``kplan destroy``."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated

import typer

from kplan.apply.executor import ApplyEvent, ApplyResult
from kplan.cli.common import (
    AcceptKeysOpt,
    ChdirOpt,
    LockOpt,
    LockTimeoutOpt,
    ParallelismOpt,
    VarFileOpt,
    VarOpt,
    color_enabled,
    print_diagnostics,
    run_options,
    use_json_diagnostics,
)
from kplan.plan.model import Plan, PlanMode
from kplan.plan.planner import PlanOptions
from kplan.plan.render_json import render_plan_json
from kplan.plan.render_text import render_plan_text
from kplan.plugins import ProviderRegistry
from kplan.workflow import apply_saved, plan_and_apply, plan_command

__all__ = ["register"]

TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-target",
        "--target",
        help="Only this address or prefix (module.NAME, TYPE.NAME[KEY], host:NAME) and what it "
        "depends on. Repeatable.",
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("-exclude", "--exclude", help="Leave this address or prefix alone. Repeatable."),
]
ReplaceOpt = Annotated[
    list[str] | None,
    typer.Option("-replace", "--replace", help="Replace this instance even if unchanged."),
]
RefreshOpt = Annotated[
    bool,
    typer.Option("--refresh/--no-refresh", help="Read real objects first (-refresh=false skips)."),
]
JsonOpt = Annotated[bool, typer.Option("-json", "--json", help="Machine-readable output.")]
NoColorOpt = Annotated[bool, typer.Option("--no-color", help="No ANSI colours.")]


def register(app: typer.Typer) -> None:
    app.command(name="plan")(plan)
    app.command(name="apply")(apply)
    app.command(name="destroy")(destroy)


def plan(
    chdir: ChdirOpt = ".",
    out: Annotated[
        str | None, typer.Option("-out", "--out", help="Save the plan to this file.")
    ] = None,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    replace: ReplaceOpt = None,
    destroy: Annotated[
        bool, typer.Option("-destroy", "--destroy", help="Plan to destroy everything.")
    ] = False,
    refresh: RefreshOpt = True,
    refresh_only: Annotated[
        bool,
        typer.Option("-refresh-only", "--refresh-only", help="Only show drift; change nothing."),
    ] = False,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "-detailed-exitcode",
            "--detailed-exitcode",
            help="Exit 0 with no changes, 2 with changes, 1 on error.",
        ),
    ] = False,
    json_out: JsonOpt = False,
    lock: LockOpt = True,
    lock_timeout: LockTimeoutOpt = "0s",
    parallelism: ParallelismOpt = 10,
    accept_new_host_keys: AcceptKeysOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Show what apply would change, and why.

    Example: kplan plan -out tfplan -target 'module.keystone' -var release=zed
    """
    use_json_diagnostics(json_out)
    opts = run_options(chdir, var, var_file, lock, lock_timeout, parallelism, accept_new_host_keys)
    mode = (
        PlanMode.DESTROY if destroy else PlanMode.REFRESH_ONLY if refresh_only else PlanMode.NORMAL
    )
    popts = PlanOptions(
        mode, refresh, tuple(target or ()), tuple(exclude or ()), tuple(replace or ()), parallelism
    )
    p, diags = plan_command(opts, popts, out, ProviderRegistry.from_entry_points())
    print_diagnostics(diags.items)
    if diags.has_errors:
        raise typer.Exit(1)
    _show_plan(p, json_out, no_color)
    if out and not json_out:  # -json: stdout holds the JSON document and nothing else
        typer.echo(
            f"\nSaved the plan to: {out}\n\nTo perform exactly these actions, run:\n"
            f"  {_apply_command(chdir, out)}"
        )
    if detailed_exitcode and p.has_changes:
        raise typer.Exit(2)


def _apply_command(chdir: str, planfile: str) -> str:
    """The apply of a saved plan, as it can be pasted where this plan was run: the
    plan file is read relative to -chdir, so the command keeps it."""
    argv = ["kplan", "apply"]
    if chdir not in ("", "."):
        argv += ["-chdir", chdir]
    return shlex.join([*argv, planfile])


def _show_plan(p: Plan, json_out: bool, no_color: bool) -> None:
    if json_out:
        sys.stdout.write(render_plan_json(p))
    else:
        typer.echo(render_plan_text(p, color=color_enabled(no_color)), nl=False)


def apply(
    planfile: Annotated[
        str | None, typer.Argument(help="A saved plan (kplan plan -out FILE) to apply as is.")
    ] = None,
    chdir: ChdirOpt = ".",
    auto_approve: Annotated[
        bool, typer.Option("-auto-approve", "--auto-approve", help="Do not ask for yes.")
    ] = False,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    replace: ReplaceOpt = None,
    refresh: RefreshOpt = True,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    json_out: JsonOpt = False,
    lock: LockOpt = True,
    lock_timeout: LockTimeoutOpt = "0s",
    parallelism: ParallelismOpt = 10,
    accept_new_host_keys: AcceptKeysOpt = False,
    no_color: NoColorOpt = False,
    destroy_mode: Annotated[bool, typer.Option("-destroy", "--destroy", hidden=True)] = False,
    refresh_only: Annotated[
        bool,
        typer.Option(
            "-refresh-only", "--refresh-only", help="Record drift in state; change no object."
        ),
    ] = False,
) -> None:
    """Make the planned changes.

    Without PLANFILE: plan, show the plan, ask for yes, apply. With PLANFILE:
    apply exactly that plan, refusing it if the state or the inputs moved.

    Example: kplan apply tfplan
    """
    use_json_diagnostics(json_out)
    opts = run_options(chdir, var, var_file, lock, lock_timeout, parallelism, accept_new_host_keys)
    registry = ProviderRegistry.from_entry_points()
    notify = _notifier(json_out, no_color)
    if planfile:
        if target or exclude or replace or var or var_file:
            raise typer.BadParameter("a saved plan is applied as it is: drop -target/-var etc.")
        with _shown(notify):
            outcome = apply_saved(opts, planfile, registry, notify=notify)
    else:
        mode = (
            PlanMode.DESTROY
            if destroy_mode
            else PlanMode.REFRESH_ONLY
            if refresh_only
            else PlanMode.NORMAL
        )
        popts = PlanOptions(
            mode,
            refresh,
            tuple(target or ()),
            tuple(exclude or ()),
            tuple(replace or ()),
            parallelism,
        )

        def confirm(p: Plan) -> bool:
            _show_plan(p, json_out, no_color)
            return auto_approve or _ask(destroy_mode)

        with _shown(notify):
            outcome = plan_and_apply(opts, popts, registry, confirm=confirm, notify=notify)
        if outcome.result is None:
            print_diagnostics(outcome.diagnostics.items)
            if outcome.diagnostics.has_errors:
                raise typer.Exit(1)
            if not outcome.plan.has_changes:
                _show_plan(outcome.plan, json_out, no_color)
                return
            typer.echo("Destroy cancelled." if destroy_mode else "Apply cancelled.", err=True)
            raise typer.Exit(1)
    _report(outcome.result, outcome.plan, json_out)


def destroy(
    chdir: ChdirOpt = ".",
    auto_approve: Annotated[
        bool, typer.Option("-auto-approve", "--auto-approve", help="Do not ask for yes.")
    ] = False,
    target: TargetOpt = None,
    exclude: ExcludeOpt = None,
    var: VarOpt = None,
    var_file: VarFileOpt = None,
    json_out: JsonOpt = False,
    lock: LockOpt = True,
    lock_timeout: LockTimeoutOpt = "0s",
    parallelism: ParallelismOpt = 10,
    accept_new_host_keys: AcceptKeysOpt = False,
    no_color: NoColorOpt = False,
) -> None:
    """Destroy what kplan manages (with -target: that and what depends on it).

    -exclude keeps an address, and what it depends on, out of the destroy.

    Example: kplan destroy -target 'local_file.motd["ctl1"]'
    """
    apply(
        planfile=None,
        chdir=chdir,
        auto_approve=auto_approve,
        target=target,
        exclude=exclude,
        replace=None,
        refresh=True,
        var=var,
        var_file=var_file,
        json_out=json_out,
        lock=lock,
        lock_timeout=lock_timeout,
        parallelism=parallelism,
        accept_new_host_keys=accept_new_host_keys,
        no_color=no_color,
        destroy_mode=True,
    )


def _ask(destroying: bool) -> bool:
    what = "destroy" if destroying else "perform these actions"
    typer.echo(f"\nDo you want to {what}?\n  Only 'yes' will be accepted to approve.\n")
    try:
        answer = input("  Enter a value: ")
    except EOFError:
        return False
    return answer.strip() == "yes"


def _shown(notify: Callable[[ApplyEvent], None]) -> AbstractContextManager[object]:
    """Around the apply: the live progress (if any) ends before the summary is printed."""
    from kplan.cli.progress import ApplyProgress

    return notify if isinstance(notify, ApplyProgress) else nullcontext()


def _notifier(json_out: bool, no_color: bool) -> Callable[[ApplyEvent], None]:
    """JSON lines with -json; otherwise people's progress (live on a terminal)."""
    if not json_out:
        # Imported here: rich is needed only to show an apply's progress, and a
        # plan (the command run most) need not pay for importing it.
        from rich.console import Console

        from kplan.cli.progress import ApplyProgress

        # Bound to the real stdout: while live, sys.stdout is rich's proxy.
        console = Console(file=sys.stdout, highlight=False, no_color=not color_enabled(no_color))
        return ApplyProgress(console)
    lock = threading.Lock()

    def notify(e: ApplyEvent) -> None:
        with lock:
            sys.stdout.write(
                json.dumps(
                    {
                        "type": "apply_" + e.kind,
                        "address": e.address,
                        "action": e.action.value,
                        "elapsed": round(e.elapsed, 3),
                        "message": e.message,
                    }
                )
                + "\n"
            )
            sys.stdout.flush()

    return notify


def _report(result: ApplyResult | None, p: Plan, json_out: bool) -> None:
    assert result is not None
    counts = {"add": 0, "change": 0, "restart": 0, "destroy": 0}
    for c in result.done:
        a = c.action.value
        if a in ("create", "replace"):
            counts["add"] += 1
        if a in ("delete", "replace"):
            counts["destroy"] += 1
        if a == "update":
            counts["change"] += 1
        if a == "restart":
            counts["restart"] += 1
    line = (
        f"{counts['add']} added, {counts['change']} changed, {counts['restart']} restarted, "
        f"{counts['destroy']} destroyed."
    )
    if json_out:
        sys.stdout.write(
            json.dumps(
                {
                    "type": "apply_complete" if result.ok else "apply_failed",
                    "summary": counts,
                    "failed": sorted(result.failed),
                    "not_started": result.not_started,
                    "unchanged": sorted(result.unchanged),
                }
            )
            + "\n"
        )
    if result.unchanged and not json_out:
        typer.echo(
            "No change after all, once the values known only at apply were known: "
            + ", ".join(sorted(result.unchanged))
        )
    if result.ok:
        print_diagnostics(result.diagnostics.items)
        if not json_out:
            if p.mode is PlanMode.DESTROY:
                # As Terraform words it: a destroy only destroys.
                typer.echo(f"\nDestroy complete! Resources: {counts['destroy']} destroyed.")
            else:
                typer.echo(f"\nApply complete! Resources: {line}")
        return
    print_diagnostics([d for ds in result.failed.values() for d in ds])
    print_diagnostics(result.diagnostics.items)
    if json_out:  # the apply_failed event above says the same
        raise typer.Exit(1)
    typer.echo(f"\nApply failed. Done before the failure: {line}", err=True)
    if result.failed:
        typer.echo("Failed: " + ", ".join(sorted(result.failed)), err=True)
    if result.not_started:
        typer.echo("Not started: " + ", ".join(result.not_started), err=True)
    typer.echo("Run kplan plan to see what remains.", err=True)
    raise typer.Exit(1)
