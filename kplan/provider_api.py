"""The provider protocol: the one interface between the engine and resource types.

A provider is a plugin registered under the ``kplan.providers`` entry point
group; the entry point names an object (or a zero-argument factory) that is
a :class:`Provider`. It offers five methods, each taking one request and
returning one response that carries its own diagnostics:

    schema()          the resource types it serves and their attributes
    validate(req)     check one resource's configuration (values may be UNKNOWN)
    read(req)         refresh many recorded instances of one type at once
    plan(req)         the planned new state of one instance
    apply(req)        make one planned change real; return the new state

and ``configure(req)``, called once per run before the others, with the
inventory's hosts and ``connect(host)`` for the shared connection to one.

Provider authors build on :mod:`kplan.provider_sdk` (a dispatcher, one
resource-type base with reads batched per host, the shared helpers); see
docs/providers/authoring.md. A provider never imports from kplan.cli,
kplan.plan or kplan.apply, nor another provider's modules, and knows
nothing of files, addresses' modules, the plan's order or the CLI. Values it
receives may hold :class:`kplan.values.Secret` (call ``reveal()`` only where
the raw value is needed) and, in ``validate`` and ``plan``, ``UNKNOWN``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kplan.diagnostics import Diagnostic, did_you_mean
from kplan.values import UNKNOWN, Path

if TYPE_CHECKING:
    from kplan.transport.base import Connection

__all__ = [
    "CREATE_BEFORE_DESTROY",
    "DESTROY_BEFORE_CREATE",
    "ApplyRequest",
    "ApplyResponse",
    "Attribute",
    "ConfigureRequest",
    "HostInfo",
    "PlanRequest",
    "PlanResponse",
    "Provider",
    "ProviderSchema",
    "ReadInstance",
    "ReadRequest",
    "ReadResponse",
    "ReplaceOrder",
    "ResourceSchema",
    "ValidateRequest",
    "ValidateResponse",
    "default_plan",
]

AttrType = Literal["string", "number", "bool", "list", "map", "any"]
ApplyAction = Literal["create", "update", "replace", "restart", "delete"]
ReplaceOrder = Literal["create_before_destroy", "destroy_before_create"]
#: The new object is made first, then the old one removed: never a moment with neither
#: (a file, a container beside its successor, an image pulled before the old is removed).
CREATE_BEFORE_DESTROY: ReplaceOrder = "create_before_destroy"
#: The old object is removed first: for objects that cannot exist twice (a volume's
#: name is its identity). The default, as in Terraform.
DESTROY_BEFORE_CREATE: ReplaceOrder = "destroy_before_create"


@dataclass(frozen=True, slots=True)
class Attribute:
    type: AttrType = "any"
    required: bool = False
    # Computed: set by the provider (may still be given in config when optional=True).
    computed: bool = False
    optional: bool = False
    sensitive: bool = False
    # A change of this attribute cannot be made in place: the instance is replaced.
    force_new: bool = False
    default: Any = None
    description: str = ""
    # A plan input only: it feeds the attributes named here (a template and its vars
    # feed a file's content) and is compared through them. A change of it that
    # leaves them the same is no change: the plan shows nothing and restarts nothing.
    compared_via: tuple[str, ...] = ()
    # The provider plans a configured value in a canonical spelling ("644" → "0644").
    # Without it, a plan that changes a known configured value is refused as invalid.
    normalized: bool = False
    # How the provider reaches the object (an API's URL and credentials), not a property
    # of it: never compared, so a change of it alone is no change (a rotated admin
    # password changes no keystone project). Recorded with the object's next change; the
    # provider's plan may still give a reason to record it now (PlanResponse.reasons).
    connection: bool = False


@dataclass(frozen=True, slots=True)
class ResourceSchema:
    type_name: str
    attributes: Mapping[str, Attribute]
    description: str = ""
    # True when the provider can restart an instance (``restart_on``); otherwise
    # a restart trigger is planned as a replace.
    restartable: bool = False
    # How ``apply(action="replace")`` orders its two halves (see CREATE_BEFORE_DESTROY);
    # declared, so that plans and docs can show it.
    replace_order: ReplaceOrder = DESTROY_BEFORE_CREATE
    # What the engine asks of the attributes for every instance it plans, worked out
    # once: a plan of 100,000 instances asked it 100,000 times.
    _facts: _SchemaFacts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_facts", _SchemaFacts.of(self.attributes))

    def sensitive_attributes(self) -> list[str]:
        return list(self._facts.sensitive)

    def connection_attributes(self) -> frozenset[str]:
        """Attributes that say how to reach the object (``Attribute.connection``)."""
        return self._facts.connection

    def input_attributes(self) -> tuple[str, ...]:
        """Attributes compared through what they feed (``Attribute.compared_via``)."""
        return self._facts.inputs


@dataclass(frozen=True, slots=True)
class _SchemaFacts:
    """A schema's attributes sorted by role, each in the schema's own order."""

    items: tuple[tuple[str, Attribute], ...]
    required: tuple[str, ...]  # sorted
    sensitive: tuple[str, ...]
    connection: frozenset[str]
    inputs: tuple[str, ...]  # sorted
    computed: tuple[str, ...]
    force_new: tuple[str, ...]
    # default_plan's "configured" attributes: always compared, and compared when set.
    compared: tuple[str, ...]
    compared_when_set: tuple[str, ...]

    @classmethod
    def of(cls, attributes: Mapping[str, Attribute]) -> _SchemaFacts:
        items = tuple(attributes.items())

        def names(pick: Callable[[Attribute], bool]) -> tuple[str, ...]:
            return tuple(n for n, a in items if pick(a))

        return cls(
            items,
            tuple(sorted(names(lambda a: a.required))),
            names(lambda a: a.sensitive),
            frozenset(names(lambda a: a.connection)),
            tuple(sorted(names(lambda a: bool(a.compared_via)))),
            names(lambda a: a.computed),
            names(lambda a: a.force_new),
            names(lambda a: not a.connection and not a.computed),
            names(lambda a: not a.connection and a.computed and a.optional),
        )


@dataclass(frozen=True, slots=True)
class ProviderSchema:
    resources: Mapping[str, ResourceSchema]


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A host of the root module's inventory, as a provider sees it."""

    name: str
    address: str
    connection: str  # "ssh" | "local"
    groups: tuple[str, ...] = ()
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigureRequest:
    """Given to every provider once per run, before any read, plan or apply."""

    #: Every host of the inventory, by name.
    hosts: Mapping[str, HostInfo]
    #: The connection to a host by name, opened on first use and shared across
    #: providers and threads; raises ``kplan.transport.HostUnreachable``.
    connect: Callable[[str], Connection]


