"""The import rules of the design card, and the installed names, checked on the source.

- The engine (kplan/, the provider SDK aside) never imports a provider.
- A provider imports the engine's public modules and its own package, never another
  provider's modules: what providers share lives in :mod:`kplan.provider_sdk`.
- Every installed top-level name is kplan's own (no generic ``providers``), and the
  explicit package list in pyproject.toml covers every package folder.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import kplan.provider_sdk as sdk
from kplan.plugins import ProviderRegistry

REPO = Path(__file__).resolve().parents[2]
PROVIDER_PACKAGES = ("kplan_providers", "providers")


def _imports(path: Path) -> Iterator[tuple[int, str, int]]:
    """(line, module, level) of every import in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, 0
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, node.module or "", node.level


def test_the_engine_never_imports_a_provider() -> None:
    bad = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in sorted((REPO / "kplan").rglob("*.py"))
        for line, module, level in _imports(path)
        if level == 0 and module.split(".")[0] in PROVIDER_PACKAGES
    ]
    assert bad == []


@pytest.mark.parametrize("provider", ["builtin", "docker", "host", "mariadb", "rabbitmq"])
def test_a_provider_imports_no_other_provider(provider: str) -> None:
    bad = []
    for path in sorted((REPO / "providers" / provider).rglob("*.py")):
        for line, module, level in _imports(path):
            top = module.split(".")[0]
            if level == 0 and top in PROVIDER_PACKAGES:
                bad.append(f"{path.relative_to(REPO)}:{line}: absolute import {module}")
            if level > 1:
                bad.append(f"{path.relative_to(REPO)}:{line}: import from a parent package")
            if level == 0 and top == "kplan" and module.startswith(("kplan.cli", "kplan.plan")):
                bad.append(f"{path.relative_to(REPO)}:{line}: {module} is the engine's inside")
    assert bad == []


def test_every_resource_type_is_built_on_the_sdk() -> None:
    registry = ProviderRegistry.from_entry_points()
    for type_name in registry.types():
        guarded, schema = registry.get(type_name)
        provider = guarded.inner  # the registry hands out providers behind its guard
        assert isinstance(provider, sdk.TypeDispatcher), type_name
        rtype = provider._types[type_name]
        assert isinstance(rtype, sdk.ResourceType), type_name
        assert schema.replace_order in (sdk.CREATE_BEFORE_DESTROY, sdk.DESTROY_BEFORE_CREATE)


def test_replace_orders_are_declared_as_each_type_replaces() -> None:
    registry = ProviderRegistry.from_entry_points()
    orders = {t: registry.get(t)[1].replace_order for t in registry.types()}
    first = {t for t, o in orders.items() if o == sdk.CREATE_BEFORE_DESTROY}
    assert first == {
        "docker_container",
        "docker_image",
        "host_directory",
        "host_etc_hosts",
        "host_sysctl",
        "host_file",
        "local_file",
    }


def _setuptools() -> dict[str, object]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    section: dict[str, object] = data["tool"]["setuptools"]
    return section


def test_installed_top_level_names_are_kplans_own() -> None:
    st = _setuptools()
    packages = st["packages"]
    assert isinstance(packages, list)
    assert {p.split(".")[0] for p in packages} == {
        "kplan",
        "kplan_providers",
        "kplan_state",
        "kplan_catalog",
    }
    assert st["package-dir"] == {
        "kplan_providers": "providers",
        "kplan_state": "state",
        "kplan_catalog": "modules",
    }


def test_the_package_list_covers_every_package_folder() -> None:
    st = _setuptools()
    mapping = {"kplan": "kplan", **st["package-dir"]}  # type: ignore[dict-item]
    found = set()
    for name, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "__pycache__" in rel.parts or rel.parts[:1] == ("migrations",):
                continue
            found.add(".".join((name, *rel.parts)))
    assert sorted(found) == sorted(st["packages"])  # type: ignore[arg-type]
