"""The ``kplan`` command's front: give the command to a running kplan server, or run it here.

A kplan server (``kplan server start``, :mod:`kplan.server`) is kplan kept
running with everything a command needs already imported, and with the SSH
sessions of earlier commands still open. A command it runs starts in
milliseconds rather than the few tenths of a second a new Python process
takes to import kplan, SQLAlchemy, paramiko, the Docker SDK and Jinja2,
and reaches a host it reached before without a new handshake.

The command runs there as it would here. The server takes this process's
standard input, output and error themselves (passed over the socket, so a
terminal stays a terminal: colours, prompts and width work), its working
directory, environment and umask; it sends back the exit code. Ctrl-C is
passed on. With no server, or one that cannot take the command (busy with
another, or started from another installation of kplan), the command runs
here, as it always did.

Only the standard library is imported here: this runs first, for every command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import struct
import sys
from typing import Any, NoReturn

__all__ = ["main", "private_dir", "server_socket", "trusted"]

# Commands never given to a server: `lab` starts and stops processes of its own
# (they must not become the server's children), `server` talks to the server itself.
LOCAL_COMMANDS = frozenset({"lab", "server"})
PROTOCOL = 1


def main() -> NoReturn:
    """The ``kplan`` command (the console script and ``python -m kplan``)."""
    argv = sys.argv[1:]
    code = forward(argv)
    if code is None:
        from kplan.cli.main import main as run_here

        run_here(argv)
    sys.exit(code)


def server_socket() -> str | None:
    """Where a kplan server of this user listens; None when ``KPLAN_SERVER=off``.

    ``KPLAN_SERVER_SOCKET`` names the socket; by default it is ``server.sock``
    in ``$XDG_RUNTIME_DIR/kplan``, or in ``/tmp/kplan-UID`` (as tmux does).
    """
    if os.environ.get("KPLAN_SERVER", "").lower() in ("off", "0", "no", "false"):
        return None
    given = os.environ.get("KPLAN_SERVER_SOCKET")
    if given:
        return os.path.abspath(given)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    directory = os.path.join(runtime, "kplan") if runtime else f"/tmp/kplan-{os.getuid()}"
    return os.path.join(directory, "server.sock")


def trusted(path: str) -> bool:
    """Whether the socket at ``path`` can only be this user's.

    The command's environment (secrets among it) and terminal go to whoever
    listens there: the socket must be this user's, in a directory of this
    user's that no one else can write to.
    """
    try:
        sock = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISSOCK(sock.st_mode)
        and sock.st_uid == os.getuid()
        and private_dir(os.path.dirname(path))
    )


def private_dir(folder: str) -> bool:
    """Whether ``folder`` is a directory of this user that no one else can write to."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def forward(argv: list[str]) -> int | None:
    """Run the command in this user's kplan server: its exit code, or None to run it here."""
    if argv and argv[0] in LOCAL_COMMANDS:
        return None
    path = server_socket()
    if path is None or not trusted(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        if _peer_uid(sock) != os.getuid():
            # The folder was checked, but it could have changed since: the listener's
            # own uid is what decides who gets the environment and the terminal.
            sock.close()
            return None
        request = json.dumps(
            {
                "protocol": PROTOCOL,
                "op": "run",
                "argv": argv,
                "cwd": os.getcwd(),
                "env": dict(os.environ),
                "umask": _umask(),
                "python": sys.executable,
                "kplan": os.path.dirname(os.path.abspath(__file__)),
                "encoding": [_encoding(sys.stdin), _encoding(sys.stdout), _encoding(sys.stderr)],
            }
        ).encode()
        # The three standard streams ride with the length; the request follows.
        socket.send_fds(sock, [struct.pack("!I", len(request))], [0, 1, 2])
        sock.sendall(request)
        replies = sock.makefile("rb")
        answer = _reply(replies)
    except OSError:
        sock.close()
        return None
    if answer is None or "declined" in answer:
        sock.close()
        return None
    return _wait(sock, replies)


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _wait(sock: socket.socket, replies: Any) -> int | None:
    """Pass Ctrl-C (and a hang-up or TERM, as Ctrl-C) on until the exit code comes;
    None when the server declines the command after all (it is ending: nothing ran)."""

    def interrupt(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(b'{"signal": "INT"}\n')

    before = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        # One this process ignores (a job started in the background, nohup) would
        # not have stopped the command here either.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            before[signum] = signal.signal(signum, interrupt)
    while True:
        try:
            answer = _reply(replies)
        except InterruptedError:
            continue
        except OSError:
            answer = None
        if answer is None:
            sys.stderr.write(
                "Error: the kplan server ended before the command did; what the command "
                "changed is in the state up to that point. See `kplan server status`.\n"
            )
            return 1
        if "exit" in answer:
            return int(answer["exit"])
        if "declined" in answer:
            for signum, handler in before.items():
                signal.signal(signum, handler)  # the command runs here, as on its own
            return None


def _reply(replies: Any) -> dict[str, Any] | None:
    """The server's next reply; None when it closed the socket or sent no reply
    (a line that is not a JSON object: only a broken server sends one)."""
    line = replies.readline()
    if not line:
        return None
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _encoding(stream: Any) -> str | None:
    return getattr(stream, "encoding", None)