@dataclass(frozen=True, slots=True)
class ValidateRequest:
    type_name: str
    config: Mapping[str, Any]
    # The instance's address, for messages only (a check must not depend on it).
    address: str = ""


@dataclass(frozen=True, slots=True)
class ValidateResponse:
    # Each diagnostic names the offending attribute in ``Diagnostic.attribute``;
    # the engine adds the file position.
    diagnostics: Sequence[Diagnostic] = ()


@dataclass(frozen=True, slots=True)
class ReadInstance:
    address: str
    host: str | None
    state: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """Refresh many instances of one type at once (batch by host inside)."""

    type_name: str
    instances: Sequence[ReadInstance]
    # The refresh this read is part of (one name for all its types; None: a read on
    # its own). Reads of one refresh may share what they fetch: see
    # kplan.provider_sdk.shared_read.
    snapshot: str | None = None


@dataclass(frozen=True, slots=True)
class ReadResponse:
    # address → current state, or None when the object no longer exists.
    states: Mapping[str, Mapping[str, Any] | None]
    diagnostics: Sequence[Diagnostic] = ()


@dataclass(frozen=True, slots=True)
class PlanRequest:
    type_name: str
    address: str
    host: str | None
    # The recorded (refreshed) state, or None when the instance is new.
    prior: Mapping[str, Any] | None
    # The configuration; values may be UNKNOWN.
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PlanResponse:
    planned: Mapping[str, Any]
    # Attribute paths whose change forces a replace.
    requires_replace: Sequence[Path] = ()
    diagnostics: Sequence[Diagnostic] = ()
    # Why the provider plans a change that the attributes alone do not explain, in
    # words for people: drift it found on refresh ("container stopped outside kplan",
    # "tag 2024.1 moved in the registry"). Each becomes a drift reason; a non-empty
    # list makes the action at least an update, and stands for the attributes that
    # drifted (their "X changed outside kplan" reasons are left out: one cause, one reason).
    reasons: Sequence[str] = ()
    # Where planned values come from, in words for people, each at the attribute it is
    # about: ``(("content",), "[token] expiration from config/keystone.conf")``. Shown
    # with the change when there is one (a ``source`` reason); never a cause of one.
    notes: Sequence[tuple[Path, str]] = ()


@dataclass(frozen=True, slots=True)
class ApplyRequest:
    type_name: str
    address: str
    host: str | None
    # "replace" asks the provider to replace the object in one call (it may create
    # the new one before deleting the old); "restart" only for restartable types.
    action: ApplyAction
    prior: Mapping[str, Any] | None
    # For "delete": None. Otherwise the planned state: every configured value is
    # known; computed values the provider sets at apply are still UNKNOWN.
    planned: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class ApplyResponse:
    # The state now real, or None after a delete (or a create that left nothing).
    new_state: Mapping[str, Any] | None
    diagnostics: Sequence[Diagnostic] = field(default_factory=tuple)


