"""Building the model of each top-level section's entries from raw YAML.

One function per kind of entry (a variable, a local, a host, the groups, an
output, the ``kplan`` settings; resources and module calls are in
``resource_blocks``). Each takes an :class:`Entry` — the raw value of ``SECTION.NAME``
and the positions of its nodes — checks its shape (see ``shapes``) and
returns the frozen model from ``kplan.config.model``, or None after adding
diagnostics. Loading files, merging them and following module sources is
``loader``'s job, not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kplan
from kplan.config import shapes
from kplan.config.model import (
    MISSING,
    Host,
    Local,
    Output,
    Positions,
    Settings,
    Validation,
    Variable,
)
from kplan.config.shapes import Where, check
from kplan.config.types import TYPE_FORMS, TypeConversionError, TypeParseError, convert, parse_type
from kplan.config.yamlpos import relative
from kplan.diagnostics import Diagnostics, SourcePos
from kplan.values import Path

__all__ = [
    "Entry",
    "build_groups",
    "build_host",
    "build_local",
    "build_output",
    "build_settings",
    "build_variable",
    "check_name",
    "parse_references",
]

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_STEP = r"[A-Za-z_][A-Za-z0-9_-]*(?:\[[^\]]*\])?"
REFERENCE = re.compile(rf"{_STEP}(?:\.{_STEP})+")


@dataclass(frozen=True)
class Entry:
    """The raw value of one ``SECTION.NAME`` and the positions of its nodes (relative)."""

    section: str
    name: str
    value: Any
    pos: SourcePos  # the NAME key
    values: Mapping[Path, SourcePos]
    keys: Mapping[Path, SourcePos]

    @property
    def label(self) -> str:
        return f"{self.section}.{self.name}"

    def where(self, label: str | None = None) -> Where:
        return Where(label or self.label, self.pos, self.values, self.keys)

    def positions(self) -> Positions:
        return Positions(self.values.get((), self.pos), self.values)

    def at(self, *path: str | int) -> SourcePos:
        return self.where().value_at(path)

    def key_at(self, *path: str | int) -> SourcePos:
        return self.where().key_at(path)

    def sub(self, *prefix: str | int) -> Entry:
        return Entry(
            self.section,
            self.name,
            self.value,
            self.key_at(*prefix),
            relative(self.values, prefix),
            relative(self.keys, prefix),
        )


def check_name(entry: Entry, diags: Diagnostics, pattern: re.Pattern[str] = NAME) -> bool:
    if pattern.fullmatch(entry.name):
        return True
    diags.error(
        f"invalid name {entry.name!r} in {entry.section}",
        "a name starts with a letter or '_' and holds letters, digits, '_' and '-'",
        entry.pos,
        code="invalid-name",
    )
    return False


def _unwrap(text: str) -> str:
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    return text


def parse_references(
    items: list[str], entry: Entry, path: Path, diags: Diagnostics
) -> tuple[str, ...]:
    """Reference strings ("local_file.conf", "${local_file.conf.content}") without ``${}``."""
    out: list[str] = []
    for i, item in enumerate(items):
        ref = _unwrap(item)
        if REFERENCE.fullmatch(ref):
            out.append(ref)
            continue
        diags.error(
            f"{shapes.format_path(entry.label, (*path, i))}: expected a reference such as "
            f'"local_file.conf" or "local_file.conf.content", got {item!r}',
            pos=entry.at(*path, i),
            code="invalid-reference",
        )
    return tuple(out)


def build_variable(entry: Entry, diags: Diagnostics) -> Variable | None:
    if not check_name(entry, diags):
        return None
    block = check(shapes.VariableBlock, entry.value, entry.where(), diags)
    if block is None:
        return None
    ok = True
    try:
        spec = parse_type(block.type)
    except TypeParseError as exc:
        diags.error(
            f"{entry.label}.type: expected one of {TYPE_FORMS}",
            f"{exc} in {block.type!r}",
            entry.at("type"),
            code="invalid-type",
        )
        ok = False
    default = block.default
    if ok and default is not MISSING:
        try:
            default = convert(default, spec, f"{entry.label}.default")
        except TypeConversionError as exc:
            diags.error(str(exc), pos=entry.at("default"), code="invalid-default")
            ok = False
    validations = _validations(entry, block.validation, diags)
    if not ok or validations is None:
        return None
    return Variable(
        name=entry.name,
        type=block.type,
        default=default,
        description=block.description,
        sensitive=block.sensitive,
        validations=validations,
        pos=entry.pos,
    )


def _validations(entry: Entry, raw: Any, diags: Diagnostics) -> tuple[Validation, ...] | None:
    if raw is None:
        return ()
    items: list[tuple[Any, Entry]]
    if isinstance(raw, list):
        items = [(item, entry.sub("validation", i)) for i, item in enumerate(raw)]
    else:
        items = [(raw, entry.sub("validation"))]
    out: list[Validation] = []
    failed = False
    for i, (item, sub) in enumerate(items):
        label = f"{entry.label}.validation" + (f"[{i}]" if isinstance(raw, list) else "")
        block = check(shapes.ValidationBlock, item, sub.where(label), diags)
        if block is None:
            failed = True
            continue
        out.append(Validation(block.condition, block.error_message, sub.at("condition")))
    return None if failed else tuple(out)


def build_local(entry: Entry, diags: Diagnostics) -> Local | None:
    if not check_name(entry, diags):
        return None
    return Local(entry.name, entry.value, entry.positions())


def build_output(entry: Entry, diags: Diagnostics) -> Output | None:
    if not check_name(entry, diags):
        return None
    value = entry.value
    long_form = (
        isinstance(value, dict)
        and "value" in value
        and set(value) <= set(shapes.OutputBlock.fields())
    )
    if not long_form:
        nodes = {("value", *p): pos for p, pos in entry.values.items()}
        return Output(entry.name, value, "", False, Positions(entry.pos, nodes))
    block = check(shapes.OutputBlock, value, entry.where(), diags)
    if block is None:
        return None
    return Output(
        entry.name,
        block.value,
        block.description,
        block.sensitive,
        entry.positions(),
        parse_references(block.depends_on, entry, ("depends_on",), diags),
    )


def build_host(entry: Entry, diags: Diagnostics) -> Host | None:
    if not check_name(entry, diags, HOST_NAME):
        return None
    block = check(shapes.HostBlock, entry.value, entry.where(), diags)
    if block is None:
        return None
    address = block.address
    if address is None:
        if block.connection != "local":
            diags.error(
                f"{entry.label}.address: required attribute is missing",
                "every ssh host needs an address; a host run on this machine sets "
                "connection: local",
                entry.at(),
                code="invalid-attribute",
            )
            return None
        address = "127.0.0.1"
    for i, group in enumerate(block.groups):
        if not NAME.fullmatch(group):
            diags.error(
                f"{entry.label}.groups[{i}]: invalid group name {group!r}",
                pos=entry.at("groups", i),
                code="invalid-name",
            )
    return Host(
        name=entry.name,
        address=address,
        groups=tuple(dict.fromkeys(block.groups)),
        connection=block.connection,
        user=block.user,
        port=block.port,
        vars=block.vars,
        pos=entry.pos,
        ssh_key=block.ssh_key,
        known_hosts=block.known_hosts,
    )


def build_groups(
    hosts: Mapping[str, Host], entries: list[Entry], diags: Diagnostics
) -> dict[str, tuple[str, ...]]:
    """Group → host names, from the hosts' ``groups`` and the ``groups:`` section."""
    members: dict[str, set[str]] = {}
    for host in hosts.values():
        for group in host.groups:
            members.setdefault(group, set()).add(host.name)
    for entry in entries:
        if not check_name(entry, diags):
            continue
        names = [] if entry.value is None else entry.value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            diags.error(
                f"{entry.label}: expected a list of host names",
                pos=entry.at(),
                code="invalid-group",
            )
            continue
        listed = members.setdefault(entry.name, set())
        for i, name in enumerate(names):
            if name not in hosts:
                diags.error(
                    f"{entry.label}[{i}]: unknown host {name!r}",
                    "every member of a group is declared under hosts:",
                    entry.at(i),
                    code="unknown-host",
                )
            listed.add(name)
    order = list(hosts)
    return {group: tuple(h for h in order if h in names) for group, names in members.items()}


