"""What every docker resource type shares: hosts, error translation, batched reads.

:class:`Hosts` keeps what ``configure`` gave (the inventory and ``connect``).
:func:`guard` is the one place foreign exceptions become kplan diagnostics:

    HostUnreachable, a dropped session  → code ``host-unreachable`` (that host only)
    paramiko.SSHException               → code ``host-unreachable`` (the session dropped)
    paramiko.ChannelException           → code ``ssh-session-refused`` (sshd MaxSessions)
    docker.errors.APIError              → code ``docker-api``, naming the object
    docker.errors.DockerException       → code ``docker-api``

:class:`DockerType` is the SDK's :class:`~kplan.provider_sdk.ResourceType` with
the host's Docker API added: reads in one batch per host (hosts in parallel,
by the SDK), and every apply step gets a :class:`Target` holding the API. A
step never raises for an expected failure: it raises
:class:`~kplan.provider_sdk.Failed` (re-exported here), and the SDK base turns
it into a response.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ApplyRequest, ReadInstance
from kplan.provider_sdk import Failed, Inventory, ResourceType
from kplan.transport.base import UNREACHABLE_CODE, Connection, HostUnreachable, TransportError

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


class DockerType(ResourceType[Target]):
    """One resource type of the docker provider: hosted, with the host's Docker API.

    The SDK base routes apply by action and orders a replace by the schema's
    ``replace_order``; this adds the client: :meth:`read_host` gets the host's
    API, and every ``*_at`` step a :class:`Target` holding it.
    """

    hosted = True

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts

    # ---- read ---------------------------------------------------------------------

    def read_batch(
        self, host: str, instances: list[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
        return self.read_host(host, self.hosts.api(host), instances)

    @abc.abstractmethod
    def read_host(
        self, host: str, api: Any, instances: Sequence[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
        """Refresh every instance on one host in a constant number of API calls."""

    # ---- apply --------------------------------------------------------------------

    def target(self, req: ApplyRequest) -> Target:
        host = req.host or ""  # the SDK base refuses a hosted instance without a host
        return Target(req.address, host, self.hosts.api(host), self.hosts)
