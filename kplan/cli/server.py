"""``kplan server start|status|stop``: keep kplan running, so that commands start warm.

See :mod:`kplan.server` for what the server keeps (imported code, SSH
sessions) and what it never does (carry anything else from one command to
the next, serve another user).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from kplan.cli.common import parse_duration
from kplan.client import private_dir, server_socket

__all__ = ["app"]

app = typer.Typer(
    help="Keep kplan running between commands: they then start in milliseconds and "
    "reuse SSH sessions. Optional; commands run the same with or without it.",
    no_args_is_help=True,
)

START_TIMEOUT = 60.0


def _socket() -> str:
    path = server_socket()
    if path is None:
        typer.echo("Error: KPLAN_SERVER=off: no kplan server is used.", err=True)
        raise typer.Exit(1)
    return path


def _log(path: str) -> str:
    return os.path.join(os.path.dirname(path), "server.log")


@app.command()
def start(
    idle_timeout: Annotated[
        str,
        typer.Option(
            "-idle-timeout",
            "--idle-timeout",
            help="End after this long without a command, e.g. 30m, 2h (0: never).",
        ),
    ] = "30m",
) -> None:
    """Start this user's kplan server, unless one runs already.

    Every later kplan command (but `lab` and `server`) is run by it, as it
    would run on its own: same output, exit code, prompts and Ctrl-C. It
    ends after the idle timeout, with `kplan server stop`, or once kplan's
    code changes on disk (commands then run on their own again).

    Example: kplan server start -idle-timeout 2h
    """
    from kplan.server import request

    idle = parse_duration(idle_timeout)
    path = _socket()
    running = request(path, "status")
    if running is not None:
        typer.echo(f"A kplan server runs already (pid {running['pid']}, socket {path}).")
        return
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if not private_dir(folder):
        # Another user's folder (made first in /tmp), or one others can write to: the
        # log and the socket there would be theirs to redirect or to answer.
        typer.echo(
            f"Error: {folder} is not a folder of yours that only you can write to; "
            "remove it, or set KPLAN_SERVER_SOCKET to a socket in a folder of yours.",
            err=True,
        )
        raise typer.Exit(1)
    log_path = _log(path)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from kplan.server import main; main()", path, str(idle)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd="/",
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        status = request(path, "status")
        if status is not None and status["pid"] == proc.pid:
            ends = f"after {idle_timeout} without a command" if idle else "never on its own"
            typer.echo(f"kplan server started (pid {proc.pid}, socket {path}); it ends {ends}.")
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.terminate()
    typer.echo(f"Error: the kplan server did not start. Its log, {log_path}, ends:", err=True)
    typer.echo(_tail(log_path), err=True)
    raise typer.Exit(1)


@app.command()
def status() -> None:
    """Show whether this user's kplan server runs, and what it keeps.

    Example: kplan server status
    """
    _, answer = _running()
    if answer is None:
        raise typer.Exit(1)
    typer.echo(_status_text(answer))


def _running() -> tuple[str, dict[str, Any] | None]:
    """The socket, and the status of the server there (None: says none runs)."""
    from kplan.server import request

    path = _socket()
    answer = request(path, "status")
    if answer is None:
        typer.echo(f"No kplan server runs (socket {path}).")
    return path, answer


def _status_text(s: dict[str, Any]) -> str:
    up = time.time() - float(s["started"])
    idle = float(s["idle_timeout"])
    sessions = s["ssh_sessions"]
    lines = [
        f"kplan server: pid {s['pid']}, socket {s['socket']}",
        f"  up {_human(up)}; ends after {_human(idle) if idle else 'no'} idle time",
        f"  commands run: {s['commands']}{' (one running now)' if s['busy'] else ''}",
        f"  SSH sessions kept: {len(sessions)}" + (f" ({', '.join(sessions)})" if sessions else ""),
        f"  SSH sessions opened: {s['ssh_opened']}, reused: {s['ssh_reused']}",
    ]
    return "\n".join(lines)


def _human(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@app.command()
def stop() -> None:
    """Stop this user's kplan server (after the command it runs, if any, ends).

    Example: kplan server stop
    """
    from kplan.server import request

    path, status = _running()
    if status is None:
        return
    pid = int(status["pid"])
    if status["busy"]:
        typer.echo("Waiting for the command the kplan server runs to end...")
    request(path, "stop")
    while _alive(pid):
        time.sleep(0.05)
    typer.echo(f"kplan server stopped (pid {pid}).")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Not our child: a zombie cannot be, so "alive" is the /proc entry's state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
