"""What every docker resource type shares: hosts, error translation, batched reads.

:class:`Hosts` keeps what ``configure`` gave (the inventory and ``connect``).
:func:`guard` is the one place foreign exceptions become kplan diagnostics:

    HostUnreachable, a dropped session  → code ``host-unreachable`` (that host only)
    paramiko.SSHException               → code ``host-unreachable`` (the session dropped)
    paramiko.ChannelException           → code ``ssh-session-refused`` (sshd MaxSessions)
    docker.errors.APIError              → code ``docker-api``, naming the object
    docker.errors.DockerException       → code ``docker-api``

:class:`DockerType` routes apply by action with the request's address and host
(the builtin base class passes the planned state only), and reads in one
batch per host, hosts in parallel. A step never raises for an expected
failure: it raises :class:`Failed` inside, and the base turns it into a response.
"""

from __future__ import annotations

import abc
import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    ReadInstance,
    ReadResponse,
)
from kplan.transport.base import UNREACHABLE_CODE, Connection, HostUnreachable, TransportError
from providers.builtin._common import Inventory, ResourceType

__all__ = [
    "ADDRESS_LABEL",
    "API_CODE",
    "MANAGED_LABEL",
    "SESSION_REFUSED_CODE",
    "SPEC_LABEL",
    "STAGED_LABEL",
    "DockerType",
    "Failed",
    "Hosts",
    "Target",
    "guard",
]

MANAGED_LABEL = "kplan.managed"
ADDRESS_LABEL = "kplan.address"
SPEC_LABEL = "kplan.spec"
# On a replacement created under a temporary name: that name. While the container
# still has it, it is an unfinished replacement (refresh skips it, the next apply
# removes it); once renamed into place the label is inert.
STAGED_LABEL = "kplan.staged_as"
MANAGED_FILTER = f"{MANAGED_LABEL}=true"
API_CODE = "docker-api"
SESSION_REFUSED_CODE = "ssh-session-refused"
# Hosts refreshed at once; each costs one SSH session's round trips.
READ_PARALLELISM = 16


class Failed(Exception):
    """An expected failure inside a step; carries the diagnostics to report."""

    def __init__(self, *diagnostics: Diagnostic, status: int | None = None) -> None:
        self.diagnostics = list(diagnostics)
        # The HTTP status of a Docker API error (404: no such object, 409: conflict).
        self.status = status
        super().__init__("; ".join(str(d) for d in diagnostics))


def unreachable(host: str, summary: str, detail: str = "") -> Diagnostic:
    return Diagnostic.error(f"host {host}: {summary}", detail, code=UNREACHABLE_CODE)


def _explanation(exc: Exception) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())


@contextlib.contextmanager
def guard(host: str, what: str, attribute: str | None = None) -> Iterator[None]:
    """Turn what a Docker call may raise into :class:`Failed` with one clear diagnostic.

    ``what`` says what was being done (``"creating container keystone"``);
    ``attribute`` is the attribute the failure concerns, for the file position.
    """
    import docker.errors
    import paramiko
    import requests.exceptions

    try:
        yield
    except Failed:
        raise
    except HostUnreachable as exc:
        d = exc.diagnostics[0]
        raise Failed(Diagnostic.error(d.summary, d.detail, code=UNREACHABLE_CODE)) from None
    except TransportError as exc:
        raise Failed(*exc.diagnostics) from None
    except docker.errors.APIError as exc:
        status = getattr(exc, "status_code", None)
        detail = f"the Docker API answered {status}: {_explanation(exc)}"
        d = Diagnostic.error(f"host {host}: {what} failed", detail, code=API_CODE)
        if attribute:
            d = Diagnostic(d.severity, d.summary, d.detail, None, d.code, (attribute,))
        raise Failed(d, status=status) from None
    except (requests.exceptions.ConnectionError, EOFError, OSError) as exc:
        # The session or the engine's socket went away under us.
        raise Failed(
            unreachable(host, f"the Docker API is not reachable ({what})", _explanation(exc))
        ) from None
    except paramiko.ChannelException as exc:
        # The SSH connection is fine; sshd refused one more session on it.
        raise Failed(
            Diagnostic.error(
                f"host {host}: sshd refused another SSH session (MaxSessions); {what} failed",
                f"{_explanation(exc)}\nkplan opens one SSH session per Docker API call and "
                "command in flight on a host; raise MaxSessions in the host's sshd_config "
                "(its default is 10), or lower kplan's -parallelism",
                code=SESSION_REFUSED_CODE,
            )
        ) from None
    except paramiko.SSHException as exc:
        # docker-py lets paramiko's errors escape when the session drops under it.
        raise Failed(
            unreachable(host, f"lost the SSH session ({what})", _explanation(exc))
        ) from None
    except docker.errors.DockerException as exc:
        raise Failed(
            Diagnostic.error(f"host {host}: {what} failed", _explanation(exc), code=API_CODE)
        ) from None


