"""How the mariadb provider reaches a server: ``docker exec`` of its own client, as root.

One exec runs one batch of SQL: ``mariadb --batch --skip-column-names`` in the
database container, as the container's root over the server's unix socket
(MariaDB's root@localhost authenticates by unix_socket: no password, and no
port opened to anyone). The SQL travels in the exec's environment
(``KPLAN_SQL``), never in a process's arguments; what the client prints on
stderr reaches a diagnostic only as its ``ERROR nnnn`` lines, with every
secret of the batch masked.

Foreign failures become diagnostics through the SDK's container exec
(:func:`kplan.provider_sdk.run_in_container`, with :data:`SERVICE`):

    docker NotFound (exec_create)        → ``mariadb-container-missing``
    docker APIError 409 (not running)    → ``mariadb-container-not-running``
    ERROR 2002/2003/2006/2013 (the socket) → ``mariadb-not-ready`` (apply retries for ``wait``)
    exit 126/127 (no client in the image)  → ``mariadb-client-missing``
    any other ERROR nnnn                 → ``mariadb-error``, with the server's words
    other docker / SSH errors            → ``docker-api`` / ``host-unreachable``
"""

from __future__ import annotations

import abc
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    Failed,
    ResourceType,
    States,
    attr_error,
    is_known,
    mask_secrets,
    plain,
    run_in_container,
)

from ._sql import SESSION_MODE, literal

__all__ = [
    "CLIENT_HOST",
    "COMMON_ATTRIBUTES",
    "SERVICE",
    "Batch",
    "MariaDBType",
    "Result",
    "Where",
    "check_common",
    "lower",
    "normalised_plan",
    "run_sql",
    "sql_error",
]

ENV = "KPLAN_SQL"
_CLIENT = "mariadb --batch --skip-column-names"
# The SQL comes from the environment: no argument of any process holds it.
COMMAND = ["sh", "-c", f'printf "%s\\n" "${ENV}" | {_CLIENT}']
#: The same, carrying on after a failed statement (reads that ask about absent users).
COMMAND_FORCE = ["sh", "-c", f'printf "%s\\n" "${ENV}" | {_CLIENT} --force']
# Client errors that mean "no server on the socket (yet)".
NOT_READY = frozenset({2002, 2003, 2006, 2013})
_ERROR_LINE = re.compile(r"^ERROR (\d+) \(\w+\)(?: at line \d+)?: (.*)$")
#: The words and codes of the container exec's diagnostics.
SERVICE = ContainerService(
    prefix="mariadb",
    label="MariaDB server",
    program="mariadb",
    client="mariadb client",
    client_missing_code="mariadb-client-missing",
    ready_verb="accept connections",
)


@dataclass(frozen=True, slots=True)
class Batch:
    """SQL to run in one exec, what it is for (in words) and the secrets it holds."""

    sql: str
    what: str
    secrets: tuple[str, ...] = ()
    force: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    exit_code: int
    stdout: str
    #: (code, message) of every ERROR line, secrets masked.
    errors: list[tuple[int, str]] = field(default_factory=list)

    def codes(self) -> set[int]:
        return {c for c, _ in self.errors}

    @property
    def not_ready(self) -> bool:
        """The client found no server on the socket (yet)."""
        return bool(self.codes() & NOT_READY)

    @property
    def said(self) -> str:
        return "; ".join(m for _, m in self.errors)


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret, as given and as quoted in SQL, replaced by (sensitive)."""
    return mask_secrets(text, (form for s in secrets if s for form in {s, literal(s)[1:-1]}))


def _errors(stderr: str, secrets: Sequence[str]) -> list[tuple[int, str]]:
    out = []
    for line in stderr.splitlines():
        m = _ERROR_LINE.match(line.strip())
        if m:
            out.append((int(m.group(1)), mask(m.group(2), secrets)))
    return out


def run_sql(
    api: Any, host: str, container: str, batch: Batch, *, who: str, wait: float = 0.0
) -> Result:
    """Run ``batch`` in ``container`` on ``host``; retry for ``wait`` seconds while the server
    does not accept connections (starting) or its container is restarting.

    Returns the result when the client ran (check ``errors`` for statements that
    failed under ``force``); raises :class:`Failed` otherwise. ``who`` names the
    resources concerned, for the diagnostics.
    """
    command = ExecCommand(
        COMMAND_FORCE if batch.force else COMMAND,
        user="root",
        environment={ENV: f"{SESSION_MODE}\n{batch.sql}"},
    )
    return run_in_container(
        SERVICE,
        api,
        host,
        container,
        command,
        what=batch.what,
        who=who,
        wait=wait,
        reply=lambda out: Result(out.exit_code, out.stdout, _errors(out.stderr, batch.secrets)),
        failed=lambda result: sql_error(host, container, batch.what, who, result),
        accept=lambda result: batch.force,
    )


def sql_error(host: str, container: str, what: str, who: str, result: Result) -> Diagnostic:
    words = "; ".join(f"ERROR {c}: {m}" for c, m in result.errors)
    return Diagnostic.error(
        f"host {host}: {what} failed ({who})",
        words or f'the mariadb client in container "{container}" exited {result.exit_code}',
        code="mariadb-error",
    )


@dataclass(frozen=True, slots=True)
class Where:
    """Where one apply happens: the address, its host's Docker API, the container."""

    address: str
    host: str
    api: Any
    container: str
    wait: float

    def run(self, batch: Batch) -> Result:
        return run_sql(self.api, self.host, self.container, batch, who=self.address, wait=self.wait)


