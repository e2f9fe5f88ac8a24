"""How the rabbitmq provider reaches a broker: ``docker exec`` of ``rabbitmqctl``, as rabbitmq.

One exec runs one ``rabbitmqctl`` command in the broker's container, as the
container's ``rabbitmq`` user (whose home holds the Erlang cookie the CLI
needs), through the host's Docker API over its SSH session. Names travel as
the command's arguments; a password never does: it travels in the exec's
environment (``KPLAN_SECRET``) and reaches ``rabbitmqctl`` on its standard
input (``printf '%s' "$KPLAN_SECRET" | rabbitmqctl add_user NAME``), so no
``ps`` and no log shows it. A refresh reads everything with one
``rabbitmqctl export_definitions -`` (users with their password hashes,
vhosts, permissions) per container on each host, shared by the three types.

Foreign failures become diagnostics through the SDK's container exec
(:func:`kplan.provider_sdk.run_in_container`, with :data:`SERVICE`):

    docker NotFound (exec_create)            → ``rabbitmq-container-missing``
    docker APIError 409 (not running)        → ``rabbitmq-container-not-running`` (retried)
    "unable to perform an operation on node",
    "requires the 'rabbit' app to be running" → ``rabbitmq-not-ready`` (retried)
    exit 126/127 (no rabbitmqctl in the image) → ``rabbitmq-cli-missing``
    any other non-zero exit                  → ``rabbitmq-error``, with rabbitmqctl's words
    other docker / SSH errors                → ``docker-api`` / ``host-unreachable``

(retried: for the resource's ``wait`` seconds during apply; a refresh does not wait.)
"""

from __future__ import annotations

import abc
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyRequest,
    Attribute,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ResourceSchema,
    default_plan,
)
from kplan.provider_sdk import (
    ContainerHosts,
    ContainerService,
    ExecCommand,
    ExecOutput,
    Failed,
    ResourceType,
    States,
    attr_error,
    is_known,
    mask_secrets,
    plain,
    run_in_container,
    shared_read,
)

from ._definitions import Definitions

__all__ = [
    "COMMON_ATTRIBUTES",
    "SERVICE",
    "Ctl",
    "Definitions",
    "RabbitMQType",
    "Result",
    "Where",
    "check_common",
    "check_name",
    "normalised_plan",
    "run_ctl",
]

SECRET_ENV = "KPLAN_SECRET"
#: The exec's user: the broker's own, whose home holds the Erlang cookie.
USER = "rabbitmq"
CLI = "rabbitmqctl"
# The password comes from the environment on stdin: no argument of any process holds it.
_WITH_SECRET = f'printf "%s" "${SECRET_ENV}" | exec {CLI} "$@"'
#: The words and codes of the container exec's diagnostics.
SERVICE = ContainerService(
    prefix="rabbitmq",
    label="RabbitMQ broker",
    program=CLI,
    client=CLI,
    client_missing_code="rabbitmq-cli-missing",
    ready_verb="answer",
)
#: What rabbitmqctl prints when the node (or its rabbit application) does not answer.
_NOT_READY = (
    "unable to perform an operation on node",
    "requires the 'rabbit' app to be running",
    "unable to connect to node",
    "nodedown",
)
_USAGE = re.compile(r"\n\s*(?:\x1b\[1m)?Usage(?:\x1b\[0m)?\n.*", re.S)


@dataclass(frozen=True, slots=True)
class Ctl:
    """One rabbitmqctl command: its arguments, what it is for (in words), its secret."""

    args: tuple[str, ...]
    what: str
    secret: str = ""


@dataclass(frozen=True, slots=True)
class Result:
    exit_code: int
    stdout: str
    #: stderr, secrets masked, the usage text rabbitmqctl appends left out.
    stderr: str

    @property
    def not_ready(self) -> bool:
        return self.exit_code != 0 and any(s in self.stderr for s in _NOT_READY)

    @property
    def said(self) -> str:
        return _first_error(self.stderr)


def command(ctl: Ctl) -> list[str]:
    """The exec's argv: rabbitmqctl with the arguments, behind a pipe when there is a secret."""
    if ctl.secret:
        return ["sh", "-c", _WITH_SECRET, "sh", "-q", *ctl.args]
    return [CLI, "-q", *ctl.args]


def run_ctl(
    api: Any,
    host: str,
    container: str,
    ctl: Ctl,
    *,
    who: str,
    wait: float = 0.0,
    allowed: Callable[[Result], bool] = lambda r: False,
) -> Result:
    """Run ``ctl`` in ``container`` on ``host``; retry for ``wait`` seconds while the broker
    does not answer (starting) or its container is not running (restarting).

    Returns the result when rabbitmqctl exited 0 or ``allowed(result)`` holds (an
    expected failure: "already exists", "does not exist"); raises :class:`Failed`
    otherwise. ``who`` names the resources concerned, for the diagnostics.
    """
    return run_in_container(
        SERVICE,
        api,
        host,
        container,
        ExecCommand(command(ctl), USER, {SECRET_ENV: ctl.secret} if ctl.secret else None),
        what=ctl.what,
        who=who,
        wait=wait,
        reply=lambda out: _result(out, ctl),
        failed=lambda result: ctl_error(host, container, ctl.what, who, result),
        accept=allowed,
    )


def _result(out: ExecOutput, ctl: Ctl) -> Result:
    stderr = _USAGE.sub("", out.stderr)
    return Result(out.exit_code, out.stdout, mask_secrets(stderr, [ctl.secret]).strip())


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and ln.strip() != "Error:"]
    return "; ".join(lines[:3]) or "no message"


