"""Options shared by commands, and printing of diagnostics."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from kplan.cli.json_diagnostics import ui_message
from kplan.diagnostics import Diagnostic
from kplan.workflow import RunOptions

__all__ = [
    "ChdirOpt",
    "LockOpt",
    "LockTimeoutOpt",
    "ParallelismOpt",
    "VarFileOpt",
    "VarOpt",
    "color_enabled",
    "json_diagnostics_on",
    "parse_duration",
    "print_diagnostics",
    "run_options",
    "use_json_diagnostics",
]

ChdirOpt = Annotated[
    str, typer.Option("-chdir", "--chdir", help="The root module's folder.", show_default=True)
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option("-var", "--var", help="Set a variable: -var 'name=value' (repeatable)."),
]
VarFileOpt = Annotated[
    list[str] | None,
    typer.Option("-var-file", "--var-file", help="Read variables from a YAML file (repeatable)."),
]
LockOpt = Annotated[
    bool, typer.Option("--lock/--no-lock", help="Hold the state lock (-lock=false to skip).")
]
LockTimeoutOpt = Annotated[
    str,
    typer.Option(
        "-lock-timeout", "--lock-timeout", help="How long to wait for the state lock, e.g. 30s."
    ),
]
AcceptKeysOpt = Annotated[
    bool,
    typer.Option(
        "-accept-new-host-keys",
        "--accept-new-host-keys",
        help="Trust SSH host keys seen for the first time, and record them in state. "
        "A changed key is refused all the same.",
    ),
]
ParallelismOpt = Annotated[
    int,
    typer.Option(
        "-parallelism",
        "--parallelism",
        min=1,
        help="Changes at work at once (one watching a health gate holds no place).",
    ),
]


def parse_duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip()
    for suffix in ("ms", "s", "m", "h"):
        if t.endswith(suffix):
            number = t[: -len(suffix)]
            try:
                return float(number) * units[suffix]
            except ValueError:
                break
    try:
        return float(t)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration (e.g. 30s, 2m)") from None


def run_options(
    chdir: str,
    var: list[str] | None = None,
    var_file: list[str] | None = None,
    lock: bool = True,
    lock_timeout: str = "0s",
    parallelism: int = 10,
    accept_new_host_keys: bool = False,
) -> RunOptions:
    # -var and -var-file keep their relative order, as their precedence depends on it:
    # typer gives two lists, so the order is read back from the command line.
    args = _ordered_var_args(sys.argv[1:], var or [], var_file or [])
    if chdir != ".":
        # As terraform -chdir: relative paths in the configuration (path.module,
        # files) and in arguments are taken from the root module's folder.
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise typer.BadParameter(f"-chdir {chdir}: {exc.strerror}") from None
    return RunOptions(
        dir=".",
        var_args=tuple(args),
        lock=lock,
        lock_timeout=parse_duration(lock_timeout),
        parallelism=parallelism,
        accept_new_host_keys=accept_new_host_keys,
        environ=dict(os.environ),
    )


_VAR_FLAGS = {"-var": "var", "--var": "var", "-var-file": "var-file", "--var-file": "var-file"}


def _ordered_var_args(
    argv: list[str], var: list[str], var_file: list[str]
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        name, eq, value = tok.partition("=")
        if name in _VAR_FLAGS and eq:
            found.append((_VAR_FLAGS[name], value))
        elif tok in _VAR_FLAGS and i + 1 < len(argv):
            found.append((_VAR_FLAGS[tok], argv[i + 1]))
            i += 1
        i += 1
    expected = sorted([("var", v) for v in var] + [("var-file", f) for f in var_file])
    if sorted(found) == expected:
        return found
    # Called other than from the command line (tests, a wrapper): keep typer's order.
    return [("var", v) for v in var] + [("var-file", f) for f in var_file]


def color_enabled(no_color: bool = False) -> bool:
    if no_color or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


# The diagnostics view of this command: text, or (-json) JSON lines. Chosen once per
# command by use_json_diagnostics(); main() resets it.
_json_diagnostics = False


def use_json_diagnostics(on: bool) -> None:
    """With -json: every diagnostic printed from now on (including a KplanError
    that main() reports) is one JSON line on standard error, in Terraform's
    machine-readable shape (``"type": "diagnostic"``; see json_diagnostics.py)."""
    global _json_diagnostics
    _json_diagnostics = on


def json_diagnostics_on() -> bool:
    return _json_diagnostics


def print_diagnostics(diags: list[Diagnostic]) -> None:
    for d in diags:
        if _json_diagnostics:
            typer.echo(ui_message(d), err=True)
        else:
            typer.echo(d.format() + "\n", err=True)
