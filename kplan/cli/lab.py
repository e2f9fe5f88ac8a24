"""``kplan lab up|status|down|images``: disposable test hosts on this machine (root only)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from kplan.lab.errors import LabError
from kplan.lab.spec import DEFAULT_NAME

__all__ = ["app"]

app = typer.Typer(
    help="Disposable lab hosts on this machine: network namespaces with sshd and dockerd, "
    "a registry, and images built from Debian packages. Needs root.",
    no_args_is_help=True,
)

NameOpt = Annotated[
    str, typer.Option("--name", "-name", help="The lab's name (several labs can coexist).")
]


def _echo(msg: str) -> None:
    typer.echo(msg)


def _fail(exc: LabError) -> typer.Exit:
    typer.echo(f"Error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def up(
    hosts: Annotated[
        int | None, typer.Option("--hosts", "-hosts", min=1, help="Number of hosts (default 3).")
    ] = None,
    name: NameOpt = DEFAULT_NAME,
    subnet: Annotated[
        str | None,
        typer.Option("--subnet", "-subnet", help="The lab's IPv4 subnet (default 10.231.0.0/24)."),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            "-inventory",
            help="Also write the inventory (a hosts: file) here, e.g. into a root module; "
            "`down` removes it unless you changed it.",
        ),
    ] = None,
) -> None:
    """Create the lab, or repair it: running twice is fine.

    Example: sudo kplan lab up --hosts 3 --inventory examples/lab/inventory.kp.yaml
    """
    from kplan.lab.lifecycle import copy_inventory
    from kplan.lab.lifecycle import up as do_up

    try:
        res = do_up(name, hosts, subnet, _echo)
        if inventory is not None:
            copy_inventory(res.spec, inventory)
    except LabError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        typer.echo(f"Error: cannot write the inventory to {inventory}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    spec = res.spec
    if res.started:
        typer.echo("Started: " + ", ".join(res.started))
    else:
        typer.echo("Already up: nothing to do.")
    for h in spec.all_hosts():
        typer.echo(f"  {h.name:<8} {h.address:<15} {','.join(h.groups)}")
    typer.echo(f"Registry:    {spec.registry}")
    typer.echo(f"Inventory:   {spec.inventory}" + (f" (and {inventory})" if inventory else ""))
    typer.echo(f"SSH key:     {spec.ssh_key}")
    typer.echo(f"known_hosts: {spec.known_hosts}")
    typer.echo(f"Lab {spec.name} up in {res.seconds:.1f} s.")


@app.command()
def status(name: NameOpt = DEFAULT_NAME) -> None:
    """Show the lab's hosts, processes and health; exit 1 if anything is down.

    Example: kplan lab status
    """
    from kplan.lab.lifecycle import status as do_status

    try:
        st = do_status(name)
    except LabError as exc:
        raise _fail(exc) from None
    if st.spec is None:
        typer.echo(f"Lab {name} is not up.")
        raise typer.Exit(1)

    def mark(ok: bool) -> str:
        return "up" if ok else "DOWN"

    spec = st.spec
    typer.echo(f"Lab {spec.name}: subnet {spec.subnet}, bridge {spec.bridge} {mark(st.bridge)}")
    if st.registry is None:
        typer.echo(f"  registry {spec.registry}: not started")
    else:
        ref, alive = st.registry
        typer.echo(
            f"  registry {spec.registry}: pid {ref.pid} {'alive' if alive else 'DEAD'}, "
            f"http {mark(st.registry_healthy)}"
        )
    for h in st.hosts:
        typer.echo(
            f"  {h.host.name:<8} {h.host.address:<15} netns {mark(h.netns)}, "
            f"sshd {mark(h.sshd)}, dockerd {mark(h.dockerd)}"
        )
        for ref, alive in h.procs:
            typer.echo(
                f"      {ref.what.split()[0]:<10} pid {ref.pid:<8} {'alive' if alive else 'DEAD'}"
            )
    typer.echo("All up." if st.ok else "Something is down.")
    if not st.ok:
        raise typer.Exit(1)


@app.command()
def down(name: NameOpt = DEFAULT_NAME) -> None:
    """Stop every lab process and remove its namespaces, links and files.

    Example: sudo kplan lab down
    """
    from kplan.lab.lifecycle import down as do_down

    try:
        res = do_down(name, _echo)
    except LabError as exc:
        raise _fail(exc) from None
    if not res.removed:
        typer.echo(f"Lab {name} is not up: nothing to do.")
        return
    for item in res.removed:
        typer.echo(f"  removed {item}")
    if res.killed:
        typer.echo("  (had to SIGKILL: " + ", ".join(res.killed) + ")")
    typer.echo(f"Lab {name} down in {res.seconds:.1f} s.")


class _ImagesCommand(TyperCommand):
    """``lab images``: its --help lists the images, from their recipes (read only then)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # typer's own click types
        from kplan.lab.images import catalog_text

        text = inspect.getdoc(images) or ""
        head, sep, example = text.partition("\n\nExample:")
        self.help = f"{head}\n\nImages (--only NAME):\n\n{catalog_text()}{sep}{example}"
        super().format_help(ctx, formatter)


@app.command(cls=_ImagesCommand)
def images(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", "-only", help="Build only these images (repeatable)."),
    ] = None,
    name: NameOpt = DEFAULT_NAME,
    push: Annotated[
        bool, typer.Option("--push/--no-push", help="Push to the lab's registry.")
    ] = True,
) -> None:
    """Build lab images from Debian bookworm packages and push them to the lab registry.

    Built images are cached under ~/.cache/kplan/lab/images: a second run only pushes.

    Example: sudo kplan lab images --only base --only mariadb
    """
    from kplan.lab.images import build_and_push

    try:
        res = build_and_push(name, only or None, push, _echo)
    except LabError as exc:
        raise _fail(exc) from None
    for line in res.lines:
        typer.echo(f"  {line}")
    typer.echo(f"{len(res.lines)} images in {res.seconds:.1f} s.")