def _who(addresses: Sequence[str]) -> str:
    more = len(addresses) - 1
    return addresses[0] + (f", and {more} more" if more > 0 else "")


class MariaDBType(ResourceType[Where]):
    """A hosted type whose objects live in a MariaDB server reached by ``docker exec``.

    A refresh runs one exec per container on each host (normally one: ``mariadb``)
    for every instance of the type there: :meth:`read_sql` writes the batch,
    :meth:`parse` maps its output back to the instances.
    """

    hosted = True

    def __init__(self, hosts: ContainerHosts) -> None:
        self.hosts = hosts

    def read_batch(
        self, host: str, instances: list[ReadInstance]
    ) -> tuple[States, list[Diagnostic]]:
        by_container: dict[str, list[ReadInstance]] = defaultdict(list)
        for inst in instances:
            by_container[str(plain(inst.state.get("container")) or "mariadb")].append(inst)
        api = self.hosts.api(host)
        states: States = {}
        diags: list[Diagnostic] = []
        for container, group in sorted(by_container.items()):
            batch = self.read_sql(group)
            who = _who([i.address for i in group])
            try:
                result = run_sql(api, host, container, batch, who=who)
                states.update(self.parse(group, result, host, container))
            except Failed as exc:
                diags.extend(exc.diagnostics)
        return states, diags

    @abc.abstractmethod
    def read_sql(self, instances: Sequence[ReadInstance]) -> Batch:
        """One batch that reads every instance given."""

    @abc.abstractmethod
    def parse(
        self, instances: Sequence[ReadInstance], result: Result, host: str, container: str
    ) -> States:
        """The refreshed state of each instance (None: gone) from the batch's output; may
        raise :class:`Failed` (host and container are for its diagnostic)."""

    def target(self, req: ApplyRequest) -> Where:
        host = req.host or ""  # the SDK base refuses a hosted instance without a host
        state: Mapping[str, Any] = req.planned or req.prior or {}
        container = str(plain(state.get("container")) or "mariadb")
        wait = plain(state.get("wait"))
        wait_s = float(wait) if isinstance(wait, int | float) else 60.0
        return Where(req.address, host, self.hosts.api(host), container, wait_s)


#: Attributes every mariadb type has: where the server is and how long apply waits for it.
COMMON_ATTRIBUTES = {
    "container": Attribute(
        "string",
        optional=True,
        default="mariadb",
        description="the MariaDB server's container on the host (reached by docker exec)",
    ),
    "wait": Attribute(
        "number",
        optional=True,
        default=60,
        description="seconds apply waits for the server to accept connections",
    ),
}

#: An account's host part (mariadb_user, mariadb_grant); MariaDB keeps it in lower case.
CLIENT_HOST = Attribute(
    "string",
    optional=True,
    default="%",
    force_new=True,
    normalized=True,
    description="where the user may connect from: the account's host part ('%': anywhere)",
)

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


def lower(value: Any) -> Any:
    """A known string in lower case (a host part as MariaDB stores it); anything else as is."""
    return value.lower() if isinstance(value, str) else value


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
