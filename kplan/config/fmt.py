"""``kplan fmt``: rewrite ``*.kp.yaml`` files in the canonical layout.

The canonical layout: two-space indentation, list items indented under
their key, the top-level sections in the order kplan, variables, locals,
hosts, groups, modules, resources, outputs (unknown keys after them, in
their order). Everything else is kept: comments, quotes, flow or block
style, key order inside sections, literal blocks.

How: the top-level sections are cut out of the text by their line numbers
(a section takes the comment lines directly above it along), put in order,
and the result is dumped by ruamel.yaml's round-trip mode, which keeps
comments. A file whose top level is not a block mapping with keys at column
0 is left as written. The output is checked to hold the same data as the
input, and formatting is repeated until it is stable, so that
``format_source`` is idempotent.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kplan.config.loader import FILE_SUFFIX, SECTIONS
from kplan.config.yamlpos import parse_yaml
from kplan.diagnostics import Diagnostic, Diagnostics, SourcePos

__all__ = ["FormatError", "format_paths", "format_source"]

_MAX_PASSES = 3


class FormatError(ValueError):
    """The text cannot be formatted; ``diagnostic`` says where and why."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(str(diagnostic))
        self.diagnostic = diagnostic


def _represent_none(representer: Any, _: None) -> Any:
    # ruamel's round trip writes a null as nothing at all (``default:``); the
    # canonical form spells it, as users write it and as the docs show it.
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.representer.add_representer(type(None), _represent_none)
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 4096  # never re-wrap long strings
    return y


def _load(text: str, file: str) -> Any:
    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = SourcePos(file, mark.line + 1, mark.column + 1) if mark else SourcePos(file, 1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        diag = Diagnostic.error(f"invalid YAML: {problem}", pos=pos, code="yaml-syntax")
        raise FormatError(diag) from None
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        summary = f"invalid YAML: {exc}".splitlines()[0]
        diag = Diagnostic.error(summary, pos=SourcePos(file, 1, 1), code="yaml-syntax")
        raise FormatError(diag) from None


def _chunk_start(lines: list[str], key_line: int, floor: int) -> int:
    """The first line of a section: its key's line, or the comment lines right above it."""
    start = key_line
    while start > floor and lines[start - 1].startswith("#"):
        start -= 1
    return start


def _rank(key: Any) -> int:
    return SECTIONS.index(key) if key in SECTIONS else len(SECTIONS)


def _split_sections(text: str, data: CommentedMap) -> tuple[str, list[tuple[Any, str]], bool]:
    """(preamble, [(key, section text)], whether blank lines separated sections)."""
    lines = text.splitlines(keepends=True)
    key_lines = [data.lc.key(k)[0] for k in data]
    starts: list[int] = []
    floor = 0
    for line in key_lines:
        starts.append(_chunk_start(lines, line, floor))
        floor = line + 1
    chunks: list[tuple[Any, str]] = []
    blank = False
    for i, key in enumerate(data):
        end = starts[i + 1] if i + 1 < len(starts) else len(lines)
        chunk = "".join(lines[starts[i] : end])
        stripped = chunk.rstrip() + "\n"
        blank = blank or (i + 1 < len(starts) and chunk.count("\n") > stripped.count("\n"))
        chunks.append((key, stripped))
    return "".join(lines[: starts[0]]), chunks, blank


def _dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return out.getvalue()


def _format_once(text: str, file: str) -> str:
    data = _load(text, file)
    if not isinstance(data, CommentedMap) or not data or data.fa.flow_style():
        return text
    if any(data.lc.key(k)[1] != 0 for k in data):
        return text
    preamble, chunks, blank = _split_sections(text, data)
    ordered = sorted(chunks, key=lambda chunk: _rank(chunk[0]))
    body = ("\n" if blank else "").join(chunk for _, chunk in ordered)
    return preamble + _dump(_load(body, file))


def _same_data(before: str, after: str) -> bool:
    old, old_diags = parse_yaml(before, "before")
    new, new_diags = parse_yaml(after, "after")
    if old_diags.has_errors or new_diags.has_errors:
        return old_diags.has_errors == new_diags.has_errors
    return bool(old.data == new.data)


def format_source(text: str, file: str = "<source>") -> str:
    """The canonical form of one file's text; raises :class:`FormatError` for bad YAML.

    ``format_source(format_source(x)) == format_source(x)``. Should the
    formatted text ever hold different data than ``text``, ``text`` is
    returned unchanged.
    """
    current = text
    for _ in range(_MAX_PASSES):
        formatted = _format_once(current, file)
        if formatted == current:
            break
        current = formatted
    if current != text and not _same_data(text, current):
        return text
    return current


def _expand(paths: Iterable[str], diags: Diagnostics) -> list[str]:
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(FILE_SUFFIX))
            files.extend(os.path.join(path, n) for n in names)
        elif os.path.isfile(path):
            files.append(path)
        else:
            diags.error(f"{path}: no such file or folder", code="file-not-found")
    return files


def format_paths(paths: Iterable[str], check: bool = False) -> tuple[list[str], Diagnostics]:
    """Format files (folders: their ``*.kp.yaml`` files); return the files that changed.

    With ``check`` nothing is written: the list names the files that are not
    formatted. A file with a YAML error is reported and left untouched.
    """
    diags = Diagnostics()
    changed: list[str] = []
    for path in _expand(paths, diags):
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            diags.error(f"cannot read {path}: {exc}", code="file-unreadable")
            continue
        try:
            formatted = format_source(text, path)
        except FormatError as exc:
            diags.add(exc.diagnostic)
            continue
        if formatted == text:
            continue
        changed.append(path)
        if not check:
            try:
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(formatted)
            except OSError as exc:
                diags.error(f"cannot write {path}: {exc.strerror or exc}", code="file-unwritable")
    return changed, diags