def build_settings(entries: list[Entry], diags: Diagnostics) -> Settings:
    """The ``kplan`` section (possibly spread over files): one entry per key."""
    if not entries:
        return Settings()
    data = {e.name: e.value for e in entries}
    values = {(e.name, *p): pos for e in entries for p, pos in e.values.items()}
    keys: dict[Path, SourcePos] = {(e.name,): e.pos for e in entries}
    keys.update({(e.name, *p): pos for e in entries for p, pos in e.keys.items()})
    where = Where("kplan", entries[0].pos, values, keys)
    block = check(shapes.SettingsBlock, data, where, diags)
    if block is None:
        return Settings(pos=entries[0].pos)
    if block.required_version is not None:
        _check_required_version(
            block.required_version, where.value_at(("required_version",)), diags
        )
    backend = block.backend.as_dict() if block.backend is not None else None
    return Settings(block.required_version, backend, entries[0].pos)


def _check_required_version(constraint: str, pos: SourcePos, diags: Diagnostics) -> None:
    try:
        ok = shapes.check_version(constraint, kplan.__version__)
    except ValueError as exc:
        diags.error(
            f"kplan.required_version: {exc}",
            'write constraints such as ">=0.1" or ">=0.1, <1.0" (operators: >= <= > < == !=)',
            pos,
            code="invalid-version-constraint",
        )
        return
    if not ok:
        diags.error(
            f"this configuration requires kplan {constraint}; this is kplan {kplan.__version__}",
            pos=pos,
            code="unsupported-version",
        )
