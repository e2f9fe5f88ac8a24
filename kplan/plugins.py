"""Find providers through the ``kplan.providers`` entry points; guard every call into one.

The engine never imports a provider package by name: built-in providers are
registered exactly as third-party ones are, in their distribution's
``pyproject.toml``. Each entry point names a :class:`~kplan.provider_api.Provider`
instance or a zero-argument factory returning one.

The engine holds a provider only through :class:`GuardedProvider`, so that a
provider bug becomes a diagnostic, never a traceback, and call sites in
``plan/`` and ``apply/`` need no ``try``. What the guard makes of a provider
that breaks the contract (docs/providers/contract.md):

    schema(), configure()       raises      → KplanError naming the provider
    validate(), read(),          raises      → an error diagnostic in the response,
      plan(), apply()                          naming the provider, the type, the
                                               address(es), the exception's type and
                                               message (Secret values masked)
    any of those                 returns something else → the same, "returned X"
    plan()                       a planned key not in the schema, or a known
                                 configured value changed (unless the attribute is
                                 ``normalized``) → "produced an invalid plan"

Never here: retries, logging of values, or anything that changes a response
the provider got right.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from kplan.diagnostics import Diagnostic, KplanError, SourcePos, did_you_mean
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    ConfigureRequest,
    PlanRequest,
    PlanResponse,
    Provider,
    ProviderSchema,
    ReadRequest,
    ReadResponse,
    ResourceSchema,
    ValidateRequest,
    ValidateResponse,
)
from kplan.values import SENSITIVE_TEXT, Secret, contains_unknown, iter_paths, reveal

__all__ = ["GuardedProvider", "ProviderRegistry"]

GROUP = "kplan.providers"
PROVIDER_ERROR = "provider-error"
INVALID_PLAN = "provider-invalid-plan"
_BUG = "This is a bug in the provider: report it to its authors."
_R = TypeVar("_R")


class ProviderRegistry:
    def __init__(self, providers: list[Provider] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[str, tuple[GuardedProvider, ResourceSchema]] | None = None
        self._given = providers

    @classmethod
    def from_entry_points(cls) -> ProviderRegistry:
        return cls(None)

    def _load(self) -> dict[str, tuple[GuardedProvider, ResourceSchema]]:
        with self._lock:
            if self._by_type is not None:
                return self._by_type
            providers = self._given if self._given is not None else _discover()
            by_type: dict[str, tuple[GuardedProvider, ResourceSchema]] = {}
            for p in providers:
                guarded = p if isinstance(p, GuardedProvider) else GuardedProvider(p)
                for type_name, schema in guarded.schema().resources.items():
                    if type_name in by_type:
                        other = by_type[type_name][0].name
                        raise KplanError(
                            f'resource type "{type_name}" is served by two providers: '
                            f"{other} and {p.name}"
                        )
                    by_type[type_name] = (guarded, schema)
            self._by_type = by_type
            return by_type

    def configure(self, req: ConfigureRequest) -> None:
        """Give every provider the run's inventory and connections."""
        providers = {id(p): p for p, _ in self._load().values()}
        for provider in providers.values():
            provider.configure(req)

    def types(self) -> list[str]:
        return sorted(self._load())

    def get(
        self, type_name: str, pos: SourcePos | None = None
    ) -> tuple[GuardedProvider, ResourceSchema]:
        found = self._load().get(type_name)
        if found is None:
            raise KplanError(
                Diagnostic.error(
                    f'unknown resource type "{type_name}"',
                    did_you_mean(type_name, self.types())
                    + "installed providers serve: "
                    + ", ".join(self.types()),
                    pos,
                    code="unknown-resource-type",
                )
            )
        return found