class Provider(abc.ABC):
    """Base class of providers; the five methods are the whole protocol."""

    #: The provider's name as shown in plans and recorded in state.
    name: str = ""

    @abc.abstractmethod
    def schema(self) -> ProviderSchema: ...

    def configure(self, req: ConfigureRequest) -> None:  # noqa: B027 (optional hook)
        """Called once per run with the inventory and the way to reach its hosts."""

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        schema = self.schema().resources[req.type_name]
        return ValidateResponse(validate_against_schema(schema, req.config))

    @abc.abstractmethod
    def read(self, req: ReadRequest) -> ReadResponse: ...

    def plan(self, req: PlanRequest) -> PlanResponse:
        return default_plan(self.schema().resources[req.type_name], req)

    @abc.abstractmethod
    def apply(self, req: ApplyRequest) -> ApplyResponse: ...


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "map": (dict,),
}


def validate_against_schema(schema: ResourceSchema, config: Mapping[str, Any]) -> list[Diagnostic]:
    """Required, unknown and mistyped attributes; UNKNOWN and Secret values pass the type check."""
    if _conforms(schema, config):
        return []  # the usual answer, found without sorting anything
    return _schema_problems(schema, config)


def _conforms(schema: ResourceSchema, config: Mapping[str, Any]) -> bool:
    """True when :func:`_schema_problems` would find nothing."""
    from kplan.values import Secret

    attributes = schema.attributes
    for name, value in config.items():
        attr = attributes.get(name)
        if attr is None or (attr.computed and not attr.optional):
            return False
        if value is None or value is UNKNOWN or attr.type == "any" or isinstance(value, Secret):
            continue
        if not isinstance(value, _PY_TYPES[attr.type]):
            return False
        if attr.type == "number" and isinstance(value, bool):
            return False
    return all(config.get(name) is not None for name in schema._facts.required)


def _schema_problems(schema: ResourceSchema, config: Mapping[str, Any]) -> list[Diagnostic]:
    from kplan.values import Secret

    out: list[Diagnostic] = []
    for name in sorted(config):
        attr = schema.attributes.get(name)
        if attr is None:
            attrs = schema.attributes.items()
            settable = sorted(n for n, a in attrs if not a.computed or a.optional)
            d = Diagnostic.error(
                f'unsupported attribute "{name}" for {schema.type_name}',
                f"{did_you_mean(name, settable)}expected one of: {', '.join(settable)}",
                code="unsupported-attribute",
            )
            out.append(_at(d, name))
            continue
        if attr.computed and not attr.optional:
            d = Diagnostic.error(
                f'attribute "{name}" of {schema.type_name} is computed and cannot be set',
                code="computed-attribute",
            )
            out.append(_at(d, name))
            continue
        value = config[name]
        if value is None or value is UNKNOWN or isinstance(value, Secret) or attr.type == "any":
            continue
        ok = isinstance(value, _PY_TYPES[attr.type])
        if attr.type == "number" and isinstance(value, bool):
            ok = False
        if not ok:
            d = Diagnostic.error(
                f'attribute "{name}" of {schema.type_name} must be a {attr.type}',
                f"got {type(value).__name__}: {value!r}",
                code="attribute-type",
            )
            out.append(_at(d, name))
    for name, attr in sorted(schema.attributes.items()):
        if attr.required and config.get(name) is None:
            d = Diagnostic.error(
                f'missing required attribute "{name}" for {schema.type_name}',
                attr.description,
                code="missing-attribute",
            )
            out.append(_at(d, name))
    return out


def _at(d: Diagnostic, name: str) -> Diagnostic:
    return Diagnostic(d.severity, d.summary, d.detail, d.pos, d.code, (name,))


def default_plan(schema: ResourceSchema, req: PlanRequest) -> PlanResponse:
    """The usual plan: config plus defaults; computed values kept while nothing changes.

    A computed attribute keeps its prior value when no configured attribute
    changed (``connection`` attributes do not count), and becomes UNKNOWN
    otherwise. ``force_new`` attributes that differ from the prior state are
    reported in ``requires_replace``.
    """
    facts = schema._facts
    config = req.config
    planned: dict[str, Any] = {}
    for name, attr in facts.items:
        value = config.get(name)
        if value is None and not attr.computed:
            value = attr.default
        if not attr.computed or value is not None:
            planned[name] = value
    prior = req.prior
    changed = (
        prior is None
        or any(prior.get(n) != planned.get(n) for n in facts.compared)
        or any(
            config.get(n) is not None and prior.get(n) != planned.get(n)
            for n in facts.compared_when_set
        )
    )
    for name in facts.computed:
        if name not in planned:
            planned[name] = prior.get(name) if (prior is not None and not changed) else UNKNOWN
    replace: list[Path] = []
    if prior is not None:
        replace = [(n,) for n in facts.force_new if prior.get(n) != planned.get(n)]
    return PlanResponse(planned=planned, requires_replace=replace)
