"""``kplan state list|show|rm|mv``: look at and edit what the state records."""

from __future__ import annotations

from typing import Annotated

import typer

from kplan.addrs import AddressError, Target, parse_resource
from kplan.cli.common import ChdirOpt, LockOpt, LockTimeoutOpt, run_options
from kplan.cli.values_text import render_attributes
from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.records import ResourceRecord
from kplan.workflow import load, open_state

__all__ = ["app"]

app = typer.Typer(help="Inspect and edit the state.", no_args_is_help=True)


def _target(text: str) -> Target:
    try:
        return Target.parse(text)
    except AddressError as exc:
        raise KplanError(Diagnostic.error(f"invalid address {text!r}", str(exc))) from None


@app.command("list")
def list_(
    addresses: Annotated[list[str] | None, typer.Argument(help="Address prefixes.")] = None,
    chdir: ChdirOpt = ".",
) -> None:
    """List recorded resource instances (optionally only under the given prefixes).

    Example: kplan state list module.keystone
    """
    opts = run_options(chdir)
    targets = [_target(a) for a in addresses or []]
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        records = store.resources()
    for r in sorted(records.values(), key=lambda r: parse_resource(r.address).sort_key()):
        addr = parse_resource(r.address)
        if not targets or any(t.matches(addr) for t in targets):
            typer.echo(r.address)


@app.command("show")
def show(address: str, chdir: ChdirOpt = ".") -> None:
    """Show one recorded instance; sensitive values stay masked.

    Example: kplan state show 'local_file.motd["ctl1"]'
    """
    opts = run_options(chdir)
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        rec = store.get(str(parse_resource(address)))
    if rec is None:
        raise KplanError(
            Diagnostic.error(
                f"no resource {address} in the state", "kplan state list shows what is recorded"
            )
        )
    typer.echo(f"# {rec.address}:" + (f"  (host {rec.host})" if rec.host else ""))
    typer.echo(render_attributes(rec.type, rec.name, rec.attributes))


@app.command("rm")
def rm(
    addresses: list[str],
    chdir: ChdirOpt = ".",
    lock: LockOpt = True,
    lock_timeout: LockTimeoutOpt = "0s",
) -> None:
    """Forget instances (the real objects are left alone).

    Example: kplan state rm 'local_file.motd["ctl1"]'
    """
    opts = run_options(chdir, lock=lock, lock_timeout=lock_timeout)
    with (
        open_state(load(opts, with_variables=False), opts, create=False) as store,
        store.lock("state rm", timeout=opts.lock_timeout),
    ):
        records = store.resources()
        targets = [_target(a) for a in addresses]
        chosen = [a for a in records if any(t.matches(parse_resource(a)) for t in targets)]
        if not chosen:
            raise KplanError(Diagnostic.error("no matching instances in the state"))
        for a in sorted(chosen):
            store.delete(a)
            typer.echo(f"Removed {a}")
    typer.echo(f"Successfully removed {len(chosen)} resource instance(s).")


@app.command("mv")
def mv(
    source: str,
    destination: str,
    chdir: ChdirOpt = ".",
    lock: LockOpt = True,
    lock_timeout: LockTimeoutOpt = "0s",
) -> None:
    """Rename a recorded instance (after renaming it in the configuration).

    Example: kplan state mv local_file.old local_file.new
    """
    opts = run_options(chdir, lock=lock, lock_timeout=lock_timeout)
    src, dst = parse_resource(source), parse_resource(destination)
    if src.type != dst.type:
        raise KplanError(Diagnostic.error(f"cannot move {src} to {dst}: the resource types differ"))
    with (
        open_state(load(opts, with_variables=False), opts, create=False) as store,
        store.lock("state mv", timeout=opts.lock_timeout),
    ):
        rec = store.get(str(src))
        if rec is None:
            raise KplanError(Diagnostic.error(f"no resource {src} in the state"))
        if store.get(str(dst)) is not None:
            raise KplanError(Diagnostic.error(f"{dst} already exists in the state"))
        moved = ResourceRecord.from_addr(
            dst,
            provider=rec.provider,
            attributes=rec.attributes,
            dependencies=rec.dependencies,
            host=rec.host,
        )
        store.move(str(src), moved)  # one transaction: a crash never leaves both
    typer.echo(f"Move {src} to {dst}\nSuccessfully moved 1 object.")


@app.command("history")
def history(chdir: ChdirOpt = ".") -> None:
    """List every apply and destroy: serial, who, when, what, and how it ended.

    Example: kplan state history
    """
    opts = run_options(chdir)
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        entries = store.history()
    typer.echo(f"{'SERIAL':>6}  {'STARTED (UTC)':19}  {'OUTCOME':11}  {'WHO':24}  SUMMARY")
    for e in entries:
        when = e.started_at.strftime("%Y-%m-%d %H:%M:%S")
        who = f"{e.user}@{e.host}"
        typer.echo(
            f"{e.serial:>6}  {when:19}  {e.outcome:11}  {who:24}  {e.operation}: {e.summary}"
        )