class GuardedProvider(Provider):
    """A provider as the engine sees it: exceptions become diagnostics, plans are checked.

    Thread-safe as the provider it wraps; it keeps nothing but the schema.
    """

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name or type(inner).__name__
        self._schema: ProviderSchema | None = None

    def schema(self) -> ProviderSchema:
        if self._schema is None:
            try:
                schema = self.inner.schema()
            except Exception as exc:
                raise KplanError(self._failed("give its schema", exc)) from None
            if not isinstance(schema, ProviderSchema):
                raise KplanError(self._wrong("schema", schema, ProviderSchema))
            self._schema = schema
        return self._schema

    def configure(self, req: ConfigureRequest) -> None:
        try:
            self.inner.configure(req)
        except KplanError:
            raise
        except Exception as exc:
            raise KplanError(self._failed("configure itself", exc)) from None

    def validate(self, req: ValidateRequest) -> ValidateResponse:
        what = f"{req.address} ({req.type_name})" if req.address else req.type_name
        return self._call(
            lambda: self.inner.validate(req),
            ValidateResponse,
            lambda ds: ValidateResponse(ds),
            "validate",
            what,
            req.config,
        )

    def read(self, req: ReadRequest) -> ReadResponse:
        what = f"{req.type_name} ({_addresses(i.address for i in req.instances)})"
        return self._call(
            lambda: self.inner.read(req),
            ReadResponse,
            lambda ds: ReadResponse({}, ds),  # {}: nothing known, state is kept as it is
            "read",
            what,
            [i.state for i in req.instances],
        )

    def plan(self, req: PlanRequest) -> PlanResponse:
        resp = self._call(
            lambda: self.inner.plan(req),
            PlanResponse,
            lambda ds: PlanResponse(dict(req.config), diagnostics=ds),
            "plan",
            f"{req.address} ({req.type_name})",
            (req.config, req.prior),
        )
        if any(d.is_error for d in resp.diagnostics):
            return resp  # the plan is refused anyway: its values are not checked
        problems = self._plan_problems(req, resp)
        if not problems:
            return resp
        d = Diagnostic.error(
            f'provider "{self.name}" produced an invalid plan for {req.address}',
            "\n".join([*problems, _BUG]),
            code=INVALID_PLAN,
        )
        return dataclasses.replace(resp, diagnostics=[*resp.diagnostics, d])

    def apply(self, req: ApplyRequest) -> ApplyResponse:
        return self._call(
            lambda: self.inner.apply(req),
            ApplyResponse,
            # Whatever the provider did is unknown: state keeps the prior state.
            lambda ds: ApplyResponse(req.prior, ds),
            req.action,
            f"{req.address} ({req.type_name})",
            (req.prior, req.planned),
        )

    # -- the checks --------------------------------------------------------------

    def _plan_problems(self, req: PlanRequest, resp: PlanResponse) -> list[str]:
        """What in a plan breaks the contract: unknown keys, configured values changed."""
        schema = self.schema().resources.get(req.type_name)
        if schema is None:
            return []
        attrs = schema.attributes
        planned = resp.planned
        extra = [k for k in planned if k not in attrs]
        changed = []
        for name, value in req.config.items():  # a hot path of a large plan: no sorting
            have = planned.get(name)
            if have is value or have == value or value is None:
                continue
            attr = attrs.get(name)
            if attr is None or attr.normalized or contains_unknown(value):
                continue
            if reveal(have) != reveal(value):
                changed.append(name)
        if not extra and not changed:
            return []
        out = [
            f'it planned "{k}", which is not an attribute of {req.type_name} in its schema'
            for k in sorted(extra, key=str)
        ]
        for name in sorted(changed):
            how = "left out" if name not in planned else "changed"
            out.append(
                f'it {how} the configured value of "{name}"; a provider plans a configured '
                "value as given (or declares the attribute normalized in its schema)"
            )
        return out

    # -- calling -----------------------------------------------------------------

    def _call(
        self,
        call: Callable[[], _R],
        want: type[_R],
        failed: Callable[[list[Diagnostic]], _R],
        verb: str,
        what: str,
        values: Any,
    ) -> _R:
        try:
            resp = call()
        except KplanError as exc:  # already written for people (e.g. host unreachable)
            return failed([_masked_diagnostic(d, values) for d in exc.diagnostics])
        except Exception as exc:
            return failed([self._failed(f"{verb} {what}", exc, values)])
        if not isinstance(resp, want):
            return failed([self._wrong(f"{verb} {what}", resp, want)])
        return resp

    def _failed(self, doing: str, exc: BaseException, values: Any = None) -> Diagnostic:
        message = _masked(str(exc), values)
        if len(message) > 1000:
            message = message[:1000] + " …"
        error = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        return Diagnostic.error(
            f'provider "{self.name}" failed to {doing}', f"{error}\n{_BUG}", code=PROVIDER_ERROR
        )

    def _wrong(self, doing: str, got: object, want: type) -> Diagnostic:
        return Diagnostic.error(
            f'provider "{self.name}" returned {type(got).__name__} instead of a '
            f"{want.__name__} ({doing})",
            _BUG,
            code=PROVIDER_ERROR,
        )


def _addresses(addrs: Iterable[str], limit: int = 3) -> str:
    items = list(addrs)
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _masked(message: str, values: Any) -> str:
    """``message`` with the text of every Secret found in ``values`` replaced by
    ``(sensitive)``: a provider that put a revealed value in an exception must not
    print it. Texts shorter than four characters are left (they would mask words)."""
    if values is None or not message:
        return message
    secrets: set[str] = set()
    for _, leaf in iter_paths(values):
        if isinstance(leaf, Secret):
            for _, raw in iter_paths(reveal(leaf)):
                text = str(raw)
                if len(text) >= 4:
                    secrets.add(text)
    forms: set[str] = set()
    for text in secrets:
        # As written, as repr() and f"{x!r}" escape it, and line by line (a key or a
        # rendered file quoted in part).
        forms.update((text, repr(text)[1:-1], text.encode("unicode_escape").decode()))
        forms.update(line for line in text.splitlines() if len(line.strip()) >= 4)
    for text in sorted(forms, key=len, reverse=True):
        message = message.replace(text, SENSITIVE_TEXT)
    return message


def _masked_diagnostic(d: Diagnostic, values: Any) -> Diagnostic:
    summary, detail = _masked(d.summary, values), _masked(d.detail, values)
    if summary == d.summary and detail == d.detail:
        return d
    return dataclasses.replace(d, summary=summary, detail=detail)


def _discover() -> list[Provider]:
    out: list[Provider] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            provider = obj if isinstance(obj, Provider) else obj()
        except Exception as exc:  # a broken plugin must not take the engine down silently
            raise KplanError(
                Diagnostic.error(
                    f'provider "{ep.name}" failed to load',
                    f"{ep.value}: {type(exc).__name__}: {exc}",
                    code="provider-load",
                )
            ) from None
        if not isinstance(provider, Provider):
            raise KplanError(f'provider "{ep.name}" ({ep.value}) is not a kplan Provider')
        out.append(provider)
    return out
