"""Find providers through the ``kplan.providers`` entry points.

The engine never imports a provider package by name: built-in providers are
registered exactly as third-party ones are, in their distribution's
``pyproject.toml``. Each entry point names a :class:`~kplan.provider_api.Provider`
instance or a zero-argument factory returning one.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

from kplan.diagnostics import Diagnostic, KplanError, SourcePos
from kplan.provider_api import ConfigureRequest, Provider, ResourceSchema

__all__ = ["ProviderRegistry"]

GROUP = "kplan.providers"


class ProviderRegistry:
    def __init__(self, providers: list[Provider] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[str, tuple[Provider, ResourceSchema]] | None = None
        self._given = providers

    @classmethod
    def from_entry_points(cls) -> ProviderRegistry:
        return cls(None)

    def _load(self) -> dict[str, tuple[Provider, ResourceSchema]]:
        with self._lock:
            if self._by_type is not None:
                return self._by_type
            providers = self._given if self._given is not None else _discover()
            by_type: dict[str, tuple[Provider, ResourceSchema]] = {}
            for p in providers:
                for type_name, schema in p.schema().resources.items():
                    if type_name in by_type:
                        other = by_type[type_name][0].name
                        raise KplanError(
                            f'resource type "{type_name}" is served by two providers: '
                            f"{other} and {p.name}"
                        )
                    by_type[type_name] = (p, schema)
            self._by_type = by_type
            return by_type

    def configure(self, req: ConfigureRequest) -> None:
        """Give every provider the run's inventory and connections."""
        providers = {id(p): p for p, _ in self._load().values()}
        for provider in providers.values():
            provider.configure(req)

    def types(self) -> list[str]:
        return sorted(self._load())

    def get(self, type_name: str, pos: SourcePos | None = None) -> tuple[Provider, ResourceSchema]:
        found = self._load().get(type_name)
        if found is None:
            raise KplanError(
                Diagnostic.error(
                    f'unknown resource type "{type_name}"',
                    "installed providers serve: " + ", ".join(self.types()),
                    pos,
                    code="unknown-resource-type",
                )
            )
        return found


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
