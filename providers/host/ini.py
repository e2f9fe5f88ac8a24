"""Merge INI override snippets into a rendered config, keeping the config's layout.

kolla-ansible's ``merge_configs`` rule, written so that a plan diff stays
minimal: the base text (a rendered template) keeps every line, comment and
blank line; a key an override sets is replaced where it stands (its first
occurrence; its other occurrences in the base are dropped); a key new to its
section is appended after that section's last key; a new section goes at the
end. Later layers win key by key within a section.

The syntax is oslo.config's (which kolla-ansible parses overrides with):
``[section]``; ``key = value`` or ``key: value`` (the first ``=`` or ``:``
splits); ``#`` and ``;`` comments; an indented line continues the value of
the key above it, until a blank line. One addition, for MySQL option files:
a line with neither ``=`` nor ``:`` is a key without a value
(``skip-name-resolve``). Keys before the first section belong to the
section ``""``.

Multi-valued keys (oslo's MultiStrOpt): a key written several times in one
file is one value of several lines; a later layer that sets the key replaces
all of them with all of its own, as kolla-ansible does. Nothing here
reveals or masks secrets: callers pass plain text and keep track of that.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from kplan.values import SENSITIVE_TEXT

__all__ = ["Doc", "IniError", "Merged", "Section", "merge", "parse", "values"]

#: (section, key): keys are compared as written, case and all.
Key = tuple[str, str]
#: A key's value: one tuple per occurrence, each the value's lines (continuations after).
Value = tuple[tuple[str, ...], ...]


class IniError(ValueError):
    """Text that is not INI; ``line`` counts from 1."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message
        #: The layer's name, when the text was an override (set by :func:`merge`).
        self.layer: str | None = None


@dataclass
class _Entry:
    key: Key
    start: int  # the key's line
    end: int  # one past its last continuation line
    value: list[str] = field(default_factory=list)


@dataclass
class Section:
    """One ``[name]`` header's block; ``last`` is one past its last key line (or header)."""

    name: str
    header: int | None
    last: int


@dataclass
class Doc:
    """A parsed text: its lines as they are, its keys and its sections' blocks."""

    lines: list[str]
    entries: list[_Entry]
    sections: list[Section]


def _split(text: str, n: int) -> tuple[str, str | None]:
    cut = min((i for i in (text.find("="), text.find(":")) if i >= 0), default=-1)
    if cut < 0:
        key, value = text.strip(), None
    else:
        key, value = text[:cut].strip(), text[cut + 1 :].strip()
    if not key:
        raise IniError(n, "a key is missing before the = (expected KEY = VALUE)")
    return key, value


def parse(text: str) -> Doc:
    """The text's lines, keys and sections; raises :class:`IniError`."""
    lines = text.splitlines(keepends=True)
    doc = Doc(lines, [], [Section("", None, 0)])
    current: _Entry | None = None
    for i, raw in enumerate(lines):
        n, line = i + 1, raw.rstrip()
        if not line:
            current = None  # a blank line ends a multi-line value
            continue
        if line[0] in " \t":
            if current is None:
                if line.lstrip()[:1] in ("#", ";"):
                    continue  # an indented comment where no value runs on
                raise IniError(n, "an indented line continues no key (unexpected continuation)")
            current.end = i + 1
            current.value.append(line.strip())
            doc.sections[-1].last = i + 1
            continue
        current = None
        if line.startswith("["):
            if not line.endswith("]"):
                raise IniError(n, "a section header must end with ] (expected [SECTION])")
            name = line[1:-1].strip()
            if not name:
                raise IniError(n, "empty section name (expected [SECTION])")
            doc.sections.append(Section(name, i, i + 1))
        elif line[0] in "#;":
            continue
        else:
            key, value = _split(line, n)
            current = _Entry((doc.sections[-1].name, key), i, i + 1, [value or ""])
            doc.entries.append(current)
            doc.sections[-1].last = i + 1
    return doc


def _value(entries: Sequence[_Entry]) -> Value:
    return tuple(tuple(e.value) for e in entries)


def values(doc: Doc) -> dict[Key, Value]:
    """Each key's value, as :data:`Value`; keys in the order they first appear."""
    grouped: dict[Key, list[_Entry]] = {}
    for e in doc.entries:
        grouped.setdefault(e.key, []).append(e)
    return {k: _value(v) for k, v in grouped.items()}


