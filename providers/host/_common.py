"""What every host resource type shares: the inventory, connections, checks and errors.

:class:`HostContext` holds what ``configure()`` gave (the inventory and
``connect``); :class:`HostResourceType` adds to the built-in
:class:`~providers.builtin._common.ResourceType` the host handling: an
instance without a ``host`` is refused, ``apply`` gets the host's
connection, and transport failures become diagnostics — ``host-unreachable``
for a host that cannot be reached (the engine stops only that host's work),
``command-failed`` for a command that failed. Nothing here raises for an
expected failure.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_api import ApplyRequest, ApplyResponse
from kplan.transport.base import UNREACHABLE_CODE, Connection, TransportError
from providers.builtin._common import (
    Inventory,
    ResourceType,
    attr_error,
    check_mode,
    is_known,
    plain,
)

__all__ = [
    "HostContext",
    "HostResourceType",
    "check_abs_path",
    "check_mode",
    "check_principal",
    "no_host",
    "normalize_mode",
    "transport_diag",
]

# A user or group: a name as useradd accepts it, or a numeric id.
_PRINCIPAL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}\$?|[0-9]{1,10}")


class HostContext(Inventory):
    """The inventory and the way to reach its hosts; set by ``configure()`` once per run."""

    def connect(self, host: str) -> Connection:
        """The host's shared connection; raises HostUnreachable (or KeyError-free errors)."""
        connect = self._connect
        if connect is None:
            raise NotConfigured(host)
        return connect(host)


class NotConfigured(TransportError):
    """The engine did not call ``configure()``: no way to reach any host."""

    def __init__(self, host: str) -> None:
        super().__init__(
            host,
            "the host provider has no connection to it",
            "the engine did not configure the host provider with the inventory; "
            "this is a bug in kplan, please report it",
            code="provider-not-configured",
        )


def transport_diag(exc: TransportError, attribute: str = "") -> Diagnostic:
    """A transport failure as a diagnostic; unreachable hosts keep their code."""
    d = exc.diagnostics[0] if exc.diagnostics else Diagnostic.error(str(exc))
    path: tuple[str | int, ...] = (attribute,) if attribute else ()
    if d.code == UNREACHABLE_CODE:
        path = ()
    return Diagnostic(Severity.ERROR, d.summary, d.detail, None, d.code, path)


def no_host(type_name: str) -> Diagnostic:
    return Diagnostic.error(
        f"{type_name} needs a host",
        "set the resource's `host:` key to a host of the inventory, e.g. host: ${each.key}",
        code="missing-host",
    )


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


class HostResourceType(ResourceType):
    """A resource type whose instances live on one host each."""

    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        if req.host is None:
            return ApplyResponse(req.prior, [no_host(self.type_name)])
        try:
            conn = self.ctx.connect(req.host)
            if req.action == "delete":
                if req.prior is None:
                    return ApplyResponse(None)
                return self.delete_on(conn, req.prior)
            if req.planned is None or not all(
                is_known(req.planned.get(n)) for n in self.known_at_apply
            ):
                return ApplyResponse(
                    req.prior,
                    [Diagnostic.error(f"{req.action} of {self.type_name} needs known values")],
                )
            if req.action == "replace" and req.prior is not None:
                return self._replace(conn, req.prior, req.planned)
            if req.action in ("create", "update"):
                return self.write_on(conn, req.prior, req.planned)
        except TransportError as exc:
            return ApplyResponse(req.prior, [transport_diag(exc, self.failed_attribute)])
        return ApplyResponse(
            req.prior,
            [
                Diagnostic.error(
                    f'{self.type_name} does not support the action "{req.action}"',
                    code="unsupported-action",
                )
            ],
        )

    def _replace(
        self, conn: Connection, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """The new object first, then the old one removed: never a moment with neither."""
        if plain(prior.get("path")) == plain(planned.get("path")):
            return self.write_on(conn, prior, planned)
        written = self.write_on(conn, None, planned)
        if any(d.is_error for d in written.diagnostics):
            return ApplyResponse(prior, written.diagnostics)
        removed = self.delete_on(conn, prior)
        return ApplyResponse(written.new_state, [*written.diagnostics, *removed.diagnostics])

    #: Planned attributes that must be known before anything is written.
    known_at_apply: Sequence[str] = ("path",)
    #: The attribute a failed command is reported on.
    failed_attribute: str = "path"

    @abc.abstractmethod
    def write_on(
        self, conn: Connection, prior: Mapping[str, Any] | None, planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Create or update: make the host match ``planned``; return the new state."""

    @abc.abstractmethod
    def delete_on(self, conn: Connection, prior: Mapping[str, Any]) -> ApplyResponse: ...

    # ResourceType's per-action hooks are not used: apply() above routes with a connection.
    def create(self, planned: Mapping[str, Any]) -> ApplyResponse:  # pragma: no cover
        return ApplyResponse(None, [no_host(self.type_name)])