def ctl_error(host: str, container: str, what: str, who: str, result: Result) -> Diagnostic:
    return Diagnostic.error(
        f"host {host}: {what} failed ({who})",
        f'{CLI} in container "{container}" exited {result.exit_code}: '
        + _first_error(result.stderr),
        code="rabbitmq-error",
    )


READ = Ctl(("export_definitions", "-"), "reading definitions (export_definitions)")


@dataclass(frozen=True, slots=True)
class Where:
    """Where one apply happens: the address, its host's Docker API, the container."""

    address: str
    host: str
    api: Any
    container: str
    wait: float

    def run(self, ctl: Ctl, allowed: Callable[[Result], bool] = lambda r: False) -> Result:
        return run_ctl(
            self.api,
            self.host,
            self.container,
            ctl,
            who=self.address,
            wait=self.wait,
            allowed=allowed,
        )


def _who(addresses: Sequence[str]) -> str:
    more = len(addresses) - 1
    return addresses[0] + (f", and {more} more" if more > 0 else "")


class RabbitMQType(ResourceType[Where]):
    """A hosted type whose objects live in a RabbitMQ broker reached by ``docker exec``.

    A refresh runs one ``export_definitions`` per container on each host (normally
    one: ``rabbitmq``) for every instance of the three types there (shared through
    :func:`~kplan.provider_sdk.shared_read`); :meth:`parse` maps the definitions back
    to the instances.
    """

    hosted = True

    def __init__(self, hosts: ContainerHosts) -> None:
        self.hosts = hosts

    def read_batch(
        self, host: str, instances: list[ReadInstance]
    ) -> tuple[States, list[Diagnostic]]:
        by_container: dict[str, list[ReadInstance]] = defaultdict(list)
        for inst in instances:
            by_container[str(plain(inst.state.get("container")) or "rabbitmq")].append(inst)
        api = self.hosts.api(host)
        states: States = {}
        diags: list[Diagnostic] = []
        for container, group in sorted(by_container.items()):
            who = _who([i.address for i in group])
            try:
                # The same export answers users, vhosts and permissions: one per refresh.
                result = shared_read(
                    ("rabbitmq", host, container, READ.args),
                    functools.partial(run_ctl, api, host, container, READ, who=who),
                )
                try:
                    defs = Definitions.parse(result.stdout)
                except (ValueError, KeyError, TypeError) as exc:
                    raise Failed(
                        Diagnostic.error(
                            f"host {host}: {READ.what} gave what kplan cannot read ({who})",
                            f'{CLI} in container "{container}": {exc}',
                            code="rabbitmq-error",
                        )
                    ) from None
                for inst in group:
                    states[inst.address] = self.parse(inst, defs)
            except Failed as exc:
                diags.extend(exc.diagnostics)
        return states, diags

    @abc.abstractmethod
    def parse(self, inst: ReadInstance, defs: Definitions) -> Mapping[str, Any] | None:
        """The refreshed state of ``inst`` (None: gone) from the broker's definitions."""

    def target(self, req: ApplyRequest) -> Where:
        host = req.host or ""  # the SDK base refuses a hosted instance without a host
        state: Mapping[str, Any] = req.planned or req.prior or {}
        container = str(plain(state.get("container")) or "rabbitmq")
        wait = plain(state.get("wait"))
        wait_s = float(wait) if isinstance(wait, int | float) else 60.0
        return Where(req.address, host, self.hosts.api(host), container, wait_s)


#: Attributes every rabbitmq type has: where the broker is and how long apply waits for it.
COMMON_ATTRIBUTES = {
    "container": Attribute(
        "string",
        optional=True,
        default="rabbitmq",
        description="the RabbitMQ broker's container on the host (reached by docker exec)",
    ),
    "wait": Attribute(
        "number",
        optional=True,
        default=60,
        description="seconds apply waits for the broker to answer",
    ),
}

_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def check_common(config: Mapping[str, Any], *more: Diagnostic | None) -> list[Diagnostic]:
    """The checks of ``container`` and ``wait``, then the type's own (``more``, None: fine)."""
    out = []
    container = plain(config.get("container"))
    if isinstance(container, str) and not _CONTAINER_NAME.fullmatch(container):
        out.append(
            attr_error(
                "container",
                f"container {container!r} is not a Docker container name",
                "a name is letters, digits and _ . - , starting with a letter or digit",
                code="invalid-container",
            )
        )
    wait = plain(config.get("wait"))
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait < 0:
        out.append(attr_error("wait", "wait must be 0 or more seconds", code="invalid-wait"))
    return out + [d for d in more if d is not None]


def check_name(attribute: str, value: Any, what: str) -> Diagnostic | None:
    """A user or vhost name rabbitmqctl takes as one argument: not empty, no control
    characters, not starting with ``-`` (an option to rabbitmqctl)."""
    value = plain(value)
    if not isinstance(value, str):
        return None
    bad = ""
    if not value:
        bad = "is empty"
    elif value.startswith("-"):
        bad = "starts with '-' (rabbitmqctl would read it as an option)"
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        bad = "holds a control character"
    elif len(value.encode()) > 255:
        bad = "is longer than 255 bytes"
    if not bad:
        return None
    return attr_error(attribute, f"the {what} name {value!r} {bad}", code="invalid-name")


def normalised_plan(
    schema: ResourceSchema, req: PlanRequest, **normal: Callable[[Any], Any]
) -> PlanResponse:
    """``default_plan`` of the configuration with each named attribute in its canonical
    spelling (``normal[name](value)``, given the plain value; UNKNOWN passes through)."""
    config = dict(req.config)
    for name, canonical in normal.items():
        value = plain(config.get(name))
        if value is not None and is_known(value):
            config[name] = canonical(value)
    return default_plan(schema, dc_replace(req, config=config))
