"""YAML with positions: plain Python data plus where every node was written.

:func:`parse_yaml` reads one YAML document from libyaml's event stream (the C
parser when PyYAML has it) and builds plain data — dict, list, str, int,
float, bool, None — together with two flat maps from a node's path to its
:class:`SourcePos`: ``values`` (where the node starts) and ``keys`` (where
the mapping key naming it starts). Building from events, not from composed
nodes, is fast (no node objects) and cannot overflow the C stack on deeply
nested input.

Rules beyond plain YAML 1.1: mapping keys are always strings (the scalar as
written: ``80: x`` gives the key ``"80"``); a key written twice is an error
naming both places; timestamps stay strings; custom tags are errors;
aliases are copied (and bounded, against "billion laughs"); nesting deeper
than :data:`MAX_DEPTH` is an error. Nothing here raises for bad input:
problems come back as diagnostics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events as ev

from kplan.config.model import Positions
from kplan.config.yamlhint import comment_in_expression, unclosed_expression, unquoted_expression
from kplan.diagnostics import Diagnostic, Diagnostics, SourcePos
from kplan.values import Path

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "YamlDoc",
    "group_positions",
    "parse_yaml",
    "read_yaml",
    "relative",
]

MAX_DEPTH = 400
MAX_ALIAS_NODES = 1_000_000

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_T = "tag:yaml.org,2002:"
_IMPLICIT: Mapping[str | None, list[tuple[str, re.Pattern[str]]]] = (
    yaml.resolver.Resolver.yaml_implicit_resolvers
)
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


@dataclass
class YamlDoc:
    """One parsed document: data and the positions of its nodes (paths from the root)."""

    file: str
    data: Any = None
    values: dict[Path, SourcePos] = field(default_factory=dict)
    keys: dict[Path, SourcePos] = field(default_factory=dict)

    def positions(self) -> Positions:
        return Positions(SourcePos(self.file, 1, 1), self.values)


class _Abort(Exception):
    """Stop building: the diagnostic is already recorded."""


class _Frame:
    __slots__ = ("container", "expect_key", "key", "keypos", "merges", "path", "start")

    def __init__(self, container: Any, path: Path | None, start: int) -> None:
        self.container = container
        self.path = path  # None: a node whose positions are not kept (a key, a duplicate)
        self.start = start  # node counter when the collection opened
        self.expect_key = True
        self.key: Any = None
        self.keypos: dict[str, SourcePos] = {}
        self.merges: list[tuple[Any, SourcePos]] = []


_SKIP = object()
_MERGE = object()


def _resolve(value: str, implicit: tuple[bool, bool], tag: str | None) -> str:
    if tag is not None and tag != "!":
        return tag
    if not implicit[0]:
        return _T + "str"
    candidates = _IMPLICIT.get(value[0] if value else "", []) + _IMPLICIT.get(None, [])
    for rtag, regexp in candidates:
        if regexp.match(value):
            return rtag
    return _T + "str"


def _int(text: str) -> int:
    value = text.replace("_", "")
    sign = -1 if value[:1] == "-" else 1
    if value[:1] in "+-":
        value = value[1:]
    if value == "0":
        return 0
    if value.startswith("0b"):
        return sign * int(value[2:], 2)
    if value.startswith("0x"):
        return sign * int(value[2:], 16)
    if value.startswith("0o"):
        return sign * int(value[2:], 8)
    if value[0] == "0" and len(value) > 1:
        return sign * int(value, 8)
    if ":" in value:
        total = 0
        for part in value.split(":"):
            total = total * 60 + int(part)
        return sign * total
    return sign * int(value)


def _float(text: str) -> float:
    value = text.replace("_", "").lower()
    sign = -1.0 if value[:1] == "-" else 1.0
    if value[:1] in "+-":
        value = value[1:]
    if value == ".inf":
        return sign * float("inf")
    if value == ".nan":
        return float("nan")
    if ":" in value:
        total = 0.0
        for part in value.split(":"):
            total = total * 60 + float(part)
        return sign * total
    return sign * float(value)


_SCALARS: dict[str, Callable[[str], Any]] = {
    _T + "str": str,
    _T + "null": lambda v: None,
    _T + "bool": lambda v: _BOOLS[v.lower()],
    _T + "int": _int,
    _T + "float": _float,
    _T + "timestamp": str,
    _T + "binary": str,
}


class _Builder:
    """Turns libyaml events into data and positions; see the module docstring."""

    def __init__(self, file: str, diags: Diagnostics) -> None:
        self.doc = YamlDoc(file)
        self.diags = diags
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.nodes = 0
        self.alias_nodes = 0
        self.done = False
        self.anchor_marks: list[tuple[str | None, Any]] = []
        self.text = ""

    def pos(self, mark: Any) -> SourcePos:
        return SourcePos(self.doc.file, mark.line + 1, mark.column + 1)

    def error(self, summary: str, mark: Any, detail: str = "", code: str = "yaml-syntax") -> None:
        self.diags.error(summary, detail, self.pos(mark), code)

    def run(self, text: str) -> None:
        self.text = text
        parser = _Parser(text)
        handlers: dict[type, Callable[[Any], None]] = {
            ev.ScalarEvent: self.scalar,
            ev.MappingStartEvent: self.start_mapping,
            ev.SequenceStartEvent: self.start_sequence,
            ev.MappingEndEvent: self.end_collection,
            ev.SequenceEndEvent: self.end_collection,
            ev.AliasEvent: self.alias,
            ev.DocumentStartEvent: self.document,
        }
        try:
            while True:
                event = parser.get_event()
                if event is None or isinstance(event, ev.StreamEndEvent):
                    return
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)
        finally:
            parser.dispose()

    def document(self, event: Any) -> None:
        if self.done:
            self.error(
                "a kplan file holds one YAML document; found a second one",
                event.start_mark,
                code="yaml-multiple-documents",
            )
            raise _Abort
        self.done = True

    # -- placing a finished node into its parent ---------------------------------
    def child_path(self) -> Path | None:
        """The path of the node about to start, or None when it is not kept."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.path is None or (top.expect_key and isinstance(top.container, dict)):
            return None
        if isinstance(top.container, list):
            return (*top.path, len(top.container))
        if top.key is _SKIP or top.key is _MERGE:
            return None
        return (*top.path, top.key)

    def place(self, value: Any, pos: SourcePos, key_text: str | None, merge: bool) -> None:
        self.nodes += 1
        if not self.stack:
            self.doc.data = value
            self.doc.values[()] = pos
            return
        top = self.stack[-1]
        if isinstance(top.container, list):
            if top.path is not None:
                self.doc.values[(*top.path, len(top.container))] = pos
            top.container.append(value)
        elif top.expect_key:
            self.take_key(top, key_text, pos, merge)
        else:
            self.take_value(top, value, pos)

    def take_key(self, top: _Frame, key_text: str | None, pos: SourcePos, merge: bool) -> None:
        top.expect_key = False
        if merge:
            top.key = _MERGE
        elif key_text is None:
            self.diags.error(
                "a mapping key must be a string, not a list or a mapping",
                pos=pos,
                code="yaml-complex-key",
            )
            top.key = _SKIP
        elif key_text in top.keypos:
            first = top.keypos[key_text]
            self.diags.error(
                f"duplicate key {key_text!r}",
                f"{key_text!r} is first written at {first}",
                pos,
                code="duplicate-key",
            )
            top.key = _SKIP
        else:
            top.keypos[key_text] = pos
            top.key = key_text
            if top.path is not None:
                self.doc.keys[(*top.path, key_text)] = pos

    def take_value(self, top: _Frame, value: Any, pos: SourcePos) -> None:
        top.expect_key = True
        if top.key is _MERGE:
            top.merges.append((value, pos))
        elif top.key is not _SKIP:
            top.container[top.key] = value
            if top.path is not None:
                self.doc.values[(*top.path, top.key)] = pos

    # -- events ------------------------------------------------------------------
    def scalar(self, event: Any) -> None:
        tag = _resolve(event.value, event.implicit, event.tag)
        convert = _SCALARS.get(tag)
        value: Any = None
        if tag == _T + "merge":
            pass
        elif convert is None:
            self.error(f"unsupported YAML tag {event.tag}", event.start_mark, code="yaml-tag")
        else:
            try:
                value = convert(event.value)
            except (ValueError, KeyError):
                self.error(f"invalid {tag[len(_T) :]} {event.value!r}", event.start_mark)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, 1)
        if not event.style and "${" in event.value and unclosed_expression(event.value):
            hint = comment_in_expression(
                self.doc.file,
                self.text.split("\n"),
                event.value,
                event.start_mark.line,
                event.start_mark.column,
            )
            if hint is not None:
                self.diags.add(hint)
        pos = self.pos(event.start_mark)
        if event.style in ("'", '"'):  # a position inside the text is one past the quote
            pos = SourcePos(pos.file, pos.line, pos.col, text_offset=1)
        self.place(value, pos, event.value, tag == _T + "merge")

    def open(self, event: Any, container: Any, allowed: tuple[str, ...]) -> None:
        if event.tag not in (None, "!") and event.tag not in allowed:
            self.error(f"unsupported YAML tag {event.tag}", event.start_mark, code="yaml-tag")
        if len(self.stack) >= MAX_DEPTH:
            self.error(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            raise _Abort
        frame = _Frame(container, self.child_path(), self.nodes)
        self.stack.append(frame)
        self.anchor_marks.append((event.anchor, event.start_mark))

    def start_mapping(self, event: Any) -> None:
        self.open(event, {}, (_T + "map", _T + "set"))

    def start_sequence(self, event: Any) -> None:
        self.open(event, [], (_T + "seq", _T + "omap", _T + "pairs"))

    def end_collection(self, event: Any) -> None:
        frame = self.stack.pop()
        anchor, mark = self.anchor_marks.pop()
        if frame.merges:
            self.apply_merges(frame)
        if anchor is not None:
            self.anchors[anchor] = (frame.container, self.nodes - frame.start + 1)
        self.place(frame.container, self.pos(mark), None, False)

    def apply_merges(self, frame: _Frame) -> None:
        for value, pos in frame.merges:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(source, dict) for source in sources):
                self.diags.error(
                    "the merge key << needs a mapping or a list of mappings",
                    pos=pos,
                    code="yaml-merge",
                )
                continue
            for source in sources:
                for k, v in source.items():
                    if k not in frame.container:
                        frame.container[k] = _copy(v)
                        if frame.path is not None:
                            self.doc.values[(*frame.path, k)] = pos
                            self.doc.keys[(*frame.path, k)] = pos

    def alias(self, event: Any) -> None:
        found = self.anchors.get(event.anchor)
        value: Any = None
        if found is None:
            self.error(f"undefined alias *{event.anchor}", event.start_mark, code="yaml-alias")
        else:
            value, size = found
            self.alias_nodes += size
            self.nodes += size - 1  # an alias counts as the nodes it copies
            if self.alias_nodes > MAX_ALIAS_NODES:
                self.error(f"aliases expand to more than {MAX_ALIAS_NODES} nodes", event.start_mark)
                raise _Abort
            value = _copy(value)
        self.place(value, self.pos(event.start_mark), None, False)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _mark_pos(file: str, mark: Any) -> SourcePos | None:
    if mark is None:
        return None
    return SourcePos(file, mark.line + 1, mark.column + 1)


