"""``init``, ``validate``, ``fmt``, ``show``, ``output`` and ``graph``."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from kplan.cli.common import ChdirOpt, color_enabled, print_diagnostics, run_options
from kplan.cli.values_text import attributes_json, render_attributes
from kplan.config.fmt import format_paths
from kplan.diagnostics import Diagnostic, KplanError
from kplan.plan.planfile import read_planfile
from kplan.plan.render_json import render_plan_json
from kplan.plan.render_markdown import render_plan_markdown
from kplan.plan.render_text import render_plan_text
from kplan.plugins import ProviderRegistry
from kplan.values import Secret, reveal
from kplan.workflow import load, open_state, state_location

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    for fn in (init, validate, fmt, show, output, graph):
        app.command(name=fn.__name__)(fn)


def init(chdir: ChdirOpt = ".") -> None:
    """Prepare a root module: check it, find providers, create the state and its key.

    Example: kplan init -chdir examples/lab
    """
    opts = run_options(chdir)
    loaded = load(opts, with_variables=False)
    registry = ProviderRegistry.from_entry_points()
    types = registry.types()
    with open_state(loaded, opts) as store:
        store.lineage  # noqa: B018 - opening creates the workspace and its lineage
    typer.echo(f"Providers found; resource types: {', '.join(types)}")
    typer.echo(f"State: {state_location(loaded)}")
    typer.echo("\nkplan has been successfully initialized!")


def validate(chdir: ChdirOpt = ".") -> None:
    """Check the configuration: syntax, references, types; no state or hosts needed.

    Example: kplan validate -chdir examples/lab
    """
    loaded = load(run_options(chdir), with_variables=False)
    print_diagnostics(loaded.warnings)
    typer.echo("Success! The configuration is valid.")


def fmt(
    paths: Annotated[list[str] | None, typer.Argument(help="Files or folders (default: .)")] = None,
    check: Annotated[
        bool, typer.Option("-check", "--check", help="Change nothing; exit 3 if not formatted.")
    ] = False,
) -> None:
    """Rewrite *.kp.yaml files in the canonical format (comments are kept).

    Example: kplan fmt -check examples/
    """
    changed, diags = format_paths(paths or ["."], check=check)
    print_diagnostics(diags.items)
    for f in changed:
        typer.echo(f)
    if diags.has_errors:
        raise typer.Exit(1)
    if check and changed:
        raise typer.Exit(3)


def show(
    planfile: Annotated[
        str | None, typer.Argument(help="A saved plan; default: the state.")
    ] = None,
    chdir: ChdirOpt = ".",
    json_out: Annotated[bool, typer.Option("-json", "--json", help="JSON output.")] = False,
    markdown: Annotated[
        bool, typer.Option("-markdown", "--markdown", help="Markdown for a pull request.")
    ] = False,
    no_color: Annotated[bool, typer.Option("--no-color")] = False,
) -> None:
    """Show a saved plan, or what the state holds.

    Example: kplan show -json tfplan
    """
    opts = run_options(chdir)
    loaded = load(opts, with_variables=False)
    with open_state(loaded, opts, create=False) as store:
        if planfile:
            p = read_planfile(planfile, store.secret_box, store.lineage)
            if json_out:
                sys.stdout.write(render_plan_json(p))
            elif markdown:
                sys.stdout.write(render_plan_markdown(p))
            else:
                typer.echo(render_plan_text(p, color=color_enabled(no_color)), nl=False)
            return
        records = store.resources()
        outputs = store.outputs()
    if json_out:
        doc = {
            "format_version": "1.0",
            "values": {
                "outputs": {n: _output_json(v) for n, v in sorted(outputs.items())},
                "root_module": {
                    "resources": [
                        {
                            "address": r.address,
                            "mode": "managed",
                            "type": r.type,
                            "name": r.name,
                            "index": r.index_key,
                            "provider_name": r.provider,
                            "values": attributes_json(r.attributes),
                            "depends_on": list(r.dependencies),
                        }
                        for r in sorted(records.values(), key=lambda r: r.address)
                    ]
                },
            },
        }
        sys.stdout.write(json.dumps(doc, sort_keys=False) + "\n")
        return
    if not records:
        typer.echo("The state is empty.")
    for r in sorted(records.values(), key=lambda r: r.address):
        typer.echo(f"# {r.address}:\n" + render_attributes(r.type, r.name, r.attributes) + "\n")
    if outputs:
        typer.echo("Outputs:\n")
        for n, v in sorted(outputs.items()):
            typer.echo(f"{n} = {_output_text(v)}")


def _output_json(v: Any) -> dict[str, Any]:
    if isinstance(v, Secret):
        return {"sensitive": True, "value": "(sensitive)"}
    return {"sensitive": False, "value": v}


def _output_text(v: Any) -> str:
    return "(sensitive value)" if isinstance(v, Secret) else json.dumps(v)


def output(
    name: Annotated[str | None, typer.Argument(help="One output; default: all.")] = None,
    chdir: ChdirOpt = ".",
    json_out: Annotated[bool, typer.Option("-json", "--json", help="JSON output.")] = False,
    raw: Annotated[bool, typer.Option("-raw", "--raw", help="The bare string value.")] = False,
    show_sensitive: Annotated[
        bool,
        typer.Option("-show-sensitive", "--show-sensitive", help="Reveal a sensitive -raw value."),
    ] = False,
) -> None:
    """Print outputs recorded by the last apply.

    Example: kplan output -raw auth_url
    """
    opts = run_options(chdir)
    loaded = load(opts, with_variables=False)
    with open_state(loaded, opts, create=False) as store:
        outputs = store.outputs()
    if name is not None and name not in outputs:
        known = ", ".join(sorted(outputs)) or "none"
        raise KplanError(Diagnostic.error(f'no output "{name}"', f"outputs: {known}"))
    if raw:
        if name is None:
            raise typer.BadParameter("-raw needs an output name")
        v = outputs[name]
        if isinstance(v, Secret) and not show_sensitive:
            raise KplanError(
                Diagnostic.error(f'output "{name}" is sensitive', "add -show-sensitive to print it")
            )
        v = reveal(v)
        if isinstance(v, dict | list) or v is None:
            raise KplanError(
                Diagnostic.error(f'output "{name}" is not a string, number or bool', "use -json")
            )
        typer.echo(str(v).lower() if isinstance(v, bool) else str(v), nl=False)
        return
    chosen = {name: outputs[name]} if name else outputs
    if json_out:
        doc = {n: _output_json(v) for n, v in sorted(chosen.items())}
        sys.stdout.write(json.dumps(doc[name]["value"] if name else doc) + "\n")
        return
    for n, v in sorted(chosen.items()):
        typer.echo(_output_text(v) if name else f"{n} = {_output_text(v)}")


def graph(chdir: ChdirOpt = ".") -> None:
    """Print the configuration's dependency graph in DOT (render with Graphviz).

    Example: kplan graph | dot -Tsvg > graph.svg
    """
    loaded = load(run_options(chdir), with_variables=False)
    g = loaded.graph.graph
    lines = ["digraph kplan {", '  rankdir = "RL";', '  node [shape = "box"];']
    for n in sorted(g.nodes):
        lines.append(f"  {json.dumps(str(n))};")
    for n in sorted(g.nodes):
        for d in sorted(g.dependencies(n)):
            lines.append(f"  {json.dumps(str(n))} -> {json.dumps(str(d))};")
    lines.append("}")
    typer.echo("\n".join(lines))
