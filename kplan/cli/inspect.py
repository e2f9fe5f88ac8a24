"""``init``, ``validate``, ``fmt``, ``show``, ``output``, ``graph`` and ``force-unlock``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from kplan.cli.common import ChdirOpt, color_enabled, print_diagnostics, run_options
from kplan.cli.json_diagnostics import validate_document
from kplan.cli.values_text import attributes_json, render_attributes
from kplan.diagnostics import Diagnostic, KplanError
from kplan.plan.planfile import read_planfile
from kplan.plan.render_json import render_plan_json
from kplan.plan.render_markdown import render_plan_markdown
from kplan.plan.render_text import render_plan_text
from kplan.plan.validate import validate_config
from kplan.plugins import ProviderRegistry
from kplan.state.store import StateStore
from kplan.values import Secret, reveal
from kplan.workflow import (
    BACKEND_FILE,
    Loaded,
    RunOptions,
    check_state_key,
    init_state,
    load,
    open_state,
    state_location,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    for fn in (init, validate, fmt, show, output, graph):
        app.command(name=fn.__name__)(fn)
    app.command(name="force-unlock")(force_unlock)


def init(
    chdir: ChdirOpt = ".",
    backend_config: Annotated[
        list[str] | None,
        typer.Option(
            "-backend-config",
            "--backend-config",
            help="KEY=VALUE for the state backend (type, path, url); saved in "
            ".kplan/backend.json. A password is never saved: use KPLAN_PG_PASSWORD.",
        ),
    ] = None,
    migrate_state: Annotated[
        bool,
        typer.Option(
            "-migrate-state",
            "--migrate-state",
            help="Copy every workspace from the previous backend to the new one.",
        ),
    ] = False,
) -> None:
    """Prepare a root module: check it, find providers, create the state and its key.

    Example: kplan init -backend-config type=postgresql -backend-config
    url=postgresql://kplan@db.example:5432/kplan -migrate-state
    """
    opts = run_options(chdir)
    loaded = load(opts, with_variables=False)
    check_state_key(loaded, opts)  # before anything is saved, created or copied
    registry = ProviderRegistry.from_entry_points()
    types = registry.types()
    before = state_location(loaded)
    if backend_config:
        _save_backend_config(loaded, backend_config)
    after = state_location(loaded)
    if migrate_state and before != after:
        _migrate(before, after, opts)
    where = init_state(loaded, opts)
    typer.echo(f"Providers found; resource types: {', '.join(types)}")
    typer.echo(f"State: {where}")
    typer.echo("\nkplan has been successfully initialized!")


def _save_backend_config(loaded: Loaded, pairs: list[str]) -> None:
    settings: dict[str, str] = {}
    path = Path(loaded.dir, BACKEND_FILE)
    if path.is_file():
        settings = json.loads(path.read_text(encoding="utf-8"))
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"-backend-config {pair!r}: expected KEY=VALUE")
        if key == "password" or (key == "url" and urlsplit(value).password):
            raise KplanError(
                Diagnostic.error(
                    "kplan does not write database passwords to disk",
                    "leave the password out of -backend-config and set KPLAN_PG_PASSWORD "
                    "(or PGPASSWORD, or ~/.pgpass) in the environment",
                    code="backend-password",
                )
            )
        settings[key] = value
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _migrate(before: str, after: str, opts: RunOptions) -> None:
    with (
        StateStore.open(before, environ=opts.environ, create=False, check_key=True) as old,
        StateStore.open(after, environ=opts.environ, check_key=True) as new,
    ):
        with old.lock("migrate-state", timeout=opts.lock_timeout):
            old.prepare_key()  # a wrong key is refused before anything is copied
            checksum = old.copy_to(new, lock_timeout=opts.lock_timeout)
        typer.echo(f"Copied the state from {old.description} to {new.description}")
    typer.echo(f"Verified: both hold the same content ({checksum}).")


def validate(
    chdir: ChdirOpt = ".",
    json_out: Annotated[
        bool,
        typer.Option(
            "-json", "--json", help="Print the result as JSON (terraform validate -json's shape)."
        ),
    ] = False,
) -> None:
    """Check the configuration as plan does, without reading state or contacting hosts.

    Checks syntax, references, resource types, attributes and their types, lifecycle
    keys and triggers; variables and other resources' values count as unknown.

    Example: kplan validate -json -chdir examples/quickstart
    """
    if not json_out:
        found = _validate(chdir)
        if any(d.is_error for d in found):
            raise KplanError(found)
        print_diagnostics(found)
        typer.echo("Success! The configuration is valid.")
        return
    try:
        found = _validate(chdir)
    except KplanError as exc:
        found = exc.diagnostics
    doc = validate_document(found)
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    if not doc["valid"]:
        raise typer.Exit(1)


def _validate(chdir: str) -> list[Diagnostic]:
    """The loader's warnings and what plan's checks find (an error loading raises)."""
    loaded = load(run_options(chdir), with_variables=False)
    found = validate_config(loaded.graph, ProviderRegistry.from_entry_points(), loaded.dir)
    return [*loaded.warnings, *found]


def fmt(
    paths: Annotated[list[str] | None, typer.Argument(help="Files or folders (default: .)")] = None,
    check: Annotated[
        bool, typer.Option("-check", "--check", help="Change nothing; exit 3 if not formatted.")
    ] = False,
) -> None:
    """Rewrite *.kp.yaml files in the canonical format (comments are kept).

    Example: kplan fmt -check examples/
    """
    from kplan.config.fmt import format_paths  # ruamel.yaml: only fmt needs it

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


def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock ID from the 'state is locked' message.")],
    chdir: ChdirOpt = ".",
) -> None:
    """Remove a lock left by a kplan that can no longer release it.

    Example: kplan force-unlock 6f1c2d3e-...
    """
    opts = run_options(chdir)
    loaded = load(opts, with_variables=False)
    with open_state(loaded, opts, create=False) as store:
        result = store.force_unlock(lock_id)
    typer.echo(result.message)
    if result.holder_active:
        raise typer.Exit(1)
