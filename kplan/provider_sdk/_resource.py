"""The resource-type base class: validate, batched read, plan and apply routed by action.

A type sets ``schema`` and implements ``create_at`` and ``delete_at``; the
rest has defaults. A *hosted* type (``hosted = True``: every instance lives
on one host of the inventory) implements ``read_batch(host, instances)``,
which the base calls once per host, hosts in parallel, and gets the
``missing-host`` check for free. A replace follows ``schema.replace_order``.
A step reports an expected failure by raising :class:`Failed` (or letting a
``TransportError`` escape); the base turns either into a response that keeps
the state that is true now.
"""

from __future__ import annotations

import abc
import contextvars
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    CREATE_BEFORE_DESTROY,
    ApplyRequest,
    ApplyResponse,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ReadResponse,
    ResourceSchema,
    default_plan,
    validate_against_schema,
)
from kplan.transport.base import TransportError
from kplan.values import UNKNOWN

from ._helpers import is_known, missing_attribute_paths, missing_host, transport_diag

if TYPE_CHECKING:
    from kplan.transport.base import Connection

__all__ = [
    "READ_PARALLELISM",
    "Failed",
    "Inventory",
    "NotConfigured",
    "ResourceType",
    "States",
    "Target",
    "read_per_host",
]

#: Hosts refreshed at once; each costs one connection's round trips.
READ_PARALLELISM = 16

#: address → refreshed state, or None when the object is gone.
States = dict[str, Mapping[str, Any] | None]


class Failed(Exception):
    """An expected failure inside a step; carries the diagnostics to report.

    ``status`` is an optional code from the foreign API the step called (an HTTP
    status such as 404 or 409), for callers that decide on it.
    """

    def __init__(self, *diagnostics: Diagnostic, status: int | None = None) -> None:
        self.diagnostics = list(diagnostics)
        self.status = status
        super().__init__("; ".join(str(d) for d in diagnostics))


class NotConfigured(TransportError):
    """The engine did not call ``configure()``: no way to reach any host."""

    def __init__(self, host: str) -> None:
        super().__init__(
            host,
            "the provider has no connection to it",
            "the engine did not configure the provider with the inventory; "
            "this is a bug in kplan, please report it",
            code="provider-not-configured",
        )


