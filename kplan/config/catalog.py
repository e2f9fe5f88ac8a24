"""Catalogs of modules: where a module call's ``source: kplan/NAME`` is found.

A catalog is an installed Python package whose folders are modules,
registered under the ``kplan.catalogs`` entry point group (kplan's own,
``modules/`` of the repository, is installed as ``kplan_catalog`` and
registered as ``kplan``). Its folder is found through
``importlib.resources``, so a catalog works from a wheel as from a checkout.
``kplan/NAME`` names the folder ``NAME`` of whichever registered catalog has
it; a name two catalogs offer is an error naming both, a name none offers an
error listing what is available. Never here: loading or parsing a module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import entry_points

from kplan.diagnostics import Diagnostic, SourcePos

__all__ = ["GROUP", "PREFIX", "Catalog", "Catalogs", "installed_catalogs"]

GROUP = "kplan.catalogs"
PREFIX = "kplan/"
MODULE_SUFFIX = ".kp.yaml"


@dataclass(frozen=True, slots=True)
class Catalog:
    """One catalog: its entry point name and the folder holding its module folders."""

    name: str
    root: str

    def modules(self) -> list[str]:
        """The names of the folders here that hold at least one ``*.kp.yaml`` file."""
        try:
            names = sorted(os.listdir(self.root))
        except OSError:
            return []
        out = []
        for name in names:
            folder = os.path.join(self.root, name)
            try:
                if os.path.isdir(folder) and any(
                    n.endswith(MODULE_SUFFIX) for n in os.listdir(folder)
                ):
                    out.append(name)
            except OSError:
                continue
        return out


def _package_folder(package: str) -> str:
    """The folder of an installed package, found through importlib.resources."""
    root = resources.files(package)
    path = os.fspath(root) if isinstance(root, os.PathLike) else str(root)
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{package} is not installed as a folder ({path})")
    return path


def installed_catalogs() -> tuple[list[Catalog], list[Diagnostic]]:
    """Every catalog registered under ``kplan.catalogs``, by entry point name.

    An entry point's value names a package (``"acme_catalog"``); one that cannot
    be found is a warning, and the other catalogs still work.
    """
    out: list[Catalog] = []
    diags: list[Diagnostic] = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            out.append(Catalog(ep.name, _package_folder(ep.module)))
        except Exception as exc:  # a broken plugin must not hide the other catalogs
            diags.append(
                Diagnostic.warning(
                    f'catalog "{ep.name}" cannot be read',
                    f"{ep.value}: {type(exc).__name__}: {exc}",
                    code="catalog-load",
                )
            )
    return out, diags


class Catalogs:
    """The catalogs a load resolves ``kplan/NAME`` against."""

    def __init__(self, catalogs: Sequence[Catalog], diagnostics: Iterable[Diagnostic] = ()) -> None:
        self.catalogs = list(catalogs)
        self.diagnostics = list(diagnostics)
        self._index: dict[str, list[Catalog]] | None = None

    @classmethod
    def installed(cls) -> Catalogs:
        return cls(*installed_catalogs())

    @classmethod
    def folder(cls, root: str) -> Catalogs:
        """One catalog in a folder (tests, ``load_module(catalog_dir=...)``)."""
        return cls([Catalog("kplan", root)])

    def index(self) -> dict[str, list[Catalog]]:
        """Module name → the catalogs offering it."""
        if self._index is None:
            index: dict[str, list[Catalog]] = {}
            for catalog in self.catalogs:
                for name in catalog.modules():
                    index.setdefault(name, []).append(catalog)
            self._index = index
        return self._index

    def describe(self) -> str:
        return ", ".join(f"{c.name} ({c.root})" for c in self.catalogs) or "none installed"

    def resolve(self, source: str, pos: SourcePos) -> tuple[str | None, Diagnostic | None]:
        """The folder ``kplan/NAME[/SUB]`` names, or an error at ``pos``."""
        rest = source[len(PREFIX) :]
        name = rest.split("/", 1)[0]
        found = self.index().get(name, []) if name not in ("", ".", "..") else []
        if len(found) > 1:
            where = ", ".join(f"{c.name} ({c.root})" for c in found)
            return None, Diagnostic.error(
                f"catalog module {source!r} is offered by {len(found)} catalogs: {where}",
                "uninstall one of them, or call the module by its path",
                pos,
                code="catalog-conflict",
            )
        if not found:
            available = sorted(self.index())
            offer = (
                "available: " + ", ".join(PREFIX + n for n in available)
                if available
                else "the installed catalogs offer no modules yet"
            )
            return None, Diagnostic.error(
                f"catalog module {source!r} not found",
                f"{offer}\ncatalogs searched: {self.describe()}",
                pos,
                code="module-not-found",
            )
        target = os.path.normpath(os.path.join(found[0].root, rest))
        if not os.path.isdir(target) or not target.startswith(found[0].root + os.sep):
            return None, Diagnostic.error(
                f"catalog module {source!r} not found",
                f"looked for the folder {target} in the catalog {found[0].name}",
                pos,
                code="module-not-found",
            )
        return target, None