class Hosts(Inventory):
    """The inventory and the shared connections, as ``configure`` gave them."""

    def connection(self, host: str) -> Connection:
        connect = self._connect
        if connect is None:
            raise Failed(
                Diagnostic.error(
                    "the docker provider was not configured",
                    "kplan calls configure() with the inventory before any read or apply",
                    code="provider-not-configured",
                )
            )
        if self.hosts and host not in self.hosts:
            raise Failed(
                Diagnostic.error(
                    f'host "{host}" is not in the inventory',
                    "known hosts: " + ", ".join(sorted(self.hosts)),
                    code="unknown-host",
                )
            )
        return connect(host)

    def api(self, host: str) -> Any:
        """The host's ``docker.APIClient``; raises :class:`Failed`."""
        with guard(host, "connecting to the Docker API"):
            return self.connection(host).docker()


@dataclass(frozen=True, slots=True)
class Target:
    """Where one apply happens."""

    address: str
    host: str
    api: Any
    hosts: Hosts

    def guard(
        self, what: str, attribute: str | None = None
    ) -> contextlib.AbstractContextManager[None]:
        return guard(self.host, what, attribute)


def no_host(type_name: str, address: str) -> Diagnostic:
    return Diagnostic.error(
        f"{address}: a {type_name} needs a host",
        'set "host" on the resource (for example host: ${each.key} with for_each over a group)',
        code="missing-host",
    )


class DockerType(ResourceType):
    """One resource type of the docker provider."""

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts

    # ---- read ---------------------------------------------------------------------

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        """Group by host, one :meth:`read_host` per host, hosts in parallel.

        A host that fails (unreachable, API error) leaves its instances out of the
        answer, so state keeps what it recorded for them, and adds one diagnostic.
        """
        by_host: dict[str, list[ReadInstance]] = defaultdict(list)
        diags: list[Diagnostic] = []
        for inst in instances:
            if inst.host is None:
                diags.append(no_host(self.type_name, inst.address))
            else:
                by_host[inst.host].append(inst)
        hosts = sorted(by_host)

        def one(host: str) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
            try:
                api = self.hosts.api(host)
                return self.read_host(host, api, by_host[host])
            except Failed as exc:
                return {}, exc.diagnostics

        states: dict[str, Mapping[str, Any] | None] = {}
        if len(hosts) <= 1:
            results = [one(h) for h in hosts]
        else:
            with ThreadPoolExecutor(max_workers=min(READ_PARALLELISM, len(hosts))) as pool:
                results = list(pool.map(one, hosts))
        for found, host_diags in results:
            states.update(found)
            diags.extend(host_diags)
        return ReadResponse(states, diags)

    @abc.abstractmethod
    def read_host(
        self, host: str, api: Any, instances: Sequence[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
        """Refresh every instance on one host in a constant number of API calls."""

    # ---- apply --------------------------------------------------------------------

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        if req.host is None:
            return ApplyResponse(req.prior, [no_host(self.type_name, req.address)])
        try:
            api = self.hosts.api(req.host)
        except Failed as exc:
            return ApplyResponse(req.prior, exc.diagnostics)
        t = Target(req.address, req.host, api, self.hosts)
        if req.action == "delete":
            if req.prior is None:
                return ApplyResponse(None)
            return self._run(lambda: self.delete_at(t, req.prior or {}), req.prior)
        if req.planned is None:
            msg = f"{req.action} of {self.type_name} needs a planned state"
            return ApplyResponse(req.prior, [Diagnostic.error(msg)])
        planned = req.planned
        prior = req.prior
        if req.action == "create" or prior is None:
            return self._run(lambda: self.create_at(t, planned), None)
        if req.action == "update":
            return self._run(lambda: self.update_at(t, prior, planned), prior)
        if req.action == "replace":
            return self._run(lambda: self.replace_at(t, prior, planned), prior)
        if req.action == "restart" and self.schema.restartable:
            return self._run(lambda: self.restart_at(t, prior, planned), prior)
        return ApplyResponse(
            prior,
            [
                Diagnostic.error(
                    f'{self.type_name} does not support the action "{req.action}"',
                    "plan it as a replace instead",
                    code="unsupported-action",
                )
            ],
        )

    @staticmethod
    def _run(
        step: Callable[[], ApplyResponse], fallback: Mapping[str, Any] | None
    ) -> ApplyResponse:
        try:
            return step()
        except Failed as exc:
            return ApplyResponse(fallback, exc.diagnostics)

    @abc.abstractmethod
    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse: ...

    def update_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self.update(prior, planned)

    def replace_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Delete, then create: for objects that cannot exist twice (a volume's name is
        its identity). ``docker_container`` overrides it to create the new one first."""
        deleted = self.delete_at(t, prior)
        if any(d.is_error for d in deleted.diagnostics):
            return ApplyResponse(prior, deleted.diagnostics)
        created = self.create_at(t, planned)
        return ApplyResponse(created.new_state, [*deleted.diagnostics, *created.diagnostics])

    def restart_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        raise Failed(
            Diagnostic.error(f"{self.type_name} cannot restart", code="unsupported-action")
        )

    @abc.abstractmethod
    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse: ...

    # The builtin base's planned-state-only steps: never used here.
    def create(self, planned: Mapping[str, Any]) -> ApplyResponse:  # pragma: no cover
        raise NotImplementedError("docker types apply through apply()")
