"""``kplan state list|show|rm|mv|history|pull|push``: look at and edit what the state records."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated

import typer

from kplan.addrs import AddressError, Target, parse_resource
from kplan.cli.common import ChdirOpt, LockOpt, LockTimeoutOpt, run_options
from kplan.cli.values_text import render_attributes
from kplan.diagnostics import Diagnostic, KplanError
from kplan.fileio import write_atomic
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


SerialOpt = Annotated[
    int | None,
    typer.Option(
        "-serial",
        "--serial",
        min=0,
        help="Show the state as it was at this serial (every resource when no ADDRESS).",
    ),
]


@app.command("show")
def show(
    address: Annotated[
        str | None, typer.Argument(help="The instance; optional with -serial.")
    ] = None,
    serial: SerialOpt = None,
    chdir: ChdirOpt = ".",
) -> None:
    """Show one recorded instance, now or at an earlier serial; secrets stay masked.

    Example: kplan state show -serial 3 'local_file.motd["ctl1"]'
    """
    if address is None and serial is None:
        raise KplanError(
            Diagnostic.error(
                "kplan state show needs an ADDRESS, or -serial N to show every resource",
                "kplan state list shows what is recorded",
                code="usage",
            )
        )
    opts = run_options(chdir)
    addr = None if address is None else str(parse_resource(address))
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        if serial is None:
            found = {} if addr is None else {addr: store.get(addr)}
        elif addr is None:
            found = dict(store.resources_at(serial))
        else:
            found = {addr: store.get_at(addr, serial)}
    at = "" if serial is None else f" at serial {serial}"
    if addr is not None and found[addr] is None:
        raise KplanError(
            Diagnostic.error(
                f"no resource {address} in the state{at}",
                "kplan state list shows what is recorded now",
            )
        )
    records = [r for r in found.values() if r is not None]
    if not records:
        typer.echo(f"The state was empty{at}.")
    for i, rec in enumerate(sorted(records, key=lambda r: parse_resource(r.address).sort_key())):
        host = f"  (host {rec.host})" if rec.host else ""
        typer.echo(("\n" if i else "") + f"# {rec.address}:{host}")
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
    """List every apply and destroy: serial, state serial at its end, who, when, what, outcome.

    Example: kplan state history
    """
    opts = run_options(chdir)
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        entries = store.history()
    typer.echo(
        f"{'SERIAL':>6}  {'STATE':>5}  {'STARTED (UTC)':19}  {'OUTCOME':11}  {'WHO':24}  SUMMARY"
    )
    for e in entries:
        when = e.started_at.strftime("%Y-%m-%d %H:%M:%S")
        who = f"{e.user}@{e.host}"
        state = "-" if e.state_serial is None else str(e.state_serial)
        typer.echo(
            f"{e.serial:>6}  {state:>5}  {when:19}  {e.outcome:11}  {who:24}  "
            f"{e.operation}: {e.summary}"
        )


@app.command("pull")
def pull(
    out: Annotated[
        str | None,
        typer.Option("-out", "--out", help="Write to this file (mode 0600) instead of stdout."),
    ] = None,
    chdir: ChdirOpt = ".",
) -> None:
    """Write the current workspace's state as JSON; secrets stay sealed with the state key.

    Example: kplan state pull -out backup.kstate
    """
    opts = run_options(chdir)
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        text = store.pull()
    if out is None or out == "-":
        sys.stdout.write(text)
        return
    _write_private(out, text)


def _write_private(path: str, text: str) -> None:
    try:
        write_atomic(path, text.encode(), prefix=".kplan-state-")
    except OSError as exc:
        raise KplanError(
            Diagnostic.error(f"cannot write {path}: {exc.strerror}", code="state-pull-write")
        ) from None


@app.command("push")
def push(
    path: Annotated[str, typer.Argument(help="A file from kplan state pull; - for stdin.")],
    force: Annotated[
        bool,
        typer.Option(
            "-force",
            "--force",
            help="Write it even if its lineage differs or its serial is not newer.",
        ),
    ] = False,
    chdir: ChdirOpt = ".",
    lock: LockOpt = True,
    lock_timeout: LockTimeoutOpt = "0s",
) -> None:
    """Replace the current workspace's state with a pulled file, all or nothing.

    Example: kplan state push backup.kstate
    """
    opts = run_options(chdir, lock=lock, lock_timeout=lock_timeout)
    text = _read_document(path)
    source = "stdin" if path == "-" else path
    with open_state(load(opts, with_variables=False), opts, create=False) as store:
        held = store.lock("state push", timeout=opts.lock_timeout) if opts.lock else nullcontext()
        with held:
            ws = store.push(text, source=source, force=force, lock=False)
            serial = store.serial
        workspace = store.workspace
    count = len(ws["resources"])
    typer.echo(
        f"Pushed {source} to workspace {workspace!r}: serial {serial}, "
        f"lineage {ws['lineage']}, {count} resource instance(s)."
    )


def _read_document(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise KplanError(
            Diagnostic.error(
                f"cannot read {path}: {reason}",
                "Give a file written by kplan state pull.",
                code="state-document-invalid",
            )
        ) from None
