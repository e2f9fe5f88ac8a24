"""Loading a module folder: every ``*.kp.yaml`` file → one :class:`ModuleConfig`.

:func:`load_module` reads the files of a folder in sorted order, merges
their top-level sections (an entry declared in two places is an error
naming both), builds each entry (see ``blocks``) and follows every module
call's ``source`` to load the child modules, recursively: ``kplan/NAME``
is a module of an installed catalog (see ``catalog``), anything else a path
relative to the calling module.
A module that includes itself through a chain of calls is an error that
shows the chain. All problems found come back together as diagnostics;
nothing raises for bad input, and nothing is evaluated here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, TypeVar

from kplan.config import blocks, resource_blocks
from kplan.config.blocks import Entry
from kplan.config.catalog import PREFIX as CATALOG_PREFIX
from kplan.config.catalog import Catalogs
from kplan.config.model import ModuleCall, ModuleConfig, Settings
from kplan.config.yamlpos import YamlDoc, group_positions, read_yaml
from kplan.diagnostics import Diagnostics, SourcePos, did_you_mean

__all__ = ["FILE_SUFFIX", "SECTIONS", "default_catalog_dir", "load_module"]

FILE_SUFFIX = ".kp.yaml"
SECTIONS = ("kplan", "variables", "locals", "hosts", "groups", "modules", "resources", "outputs")
ROOT_ONLY = ("hosts", "groups")
_T = TypeVar("_T")


def default_catalog_dir() -> str:
    """The service catalog shipped with kplan: ``modules/`` of the repository, installed
    as the package ``kplan_catalog`` (found through importlib.resources)."""
    from importlib import resources

    return os.fspath(FsPath(str(resources.files("kplan_catalog"))).resolve())


def _display(path: str) -> str:
    """A path as shown in errors: as the caller wrote it, normalized."""
    return os.path.normpath(path)


@dataclass
class _Sections:
    """The entries of one module's files, merged, per section."""

    entries: dict[str, list[Entry]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    seen: dict[tuple[str, str], SourcePos] = field(default_factory=dict)


def _collect(doc: YamlDoc, merged: _Sections, root: bool, diags: Diagnostics) -> None:
    data = doc.data
    if data is None:
        return
    if not isinstance(data, dict):
        diags.error(
            "the top level of a kplan file must be a mapping of sections",
            f"expected keys among: {', '.join(SECTIONS)}",
            doc.values.get((), SourcePos(doc.file, 1, 1)),
            code="invalid-file",
        )
        return
    values = group_positions(doc.values, 2)
    keys = group_positions(doc.keys, 2)
    for section, body in data.items():
        key_pos = doc.keys.get((section,), SourcePos(doc.file, 1, 1))
        if section not in SECTIONS:
            diags.error(
                f"unknown top-level key {section!r}",
                f"{did_you_mean(section, SECTIONS)}expected one of: {', '.join(SECTIONS)}",
                key_pos,
                code="unknown-section",
            )
            continue
        if section in ROOT_ONLY and not root:
            diags.error(
                f"{section} can be declared only in the root module",
                "a child module receives its hosts from the caller (the module's hosts: input)",
                key_pos,
                code="hosts-in-child-module",
            )
            continue
        if body is None:
            continue
        if not isinstance(body, dict):
            diags.error(
                f"{section}: expected a mapping of NAME: ..., got {type(body).__name__}",
                pos=doc.values.get((section,), key_pos),
                code="invalid-section",
            )
            continue
        for name, value in body.items():
            pos = doc.keys.get((section, name), key_pos)
            entry = Entry(
                section,
                name,
                value,
                pos,
                values.get((section, name), {}),
                keys.get((section, name), {}),
            )
            _add_entry(entry, merged, diags)


def _add_entry(entry: Entry, merged: _Sections, diags: Diagnostics) -> None:
    first = merged.seen.get((entry.section, entry.name))
    if first is not None:
        diags.error(
            f"{entry.label} is declared twice",
            f"first declared at {first}",
            entry.pos,
            code="duplicate-declaration",
        )
        return
    merged.seen[(entry.section, entry.name)] = entry.pos
    merged.entries[entry.section].append(entry)


def _build_all(
    entries: list[Entry], build: Callable[[Entry, Diagnostics], _T | None], diags: Diagnostics
) -> dict[str, _T]:
    out: dict[str, _T] = {}
    for entry in entries:
        built = build(entry, diags)
        if built is not None:
            out[entry.name] = built
    return out


class _Loader:
    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs
        self.catalogs_reported = False
        self.diags = Diagnostics()
        self.cache: dict[str, ModuleConfig] = {}
        self.shown: dict[str, str] = {}  # real path → the folder as first written

    def load(self, folder: str, stack: tuple[str, ...], pos: SourcePos | None) -> ModuleConfig:
        real = os.path.realpath(folder)
        cached = self.cache.get(real)
        if cached is not None:
            return cached
        self.shown.setdefault(real, _display(folder))
        files = self.files(folder, pos)
        merged = _Sections()
        root = not stack
        for path in files:
            doc, file_diags = read_yaml(path, _display(path))
            self.diags.extend(file_diags)
            _collect(doc, merged, root, self.diags)
        config = self.build(real, folder, tuple(_display(p) for p in files), merged, (*stack, real))
        self.cache[real] = config
        return config

    def files(self, folder: str, pos: SourcePos | None) -> list[str]:
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(FILE_SUFFIX))
        except OSError as exc:
            self.diags.error(
                f"cannot read the module folder {_display(folder)}: {exc.strerror or exc}",
                pos=pos,
                code="module-unreadable",
            )
            return []
        paths = [os.path.join(folder, n) for n in names]
        paths = [p for p in paths if os.path.isfile(p)]
        if not paths:
            self.diags.error(
                f"no *{FILE_SUFFIX} files in {_display(folder)}",
                f"a module is a folder of *{FILE_SUFFIX} files",
                pos,
                code="empty-module",
            )
        return paths

    def build(
        self,
        real: str,
        folder: str,
        files: tuple[str, ...],
        merged: _Sections,
        stack: tuple[str, ...],
    ) -> ModuleConfig:
        e, d = merged.entries, self.diags
        hosts = _build_all(e["hosts"], blocks.build_host, d)
        return ModuleConfig(
            dir=real,
            files=files,
            settings=blocks.build_settings(e["kplan"], d) if e["kplan"] else Settings(),
            variables=_build_all(e["variables"], blocks.build_variable, d),
            locals=_build_all(e["locals"], blocks.build_local, d),
            hosts=hosts,
            groups=blocks.build_groups(hosts, e["groups"], d),
            modules=self.calls(folder, e["modules"], stack),
            resources=self.resources(e["resources"]),
            outputs=_build_all(e["outputs"], blocks.build_output, d),
        )

    def resources(self, entries: list[Entry]) -> dict[tuple[str, str], Any]:
        out = {}
        for entry in entries:
            res = resource_blocks.build_resource(entry, self.diags)
            if res is not None:
                out[(res.type, res.name)] = res
        return out

    def calls(
        self, folder: str, entries: list[Entry], stack: tuple[str, ...]
    ) -> dict[str, ModuleCall]:
        out: dict[str, ModuleCall] = {}
        for entry in entries:
            block = resource_blocks.check_module_call(entry, self.diags)
            if block is None:
                continue
            source_pos = entry.at("source")
            child_dir = self.resolve(folder, block.source, source_pos)
            if child_dir is None:
                continue
            child_real = os.path.realpath(child_dir)
            if child_real in stack:
                chain = [*stack[stack.index(child_real) :], child_real]
                self.diags.error(
                    f"module {entry.name!r} includes itself: {block.source!r} leads back to a "
                    "module that is already being loaded",
                    "the chain: " + " → ".join(self.shown.get(p, p) for p in chain),
                    source_pos,
                    code="module-recursion",
                )
                continue
            child = self.load(child_dir, stack, source_pos)
            out[entry.name] = ModuleCall(
                name=entry.name,
                source=block.source,
                inputs=block.inputs,
                hosts=block.hosts,
                for_each=block.for_each,
                count=block.count,
                depends_on=blocks.parse_references(
                    block.depends_on, entry, ("depends_on",), self.diags
                ),
                pos=entry.pos,
                positions=entry.positions(),
                module=child,
            )
        return out

    def resolve(self, folder: str, source: str, pos: SourcePos) -> str | None:
        if source.startswith(CATALOG_PREFIX):
            if not self.catalogs_reported:  # a catalog that failed to load: say so once
                self.catalogs_reported = True
                self.diags.extend(self.catalogs.diagnostics)
            found, problem = self.catalogs.resolve(source, pos)
            if problem is not None:
                self.diags.extend([problem])
            return found
        target = os.path.normpath(os.path.join(folder, source))
        where = _display(folder)
        if not source.strip() or "\0" in source or not os.path.isdir(target):
            self.diags.error(
                f"module source {source!r} not found",
                f"looked for the folder {_display(target)} (relative to {where})",
                pos,
                code="module-not-found",
            )
            return None
        return target


def load_module(
    dir: str, *, catalog_dir: str | None = None
) -> tuple[ModuleConfig | None, Diagnostics]:
    """Load the module in ``dir`` and every module it calls.

    ``kplan/NAME`` sources are looked up in ``catalog_dir`` when given, otherwise in
    the catalogs installed under the ``kplan.catalogs`` entry points.

    Returns the configuration and all diagnostics found; the configuration
    is None whenever there is an error among them (warnings alone keep it).
    """
    catalogs = Catalogs.folder(catalog_dir) if catalog_dir is not None else Catalogs.installed()
    loader = _Loader(catalogs)
    try:
        config: ModuleConfig | None = loader.load(dir, (), None)
    except Exception as exc:  # a bug, not bad input: still never a traceback for the user
        loader.diags.error(
            f"internal error while loading {_display(dir)}: {type(exc).__name__}: {exc}",
            "this is a bug in kplan; please report it with the module that caused it",
            code="internal-error",
        )
        config = None
    if loader.diags.has_errors:
        config = None
    return config, loader.diags
