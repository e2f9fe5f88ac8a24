"""Shared pieces of the built-in resource types: the per-type base class and helpers.

A :class:`ResourceType` holds one type's schema and its validate, read, plan
and apply steps; the dispatcher in ``providers.builtin`` routes each request
to one of them. Apply steps never raise for an expected failure (a file that
cannot be written, a bad value): they return diagnostics naming the
attribute concerned.
"""

from __future__ import annotations

import abc
import re
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    ConfigureRequest,
    HostInfo,
    PlanRequest,
    PlanResponse,
    Provider,
    ProviderSchema,
    ReadInstance,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
    ValidateRequest,
    ValidateResponse,
    default_plan,
    validate_against_schema,
)
from kplan.values import UNKNOWN, Secret, reveal

if TYPE_CHECKING:
    from kplan.transport.base import Connection

__all__ = [
    "MODE_RE",
    "Inventory",
    "ResourceType",
    "TypeDispatcher",
    "attr_error",
    "attr_warning",
    "check_mode",
    "is_known",
    "keep_secret",
    "new_id",
    "plain",
]


def attr_error(attribute: str, summary: str, detail: str = "", code: str = "") -> Diagnostic:
    """An error about one attribute (the engine places it in the file)."""
    return Diagnostic(Severity.ERROR, summary, detail, None, code, (attribute,))


def attr_warning(attribute: str, summary: str, detail: str = "", code: str = "") -> Diagnostic:
    return Diagnostic(Severity.WARNING, summary, detail, None, code, (attribute,))


def plain(value: Any) -> Any:
    """``value`` with every Secret unwrapped, for checks and for writing; never for state."""
    return reveal(value)


def is_known(value: Any) -> bool:
    """True unless ``value`` is UNKNOWN (or a Secret wrapping UNKNOWN)."""
    return plain(value) is not UNKNOWN


def new_id() -> str:
    """A random identifier: 16 hex digits."""
    return secrets.token_hex(8)


def _missing_with_attribute(schema: ResourceSchema, diags: list[Diagnostic]) -> list[Diagnostic]:
    """validate_against_schema's missing-attribute errors carry no attribute path: add it."""
    out = []
    for d in diags:
        if d.code == "missing-attribute" and not d.attribute:
            name = d.summary.split('"')[1] if d.summary.count('"') >= 2 else ""
            if name in schema.attributes:
                d = Diagnostic(d.severity, d.summary, d.detail, d.pos, d.code, (name,))
        out.append(d)
    return out


# Permission bits as an octal string: "644", "0640", "2775".
MODE_RE = re.compile(r"[0-7]{3,4}")


def check_mode(mode: Any) -> Diagnostic | None:
    mode = plain(mode)
    if isinstance(mode, int | float) and not isinstance(mode, bool):
        return attr_error(
            "mode",
            'mode must be an octal string such as "0640"',
            f"got the number {mode}; YAML reads an unquoted 0640 as the number 416: quote it",
            code="invalid-mode",
        )
    if isinstance(mode, str) and not MODE_RE.fullmatch(mode):
        return attr_error(
            "mode",
            f'mode "{mode}" is not an octal permission string',
            'use three or four digits 0-7, e.g. "0644" or "0750"',
            code="invalid-mode",
        )
    return None


class ResourceType(abc.ABC):
    """One resource type of the built-in provider."""

    schema: ResourceSchema

    @property
    def type_name(self) -> str:
        return self.schema.type_name

    # ---- validate -----------------------------------------------------------------

    def validate(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        """The schema's checks, then the type's own; one diagnostic per attribute at most."""
        generic = _missing_with_attribute(self.schema, validate_against_schema(self.schema, config))
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
        """Default for types with nothing outside kplan's state: the prior state as it is."""
        return ReadResponse(states={i.address: dict(i.state) for i in instances})

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        return default_plan(self.schema, req)

    # ---- apply --------------------------------------------------------------------

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        """Route by action; ``replace`` is delete-then-create unless a type overrides it."""
        if req.action == "delete":
            return self.delete(req.prior) if req.prior is not None else ApplyResponse(None)
        if req.planned is None:
            return ApplyResponse(
                req.prior,
                [Diagnostic.error(f"{req.action} of {self.type_name} needs a planned state")],
            )
        if req.action == "create" or req.prior is None:
            return self.create(req.planned)
        if req.action == "update":
            return self.update(req.prior, req.planned)
        if req.action == "replace":
            return self.replace(req.prior, req.planned)
        return ApplyResponse(
            req.prior,
            [
                Diagnostic.error(
                    f'{self.type_name} does not support the action "{req.action}"',
                    "plan it as a replace instead",
                    code="unsupported-action",
                )
            ],
        )

    @abc.abstractmethod
    def create(self, planned: Mapping[str, Any]) -> ApplyResponse: ...

    def update(self, prior: Mapping[str, Any], planned: Mapping[str, Any]) -> ApplyResponse:
        """Default in-place update: the planned values, computed ones kept from the prior."""
        state = dict(planned)
        for name, attr in self.schema.attributes.items():
            if attr.computed and not is_known(state.get(name, UNKNOWN)):
                state[name] = prior.get(name)
        return ApplyResponse(state)

    def replace(self, prior: Mapping[str, Any], planned: Mapping[str, Any]) -> ApplyResponse:
        deleted = self.delete(prior)
        if any(d.is_error for d in deleted.diagnostics):
            return ApplyResponse(prior, deleted.diagnostics)
        created = self.create(planned)
        return ApplyResponse(created.new_state, [*deleted.diagnostics, *created.diagnostics])

    def delete(self, prior: Mapping[str, Any]) -> ApplyResponse:
        """Default: nothing outside kplan's state to remove."""
        return ApplyResponse(None)


def keep_secret(value: Any, like: Any) -> Any:
    """``value`` wrapped in Secret when ``like`` is one (and value is not already)."""
    if isinstance(like, Secret) and not isinstance(value, Secret) and value is not None:
        return Secret(value)
    return value


class Inventory:
    """The inventory and the way to reach its hosts, as ``configure()`` gave them (once
    per run, before any read or apply)."""

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


class TypeDispatcher(Provider):
    """A provider made of :class:`ResourceType` objects: each request goes to the type it
    names; a type this provider does not serve gets an error diagnostic, never an exception.
    """

    def __init__(self, types: Sequence[ResourceType]) -> None:
        self._types: Mapping[str, ResourceType] = {t.type_name: t for t in types}
        self._schema = ProviderSchema({n: t.schema for n, t in sorted(self._types.items())})

    def schema(self) -> ProviderSchema:
        return self._schema

    def _unknown(self, type_name: str) -> Diagnostic:
        return Diagnostic.error(
            f'the {self.name} provider has no resource type "{type_name}"',
            "it serves: " + ", ".join(sorted(self._types)),
            code="unsupported-resource-type",
        )

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ValidateResponse([self._unknown(req.type_name)])
        return ValidateResponse(rtype.validate(req.config))

    def read(self, req: ReadRequest) -> ReadResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            states = {i.address: i.state for i in req.instances}
            return ReadResponse(states, [self._unknown(req.type_name)])
        return rtype.read(req.instances)

    def plan(self, req: PlanRequest) -> PlanResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return PlanResponse(dict(req.config), diagnostics=[self._unknown(req.type_name)])
        return rtype.plan(req)

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        rtype = self._types.get(req.type_name)
        if rtype is None:
            return ApplyResponse(req.prior, [self._unknown(req.type_name)])
        return rtype.apply(req)