def _unquoted_expression(
    file: str, text: str, exc: yaml.MarkedYAMLError, problem: str
) -> Diagnostic | None:
    """The quoting hint when an unquoted ``${...}`` broke the YAML (see yamlhint)."""
    mark = exc.problem_mark
    if mark is None or "${" not in text:
        return None
    start = mark.line
    context = exc.context_mark
    if context is not None and "flow" in (exc.context or "") and context.line <= mark.line:
        start = context.line
    return unquoted_expression(file, text, problem, mark.line, mark.column, start)


def _yaml_error(file: str, text: str, exc: yaml.YAMLError, diags: Diagnostics) -> None:
    if isinstance(exc, yaml.reader.ReaderError):
        index = min(max(exc.position, 0), len(text))
        line = text.count("\n", 0, index) + 1
        col = index - (text.rfind("\n", 0, index) + 1) + 1
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else repr(char)
        reason = f"{exc.reason} (character {shown})"
        diags.error(f"invalid YAML: {reason}", pos=SourcePos(file, line, col), code="yaml-syntax")
        return
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = (exc.problem or "invalid YAML").strip()
        detail = ""
        context_pos = _mark_pos(file, exc.context_mark)
        if exc.context:
            detail = exc.context + (f" started at {context_pos}" if context_pos else "")
        pos = _mark_pos(file, exc.problem_mark) or context_pos
        hint = _unquoted_expression(file, text, exc, problem)
        if hint is not None:
            diags.add(hint)
            return
        mark = exc.problem_mark
        lines = text.split("\n") if "\t" in text else []
        source = lines[mark.line] if mark is not None and mark.line < len(lines) else ""
        if mark is not None and source[mark.column : mark.column + 1] == "\t":
            tab = "YAML does not allow a tab here (for indentation, use spaces)"
            detail = f"{tab}; {detail}" if detail else tab
        diags.error(f"invalid YAML: {problem}", detail, pos, code="yaml-syntax")
        return
    diags.error(f"invalid YAML: {exc}", pos=SourcePos(file, 1, 1), code="yaml-syntax")


