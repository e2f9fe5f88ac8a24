"""The ``kplan`` command and the one place that turns errors into exit codes.

Exit codes: 0 success; 1 error; 2 with ``-detailed-exitcode`` when a plan
has changes. Flags are written as Terraform writes them (``-out FILE``,
``-refresh=false``); the GNU forms (``--out``, ``--no-refresh``) work too.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import os
import re
import sys
import threading
from typing import Any, NoReturn

import typer

from kplan import __version__
from kplan.cli import inspect as inspect_cmd
from kplan.cli import lab as lab_cmd
from kplan.cli import run as run_cmd
from kplan.cli import server as server_cmd
from kplan.cli import state as state_cmd
from kplan.cli import workspace as workspace_cmd
from kplan.cli.common import print_diagnostics, use_json_diagnostics
from kplan.diagnostics import KplanError

__all__ = ["app", "main", "run_command"]

app = typer.Typer(
    name="kplan",
    help="Plan and apply containerized OpenStack control planes, Terraform-style.\n\n"
    "Typical use: kplan init, kplan plan -out tfplan, kplan apply tfplan.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "-help", "--help"]},
    pretty_exceptions_enable=False,
)
run_cmd.register(app)
inspect_cmd.register(app)
app.add_typer(state_cmd.app, name="state")
app.add_typer(workspace_cmd.app, name="workspace")
app.add_typer(lab_cmd.app, name="lab")
app.add_typer(server_cmd.app, name="server")


@app.command()
def version() -> None:
    """Print kplan's version.

    Example: kplan version
    """
    typer.echo(f"kplan v{__version__}")


# Boolean flags that Terraform writes as -flag=true / -flag=false.
_BOOL_FLAGS = {"refresh", "lock"}
# The exit code of a command stopped by Ctrl-C (128 + SIGINT), as a shell's.
INTERRUPTED = 130
_BOOL_ARG = re.compile(r"^--?(?P<name>[a-z-]+)=(?P<value>true|false)$")


def normalize_argv(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        m = _BOOL_ARG.match(a)
        if m and m["name"] in _BOOL_FLAGS:
            out.append(f"--{m['name']}" if m["value"] == "true" else f"--no-{m['name']}")
        elif a in ("-no-color",):
            out.append("--no-color")
        else:
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``kplan`` command: run it, then end the process (see :func:`_end`)."""
    # A plan holds hundreds of thousands of long-lived objects (records, changes);
    # with the default thresholds the collector rescans them over and over (a third
    # of a 100,000-resource plan's time). They hold no cycles worth collecting early.
    gc.set_threshold(200_000, 50, 1000)
    args = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    _end(_run(args))


@functools.cache
def _click_command() -> Any:
    """The click command typer builds from ``app``: 35 ms, once per process (a
    kplan server runs many commands)."""
    return typer.main.get_command(app)


def run_command(argv: list[str]) -> int:
    """Run one command and return its exit code (the process goes on: kplan.server)."""
    return _run(normalize_argv(list(argv)))


def _run(args: list[str]) -> int:
    use_json_diagnostics(False)
    try:
        # Without standalone mode click returns the code of a typer.Exit.
        code = _click_command()(args=args, prog_name="kplan", standalone_mode=False)
        if code == INTERRUPTED:
            # typer turns a KeyboardInterrupt into Exit(130) before it reaches the
            # handler below (and kplan's commands never exit 130 themselves).
            typer.echo("Interrupted.", err=True)
    except KplanError as exc:
        print_diagnostics(exc.diagnostics)
        return 1
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return INTERRUPTED
    except typer.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        typer.echo(str(exc.code), err=True)
        return 1
    except Exception as exc:
        # typer vendors click: match its usage errors by shape, not by class.
        show = getattr(exc, "show", None)
        if callable(show) and isinstance(getattr(exc, "exit_code", None), int):
            show()
            # 1, not click's 2: with -detailed-exitcode, 2 means "the plan has changes".
            return 1
        if type(exc).__name__ == "Abort":
            typer.echo("Aborted.", err=True)
            return 1
        if os.environ.get("KPLAN_DEBUG"):
            raise
        typer.echo(
            f"Error: internal error: {type(exc).__name__}: {exc}\n"
            "  This is a bug in kplan. Run again with KPLAN_DEBUG=1 for the traceback, "
            "and report it.",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


def _end(code: int) -> NoReturn:
    """End the process without taking the interpreter apart.

    Everything the command imported (SQLAlchemy, paramiko, the Docker SDK,
    Jinja2, ...) and built (a plan, its state) would otherwise be freed
    module by module after the work is done: 0.1 s at the end of every
    command, 0.2 s after a plan of a small cloud. mypy ends the same way.
    What an exit must still do is done first: exit handlers run (log
    handlers flushed, finalizers, coverage), and the standard streams are
    flushed. With a thread of the command's own still running, the process
    ends the ordinary way, which waits for it.
    """
    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.current_thread()
    ):
        sys.exit(code)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # CPython's, as exit() runs them
    if run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe (kplan plan | head) has nothing left to lose.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