class Inventory:
    """The inventory and the way to reach its hosts, as ``configure()`` gave them (once
    per run, before any read or apply). Share one between a provider's types."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hosts: Mapping[str, HostInfo] = {}
        self._connect: Callable[[str], Connection] | None = None

    def configure(self, req: ConfigureRequest) -> None:
        with self._lock:
            self.hosts = dict(req.hosts)
            self._connect = req.connect

    @property
    def configured(self) -> bool:
        return self._connect is not None

    def connect(self, host: str) -> Connection:
        """The host's shared connection; raises TransportError (HostUnreachable, NotConfigured)."""
        connect = self._connect
        if connect is None:
            raise NotConfigured(host)
        return connect(host)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one apply happens: the instance's address and host (None for unhosted types).

    A provider may subclass it to carry a client (see :meth:`ResourceType.target`).
    """

    address: str
    host: str | None


TargetT = TypeVar("TargetT")


def read_per_host(
    type_name: str,
    instances: Sequence[ReadInstance],
    one: Callable[[str, list[ReadInstance]], tuple[States, list[Diagnostic]]],
    error_attribute: str = "",
) -> ReadResponse:
    """Group ``instances`` by host and call ``one(host, instances)`` per host, hosts in
    parallel, results merged in host order.

    An instance without a host gets ``missing-host``; a host whose ``one`` raises
    :class:`Failed` or a TransportError leaves its instances out of the answer (state
    keeps what it recorded) and adds its diagnostics; other hosts proceed.
    """
    groups: dict[str, list[ReadInstance]] = defaultdict(list)
    diags: list[Diagnostic] = []
    for inst in instances:
        if inst.host is None:
            diags.append(missing_host(type_name, inst.address))
        else:
            groups[inst.host].append(inst)

    def guarded(host: str) -> tuple[States, list[Diagnostic]]:
        try:
            return one(host, groups[host])
        except Failed as exc:
            return {}, exc.diagnostics
        except TransportError as exc:
            return {}, [transport_diag(exc, error_attribute)]

    hosts = sorted(groups)
    if len(hosts) <= 1:
        results = [guarded(h) for h in hosts]
    else:
        # Each host's read in a copy of this context: it carries the refresh's name
        # (see _shared.reading) into the pool's threads.
        contexts = [contextvars.copy_context() for _ in hosts]
        with ThreadPoolExecutor(max_workers=min(READ_PARALLELISM, len(hosts))) as pool:
            results = list(pool.map(lambda c, h: c.run(guarded, h), contexts, hosts))
    states: States = {}
    for found, host_diags in results:
        states.update(found)
        diags.extend(host_diags)
    return ReadResponse(states, diags)


class ResourceType(abc.ABC, Generic[TargetT]):
    """One resource type: its schema and its validate, read, plan and apply steps.

    Subclasses set :attr:`schema` and implement :meth:`create_at` and (unless
    nothing outside kplan's state is made) :meth:`delete_at`; the rest is optional.
    ``TargetT`` is what the apply steps receive: :class:`Target` unless
    :meth:`target` is overridden.
    """

    schema: ResourceSchema
    #: Every instance lives on one host: reads are batched per host, apply needs a host.
    hosted: bool = False
    #: Planned attributes that must be known before apply starts.
    known_at_apply: Sequence[str] = ()
    #: The attribute a transport or command failure during apply is reported on.
    error_attribute: str = ""

    @property
    def type_name(self) -> str:
        return self.schema.type_name

    # ---- validate -----------------------------------------------------------------

    def validate(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        """The schema's checks, then the type's own; one diagnostic per attribute at most."""
        generic = missing_attribute_paths(self.schema, validate_against_schema(self.schema, config))
        if not generic:  # every name is an attribute: the usual case, nothing to filter
            return self.check(config)
        known = {n: v for n, v in config.items() if n in self.schema.attributes}
        specific = self.check(known)
        flagged = {d.attribute for d in specific}
        return specific + [d for d in generic if d.attribute not in flagged]

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        """Type-specific value checks; UNKNOWN and mistyped values pass. Override where needed.

        A diagnostic returned here replaces the generic one for the same attribute.
        """
        return []

    # ---- read ---------------------------------------------------------------------

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        """Hosted types: one :meth:`read_batch` per host, hosts in parallel. Others: the
        prior state as it is (nothing outside kplan's state to look at)."""
        if self.hosted:
            return read_per_host(self.type_name, instances, self.read_batch, self.error_attribute)
        return ReadResponse(states={i.address: i.state for i in instances})

    def read_batch(
        self, host: str, instances: list[ReadInstance]
    ) -> tuple[States, list[Diagnostic]]:
        """Refresh every instance on one host in a constant number of round trips.

        Return the states found (an address left out keeps its recorded state; None
        means the object is gone) and diagnostics. Raise :class:`Failed` or let a
        TransportError escape when the host cannot be read at all.
        """
        return {i.address: dict(i.state) for i in instances}, []

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        """Config plus defaults, computed values kept while nothing changes; ``force_new``
        attributes that differ are in ``requires_replace`` (see ``default_plan``)."""
        return default_plan(self.schema, req)

    # ---- apply --------------------------------------------------------------------

    def target(self, req: ApplyRequest) -> TargetT:
        """Where the apply happens; override to attach a connection or a client (may raise
        :class:`Failed` or a TransportError). The default gives a plain :class:`Target`."""
        return cast(TargetT, Target(req.address, req.host))

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        """Route by action to the ``*_at`` steps; failures become diagnostics."""
        if self.hosted and req.host is None:
            return ApplyResponse(req.prior, [missing_host(self.type_name, req.address)])
        fallback = None if req.action == "create" else req.prior
        try:
            return self._route(req)
        except Failed as exc:
            return ApplyResponse(fallback, exc.diagnostics)
        except TransportError as exc:
            return ApplyResponse(fallback, [transport_diag(exc, self.error_attribute)])

    def _route(self, req: ApplyRequest) -> ApplyResponse:
        if req.action == "delete":
            if req.prior is None:
                return ApplyResponse(None)
            return self.delete_at(self.target(req), req.prior)
        planned, prior = req.planned, req.prior
        if planned is None or not all(is_known(planned.get(n)) for n in self.known_at_apply):
            return ApplyResponse(
                prior, [Diagnostic.error(f"{req.action} of {self.type_name} needs known values")]
            )
        if req.action == "create" or prior is None:
            return self.create_at(self.target(req), planned)
        if req.action == "update":
            return self.update_at(self.target(req), prior, planned)
        if req.action == "replace":
            return self.replace_at(self.target(req), prior, planned)
        if req.action == "restart" and self.schema.restartable:
            return self.restart_at(self.target(req), prior, planned)
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

    @abc.abstractmethod
    def create_at(self, t: TargetT, planned: Mapping[str, Any]) -> ApplyResponse:
        """Make the object; return its state (computed values now known)."""

    def delete_at(self, t: TargetT, prior: Mapping[str, Any]) -> ApplyResponse:
        """Remove the object; return ``ApplyResponse(None)``. Nothing to remove is no error.

        The default is for types with nothing outside kplan's state (a generated
        password): there is nothing to remove. Every other type overrides it.
        """
        return ApplyResponse(None)

    def update_at(
        self, t: TargetT, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Default in-place update: the planned values, computed ones kept from the prior."""
        state = dict(planned)
        for name, attr in self.schema.attributes.items():
            if attr.computed and not is_known(state.get(name, UNKNOWN)):
                state[name] = prior.get(name)
        return ApplyResponse(state)

    def replace_at(
        self, t: TargetT, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Create and delete in the order ``schema.replace_order`` declares.

        create_before_destroy: a failed create leaves the old object as it was; a
        failed delete keeps the new state and reports the old object's failure.
        destroy_before_create: a failed delete changes nothing; a failed create
        after it leaves no object (state None).
        """
        if self.schema.replace_order == CREATE_BEFORE_DESTROY:
            created = self.create_at(t, planned)
            if any(d.is_error for d in created.diagnostics) or created.new_state is None:
                return ApplyResponse(prior, created.diagnostics)
            try:
                deleted = self.delete_at(t, prior)
            except Failed as exc:
                deleted = ApplyResponse(prior, exc.diagnostics)
            return ApplyResponse(created.new_state, [*created.diagnostics, *deleted.diagnostics])
        deleted = self.delete_at(t, prior)
        if any(d.is_error for d in deleted.diagnostics):
            return ApplyResponse(prior, deleted.diagnostics)
        try:
            created = self.create_at(t, planned)
        except Failed as exc:
            created = ApplyResponse(None, exc.diagnostics)
        return ApplyResponse(created.new_state, [*deleted.diagnostics, *created.diagnostics])

    def restart_at(
        self, t: TargetT, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Only for ``schema.restartable`` types; the default refuses."""
        raise Failed(
            Diagnostic.error(f"{self.type_name} cannot restart", code="unsupported-action")
        )
