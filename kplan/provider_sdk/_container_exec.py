"""Running a command in a service's container on a host: ``docker exec`` over its Docker API.

For providers whose objects live inside a server that runs in a container on an
inventory host (kplan's mariadb and rabbitmq): the provider says what to run
and what the output means; this module runs it and maps every failure.

    ContainerService  what differs between services: the words and codes of the diagnostics
    ContainerHosts    the inventory; ``api(host)`` is the host's Docker API (its SSH session)
    docker_errors     the one place a Docker API failure becomes a diagnostic (table below)
    ExecCommand       argv, user and environment of one exec
    exec_output       one exec: create, start, inspect; the exit code, stdout and stderr
    run_in_container  one exec, retried while the container restarts or the service starts
    mask_secrets      a text with every secret replaced by ``(sensitive)``

Foreign failures become diagnostics here (PREFIX: the service's ``prefix``):

    docker NotFound                      → ``PREFIX-container-missing``
    docker APIError 409 (not running)    → ``PREFIX-container-not-running`` (status 409: retried)
    any other APIError                   → ``docker-api``, with the status
    SSH / socket errors                  → ``host-unreachable``
    other DockerException                → ``docker-api``
    exit 126/127 (no client in the image) → the service's ``client_missing_code``
    a reply that is ``not_ready``        → ``PREFIX-not-ready`` (retried for ``wait`` seconds)
    any other non-zero exit              → the provider's own diagnostic (``failed``)

Never here: a service's command line, quoting or output format; those stay in
its provider.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kplan.diagnostics import Diagnostic
from kplan.transport.base import UNREACHABLE_CODE, TransportError
from kplan.values import SENSITIVE_TEXT

from ._resource import Failed, Inventory

__all__ = [
    "ContainerHosts",
    "ContainerService",
    "ExecCommand",
    "ExecOutput",
    "ExecReply",
    "docker_errors",
    "exec_output",
    "mask_secrets",
    "run_in_container",
]

#: Exit codes of a shell that found no such program (127) or could not run it (126).
CLIENT_MISSING_EXITS = (126, 127)
#: Seconds between two attempts while waiting.
RETRY_INTERVAL = 1.0
# How long exec_output waits for Docker to record an exit after the output ends.
EXIT_POLL_SECONDS = 0.05
EXIT_POLLS = 100
EXIT_WAIT = EXIT_POLL_SECONDS * EXIT_POLLS


@dataclass(frozen=True, slots=True)
class ContainerService:
    """What the diagnostics say of one kind of service reached by ``docker exec``."""

    #: Prefix of the service's codes: ``PREFIX-container-missing``, ``PREFIX-not-ready``, ...
    prefix: str
    #: The service in words: "MariaDB server" ("needs the MariaDB server running").
    label: str
    #: The program an exec runs ("runs `mariadb` inside the container").
    program: str
    #: The client in words ('the container "x" has no mariadb client').
    client: str
    #: The code when the container has no such client.
    client_missing_code: str
    #: What the service does once ready ("does not accept connections").
    ready_verb: str


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each non-empty secret, in the order given, replaced by ``(sensitive)``."""
    for s in secrets:
        if s:
            text = text.replace(s, SENSITIVE_TEXT)
    return text


@contextlib.contextmanager
def docker_errors(
    service: ContainerService, host: str, what: str, container: str, who: str
) -> Iterator[None]:
    """Map what a Docker API call raises to :class:`Failed` naming host, container and who."""
    import docker.errors
    import paramiko
    import requests.exceptions

    where = f"host {host}"
    tail = f" ({who})" if who else ""
    try:
        yield
    except (Failed, TransportError) as exc:
        if isinstance(exc, Failed):
            raise
        raise Failed(*exc.diagnostics) from None
    except docker.errors.NotFound:
        raise Failed(
            Diagnostic.error(
                f'{where}: there is no container "{container}"{tail}',
                f"{what} needs the {service.label}'s container running on {host}; "
                "set `container` to its name",
                code=f"{service.prefix}-container-missing",
            )
        ) from None
    except docker.errors.APIError as exc:
        status = getattr(exc, "status_code", None)
        text = " ".join(str(getattr(exc, "explanation", None) or exc).split())
        if status == 409:
            raise Failed(
                Diagnostic.error(
                    f'{where}: the container "{container}" is not running{tail}',
                    f"{what} needs the {service.label} running; Docker says: {text}",
                    code=f"{service.prefix}-container-not-running",
                ),
                status=409,
            ) from None
        raise Failed(
            Diagnostic.error(
                f"{where}: {what} failed{tail}",
                f"the Docker API answered {status}: {text}",
                code="docker-api",
            ),
            status=status,
        ) from None
    except (requests.exceptions.ConnectionError, EOFError, OSError, paramiko.SSHException) as exc:
        raise Failed(
            Diagnostic.error(
                f"{where}: the Docker API is not reachable ({what}){tail}",
                " ".join(str(exc).split()),
                code=UNREACHABLE_CODE,
            )
        ) from None
    except docker.errors.DockerException as exc:
        raise Failed(
            Diagnostic.error(f"{where}: {what} failed{tail}", str(exc), code="docker-api")
        ) from None


