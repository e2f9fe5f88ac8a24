"""What a provider may do on a host: run a command, read and write files, talk to Docker.

One :class:`Connection` per host per run, opened on first use and shared by
every provider and thread (the implementations are thread-safe). Two kinds
exist: SSH (:mod:`kplan.transport.ssh`, one Fabric/paramiko session per host
that also carries the Docker API) and ``connection: local``
(:mod:`kplan.transport.local`, the machine itself).

Failures are exceptions with one line a user can act on:
:class:`HostUnreachable` when a host cannot be reached or logged into (the
executor then stops that host's work and carries on with the others), and
:class:`CommandFailed` when a command exits non-zero.
"""

from __future__ import annotations

import abc
import contextlib
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kplan.diagnostics import Diagnostic, KplanError

__all__ = [
    "CommandFailed",
    "CommandResult",
    "Connection",
    "HostUnreachable",
    "TransportError",
    "close_quietly",
    "command_text",
]

# Codes of the diagnostics built from these errors; the executor keys on them.
UNREACHABLE_CODE = "host-unreachable"


class TransportError(KplanError):
    """A failure talking to one host; the message names the host."""

    def __init__(self, host: str, summary: str, detail: str = "", code: str = "transport") -> None:
        self.host = host
        super().__init__(Diagnostic.error(f"host {host}: {summary}", detail, code=code))


class HostUnreachable(TransportError):
    """The host could not be reached, refused our key, or its host key is not trusted."""

    def __init__(self, host: str, summary: str, detail: str = "") -> None:
        super().__init__(host, summary, detail, code=UNREACHABLE_CODE)


class CommandFailed(TransportError):
    def __init__(self, host: str, command: str, result: CommandResult) -> None:
        self.result = result
        tail = result.stderr_text().strip().splitlines()[-10:]
        super().__init__(
            host,
            f"command exited {result.exit_code}: {_short(command)}",
            "\n".join(tail),
            code="command-failed",
        )


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_code: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def command_text(command: str | Sequence[str]) -> str:
    """A shell command line: a string as given, a list quoted word by word."""
    return command if isinstance(command, str) else shlex.join(command)


def _short(command: str, limit: int = 120) -> str:
    line = " ".join(command.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Connection(abc.ABC):
    """One host. Every method may raise :class:`HostUnreachable`."""

    #: The host's name in the inventory.
    host: str

    @abc.abstractmethod
    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        """Run a shell command line (a list is quoted for the shell) as the login user.

        With ``check`` a non-zero exit raises :class:`CommandFailed`.
        """

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    @abc.abstractmethod
    def write_file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        atomic: bool = True,
        parents: bool = False,
    ) -> None:
        """Write a file. Atomic: a temporary file in the same directory, then a rename,
        so a reader sees the old or the new content, never a half. ``atomic=False``
        rewrites the file in place (same inode: bind mounts of it see the change).
        ``parents`` makes missing directories on the way, as ``mkdir -p`` run by the
        login user would."""

    @abc.abstractmethod
    def docker(self) -> Any:
        """A ``docker.APIClient`` for the host's Docker (or Podman) API, over the same
        session. Created on first use; safe to share between threads."""

    @abc.abstractmethod
    def close(self) -> None: ...


def close_quietly(thing: Any) -> None:
    """Close ``thing``, ignoring any error: a host that went away must not hide a run's result."""
    with contextlib.suppress(Exception):
        thing.close()
