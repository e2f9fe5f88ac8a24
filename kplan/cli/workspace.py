"""``kplan workspace list|new|select|show|delete``: one state per workspace.

The selected workspace is kept in ``.kplan/environment`` beside the root
module (``KPLAN_WORKSPACE`` overrides it), as Terraform keeps its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kplan.cli.common import ChdirOpt, run_options
from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.store import StateStore
from kplan.workflow import current_workspace, load, state_location

__all__ = ["app"]

app = typer.Typer(
    help="Manage workspaces: separate states of one configuration.", no_args_is_help=True
)


def _store(chdir: str) -> tuple[StateStore, str]:
    opts = run_options(chdir)
    loaded = load(opts, with_variables=False)
    store = StateStore.open(state_location(loaded), workspace="default", environ=opts.environ)
    return store, current_workspace(loaded.dir, opts)


def _marker() -> Path:
    return Path(".kplan", "environment")


@app.command("list")
def list_(chdir: ChdirOpt = ".") -> None:
    """List workspaces; the selected one is marked with *.

    Example: kplan workspace list
    """
    store, current = _store(chdir)
    with store:
        names = store.workspaces()
    for n in names:
        typer.echo(f"{'*' if n == current else ' '} {n}")


@app.command("show")
def show(chdir: ChdirOpt = ".") -> None:
    """Print the selected workspace.

    Example: kplan workspace show
    """
    opts = run_options(chdir)
    typer.echo(current_workspace(".", opts))


@app.command("new")
def new(name: str, chdir: ChdirOpt = ".") -> None:
    """Create a workspace (with a state of its own) and select it.

    Example: kplan workspace new staging
    """
    store, _ = _store(chdir)
    with store:
        store.create_workspace(name)
    _marker().parent.mkdir(exist_ok=True)
    _marker().write_text(name + "\n", encoding="utf-8")
    typer.echo(f'Created and switched to workspace "{name}".')


@app.command("select")
def select(name: str, chdir: ChdirOpt = ".") -> None:
    """Select an existing workspace.

    Example: kplan workspace select default
    """
    store, _ = _store(chdir)
    with store:
        known = store.workspaces()
    if name not in known:
        raise KplanError(
            Diagnostic.error(
                f'workspace "{name}" does not exist',
                f"workspaces: {', '.join(known)}. Create it with: kplan workspace new {name}",
                code="no-workspace",
            )
        )
    _marker().parent.mkdir(exist_ok=True)
    _marker().write_text(name + "\n", encoding="utf-8")
    typer.echo(f'Switched to workspace "{name}".')


@app.command("delete")
def delete(
    name: str,
    chdir: ChdirOpt = ".",
    force: Annotated[
        bool, typer.Option("-force", "--force", help="Delete even if it still has resources.")
    ] = False,
) -> None:
    """Delete a workspace and its state (refused while it holds resources, unless -force).

    Example: kplan workspace delete staging
    """
    store, current = _store(chdir)
    if name == current:
        raise KplanError(
            Diagnostic.error(
                f'workspace "{name}" is selected',
                "select another one first: kplan workspace select default",
            )
        )
    with store:
        store.delete_workspace(name, force=force)
    typer.echo(f'Deleted workspace "{name}".')