class ContainerHosts(Inventory):
    """The inventory; ``api(host)`` is the host's Docker API (over its SSH session)."""

    def __init__(self, service: ContainerService) -> None:
        super().__init__()
        self.service = service

    def api(self, host: str) -> Any:
        with docker_errors(self.service, host, "connecting to the Docker API", "", ""):
            return self.connect(host).docker()


@dataclass(frozen=True, slots=True)
class ExecCommand:
    """One exec: the process's arguments, its user in the container, its environment."""

    argv: Sequence[str]
    user: str
    environment: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ExecOutput:
    """What one exec gave: its exit code, stdout and stderr (decoded, undamaged by masking)."""

    exit_code: int
    stdout: str
    stderr: str


def exec_output(api: Any, container: str, command: ExecCommand) -> ExecOutput:
    """Run ``command`` in ``container`` through ``api`` (a docker.APIClient) and wait for it.

    Raises what the Docker API raises: call it inside :func:`docker_errors`.
    """
    created = api.exec_create(
        container,
        list(command.argv),
        stdout=True,
        stderr=True,
        user=command.user,
        environment=None if command.environment is None else dict(command.environment),
    )
    out, err = api.exec_start(created["Id"], demux=True)
    # The output's stream can close a moment before Docker records the exit:
    # inspect then says Running with no ExitCode, which must not read as 0.
    inspected = api.exec_inspect(created["Id"])
    for _ in range(EXIT_POLLS):
        if not inspected.get("Running") and inspected.get("ExitCode") is not None:
            break
        time.sleep(EXIT_POLL_SECONDS)
        inspected = api.exec_inspect(created["Id"])
    code = inspected.get("ExitCode")
    stderr = (err or b"").decode("utf-8", "replace")
    if code is None:  # still no exit recorded: a failure, never a success
        stderr += f"\ndocker exec in {container}: no exit code {EXIT_WAIT:g} s after its output"
    return ExecOutput(
        -1 if code is None else int(code),
        (out or b"").decode("utf-8", "replace"),
        stderr,
    )


class ExecReply(Protocol):
    """What a provider makes of an :class:`ExecOutput` (its own dataclass, secrets masked)."""

    @property
    def exit_code(self) -> int: ...

    @property
    def not_ready(self) -> bool:
        """The client said the service does not answer (yet): it is starting."""
        ...

    @property
    def said(self) -> str:
        """What the client said of its failure, in a line, for a diagnostic."""
        ...


ReplyT = TypeVar("ReplyT", bound=ExecReply)


def run_in_container(
    service: ContainerService,
    api: Any,
    host: str,
    container: str,
    command: ExecCommand,
    *,
    what: str,
    who: str,
    wait: float,
    reply: Callable[[ExecOutput], ReplyT],
    failed: Callable[[ReplyT], Diagnostic],
    accept: Callable[[ReplyT], bool] = lambda r: False,
) -> ReplyT:
    """Run ``command`` in ``container`` on ``host``; retry for ``wait`` seconds while the
    container is not running (restarting) or the reply is ``not_ready`` (starting).

    Returns ``reply(output)`` when the exec exited 0, or when it is not ``not_ready`` and
    ``accept`` takes it (an expected failure); raises :class:`Failed` otherwise, with
    ``failed(reply)`` for a failure the service reported. ``what`` says what the command
    is for and ``who`` names the resources concerned, for the diagnostics.
    """
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            with docker_errors(service, host, what, container, who):
                result = reply(exec_output(api, container, command))
        except Failed as exc:
            if exc.status != 409 or time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_INTERVAL)
            continue
        if result.exit_code in CLIENT_MISSING_EXITS:
            raise Failed(
                Diagnostic.error(
                    f'host {host}: the container "{container}" has no {service.client} ({who})',
                    f"{what} runs `{service.program}` inside the container "
                    f"(exit {result.exit_code})",
                    code=service.client_missing_code,
                )
            )
        if result.exit_code == 0 or (not result.not_ready and accept(result)):
            return result
        if result.not_ready:
            if time.monotonic() < deadline:
                time.sleep(RETRY_INTERVAL)
                continue
            waited = f" (waited {wait:g}s)" if wait > 0 else ""
            raise Failed(
                Diagnostic.error(
                    f'host {host}: the {service.label} in container "{container}" does not '
                    f"{service.ready_verb}{waited} ({who})",
                    f"{what}: {result.said}",
                    code=f"{service.prefix}-not-ready",
                )
            )
        raise Failed(failed(result))
