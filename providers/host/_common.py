"""What every host resource type shares: the inventory, connections, checks and errors.

:class:`HostContext` is the SDK's :class:`~kplan.provider_sdk.Inventory` (what
``configure()`` gave: the hosts and ``connect``); :class:`HostResourceType` is
the SDK's hosted :class:`~kplan.provider_sdk.ResourceType` whose apply steps
get the host's connection (:class:`OnHost`) and come down to two:
``write_on`` (create or update) and ``delete_on``. The SDK base refuses an
instance without a ``host`` and turns transport failures into diagnostics —
``host-unreachable`` for a host that cannot be reached (the engine stops
only that host's work), ``command-failed`` for a command that failed.
Nothing here raises for an expected failure.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import CREATE_BEFORE_DESTROY, ApplyRequest, ApplyResponse
from kplan.provider_sdk import (
    Inventory,
    NotConfigured,
    ResourceType,
    attr_error,
    check_mode,
    missing_host,
    plain,
    transport_diag,
)
from kplan.transport.base import Connection

__all__ = [
    "CREATE_BEFORE_DESTROY",
    "HostContext",
    "HostResourceType",
    "NotConfigured",
    "OnHost",
    "check_abs_path",
    "check_mode",
    "check_principal",
    "no_host",
    "normalize_mode",
    "transport_diag",
]

#: The inventory and the way to reach its hosts; set by ``configure()`` once per run.
HostContext = Inventory


def no_host(type_name: str) -> Diagnostic:
    return missing_host(type_name)


# A user or group: a name as useradd accepts it, or a numeric id.
_PRINCIPAL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}\$?|[0-9]{1,10}")


def normalize_mode(mode: str) -> str:
    """``"644"`` → ``"0644"``."""
    return mode.rjust(4, "0")


def check_abs_path(path: Any, what: str = "file") -> Diagnostic | None:
    path = plain(path)
    if not isinstance(path, str):
        return None
    if not path.startswith("/"):
        return attr_error(
            "path",
            f'path "{path}" is not absolute',
            f"a {what} on a host is named by an absolute path, e.g. /etc/kolla/keystone/",
            code="invalid-path",
        )
    if "\0" in path or "\n" in path:
        return attr_error(
            "path", "path must not hold NUL or newline characters", code="invalid-path"
        )
    if what == "file" and (path.endswith("/") or path.endswith("/.") or path.endswith("/..")):
        return attr_error(
            "path", f'path "{path}" names a directory', "give a file name", code="invalid-path"
        )
    return None


def check_principal(attribute: str, value: Any) -> Diagnostic | None:
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    if not _PRINCIPAL_RE.fullmatch(text):
        kind = "user" if attribute == "owner" else "group"
        return attr_error(
            attribute,
            f"{attribute} {text!r} is not a {kind} name or a numeric id",
            "use a name such as kolla or a number such as 42401",
            code=f"invalid-{attribute}",
        )
    return None


def principal(value: Any) -> str | None:
    """An owner or group as the string given to the host (numbers as digits)."""
    value = plain(value)
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class OnHost:
    """Where one apply happens: the instance's address, its host and the connection."""

    address: str
    host: str
    conn: Connection


class HostResourceType(ResourceType[OnHost]):
    """A resource type whose instances live on one host each; replaced create-first.

    A replace writes the new object before the old one is removed (declare
    ``replace_order=CREATE_BEFORE_DESTROY`` in the schema); with the same path it
    is one write over the old object.
    """

    hosted = True
    #: Planned attributes that must be known before anything is written.
    known_at_apply: Sequence[str] = ("path",)
    #: The attribute a failed command is reported on.
    error_attribute = "path"

    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx

    def target(self, req: ApplyRequest) -> OnHost:
        host = req.host or ""  # the SDK base refuses a hosted instance without a host
        return OnHost(req.address, host, self.ctx.connect(host))

    def create_at(self, t: OnHost, planned: Mapping[str, Any]) -> ApplyResponse:
        return self.write_on(t.conn, None, planned)

    def update_at(
        self, t: OnHost, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self.write_on(t.conn, prior, planned)

    def replace_at(
        self, t: OnHost, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        if plain(prior.get("path")) == plain(planned.get("path")):
            return self.write_on(t.conn, prior, planned)
        return super().replace_at(t, prior, planned)

    def delete_at(self, t: OnHost, prior: Mapping[str, Any]) -> ApplyResponse:
        return self.delete_on(t.conn, prior)

    @abc.abstractmethod
    def write_on(
        self, conn: Connection, prior: Mapping[str, Any] | None, planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Create or update: make the host match ``planned``; return the new state."""

    @abc.abstractmethod
    def delete_on(self, conn: Connection, prior: Mapping[str, Any]) -> ApplyResponse: ...