@dataclass(frozen=True)
class Merged:
    text: str
    #: The layer each overridden key's value came from, in the order of ``text``.
    sources: dict[Key, str]


@dataclass
class _Set:
    lines: list[str]
    value: Value
    layer: str


def _layer_sets(doc: Doc) -> dict[Key, tuple[list[str], Value]]:
    out: dict[Key, tuple[list[str], list[_Entry]]] = {}
    for e in doc.entries:
        lines, entries = out.setdefault(e.key, ([], []))
        lines.extend(doc.lines[j].rstrip("\r\n").rstrip() + "\n" for j in range(e.start, e.end))
        entries.append(e)
    return {k: (lines, _value(entries)) for k, (lines, entries) in out.items()}


def merge(
    base: str,
    layers: Sequence[tuple[str, str]],
    *,
    only: Collection[Key] | None = None,
    hide: Collection[Key] = (),
) -> Merged:
    """``base`` with each layer ``(name, text)`` merged over it, in order.

    ``only``: apply just these keys (the masked rendering follows the real
    merge's decisions, never its own comparison of masked values); ``hide``:
    write these keys' values as ``(sensitive)``. Raises :class:`IniError` for
    the base; for a layer, the error carries ``layer`` (its name) as an attribute.
    """
    doc = parse(base)
    top_keys = any(e.key[0] == "" for e in doc.entries)
    sets: dict[Key, _Set] = {}
    for name, text in layers:
        try:
            layer = parse(text)
            _check_layer(layer, top_keys)
        except IniError as exc:
            exc.layer = name
            raise
        for key, (lines, value) in _layer_sets(layer).items():
            sets[key] = _Set(lines, value, name)
    have = values(doc)
    # A key set to the value the base already has keeps the base's spelling: no change.
    sets = {k: s for k, s in sets.items() if have.get(k) != s.value}
    if only is not None:
        sets = {k: s for k, s in sets.items() if k in only}
    for k in hide:
        if k in sets:
            sets[k] = _Set([f"{k[1]} = {SENSITIVE_TEXT}\n"], sets[k].value, sets[k].layer)
    return _assemble(doc, sets, have)


def _check_layer(layer: Doc, top_keys: bool) -> None:
    """What a layer may not hold though the parser reads it: a misplaced or mistyped key.

    kolla-ansible's merge (oslo's parser) refuses both; read as keys, they would
    land in the file and stop the service at its start instead of in the plan.
    """
    for e in layer.entries:
        line = layer.lines[e.start]
        if e.key[0] == "" and not top_keys:
            raise IniError(e.start + 1, "a key before any [section] (expected [SECTION] first)")
        if "=" not in line and ":" not in line and any(c.isspace() for c in e.key[1]):
            raise IniError(e.start + 1, f'"{e.key[1]}" has no = (expected KEY = VALUE)')


def _assemble(doc: Doc, sets: dict[Key, _Set], have: dict[Key, Value]) -> Merged:
    start_of = {e.start: e for e in doc.entries}
    new_by_section: dict[str, list[Key]] = {}
    for k in sets:
        if k not in have:
            new_by_section.setdefault(k[0], []).append(k)
    last_block = {s.name: s for s in doc.sections}
    insert_at: dict[int, list[Key]] = {}
    for name, keys in new_by_section.items():
        block = last_block.get(name)  # the section's last block; "" is always there
        if block is not None:
            insert_at.setdefault(block.last, []).extend(keys)
    out: list[str] = []
    done: set[Key] = set()
    skip_to = 0
    for i in range(len(doc.lines) + 1):
        for k in insert_at.get(i, ()):
            _terminate(out)
            out.extend(sets[k].lines)
        if i == len(doc.lines):
            break
        if i < skip_to:
            continue
        e = start_of.get(i)
        if e is not None and e.key in sets:
            skip_to = e.end
            if e.key not in done:
                done.add(e.key)
                _terminate(out)
                out.extend(sets[e.key].lines)
            continue
        out.append(doc.lines[i])
    placed = {k for keys in insert_at.values() for k in keys} | done
    for name, keys in new_by_section.items():
        rest = [k for k in keys if k not in placed]
        if not rest:
            continue
        _terminate(out)
        if out and out[-1].strip():
            out.append("\n")
        out.append(f"[{name}]\n")
        for k in rest:
            out.extend(sets[k].lines)
    text = "".join(out)
    final = values(parse(text))
    return Merged(text, {k: sets[k].layer for k in final if k in sets})


def _terminate(out: list[str]) -> None:
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