def parse_yaml(text: str, file: str) -> tuple[YamlDoc, Diagnostics]:
    """Parse one YAML document; on a syntax error ``data`` is None and diagnostics say where."""
    diags = Diagnostics()
    builder = _Builder(file, diags)
    try:
        builder.run(text)
    except _Abort:
        pass
    except yaml.YAMLError as exc:
        _yaml_error(file, text, exc, diags)
    except UnicodeError:  # e.g. a lone surrogate in text that did not come from a file
        diags.error(f"{file} holds text that is not valid Unicode", code="yaml-encoding")
    if diags.has_errors:
        return YamlDoc(file), diags
    return builder.doc, diags


def read_yaml(path: str, display: str | None = None) -> tuple[YamlDoc, Diagnostics]:
    """Read and parse a file; unreadable or non-UTF-8 files become diagnostics."""
    shown = display or path
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        diags = Diagnostics()
        diags.error(f"cannot read {shown}: {exc.strerror or exc}", code="file-unreadable")
        return YamlDoc(shown), diags
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        diags = Diagnostics()
        index = exc.start
        line = raw.count(b"\n", 0, index) + 1
        col = index - (raw.rfind(b"\n", 0, index) + 1) + 1
        diags.error(
            "the file is not valid UTF-8", pos=SourcePos(shown, line, col), code="yaml-encoding"
        )
        return YamlDoc(shown), diags
    return parse_yaml(text, shown)


def group_positions(
    nodes: Mapping[Path, SourcePos], depth: int
) -> dict[Path, dict[Path, SourcePos]]:
    """Split a flat position map by path prefix of length ``depth``, paths made relative.

    One pass over all nodes: the way to get every entry's positions without
    calling :meth:`Positions.sub` per entry (which scans all nodes each time).
    """
    out: dict[Path, dict[Path, SourcePos]] = {}
    for path, pos in nodes.items():
        if len(path) < depth:
            continue
        prefix = path[:depth]
        group = out.get(prefix)
        if group is None:
            group = out[prefix] = {}
        group[path[depth:]] = pos
    return out


def relative(nodes: Mapping[Path, SourcePos], prefix: Path) -> dict[Path, SourcePos]:
    """The positions under ``prefix``, relative to it (a scan of ``nodes``)."""
    n = len(prefix)
    return {p[n:]: pos for p, pos in nodes.items() if p[:n] == prefix}
