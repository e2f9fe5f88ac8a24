"""Terraform-style attribute diffs as structured lines, for the text and Markdown renderers.

A :class:`Line` is a column, a change symbol (``+ - ~`` or none) and text;
the renderers decide how to print it (indented for the terminal, the symbol
moved to column 0 for a Markdown ``diff`` block). The layout follows
``terraform plan``: keys aligned on ``=``, unchanged attributes hidden with a
``# (N unchanged attributes hidden)`` line (``id``, ``name`` and ``tags`` are
kept as context), lists diffed element by element with one element of
context, multi-line strings as ``<<-EOT`` heredocs diffed line by line.

A :class:`~kplan.values.Secret` prints as the caller's sensitive text and
:data:`~kplan.values.UNKNOWN` as ``(known after apply)``; a secret's raw value
is only ever hashed (to line list elements up), never printed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring  # what json.dumps(s, ensure_ascii=False) calls
from typing import Any, Final, NamedTuple

from kplan.plan.render_common import text_order
from kplan.values import UNKNOWN, Path, Secret, reveal

__all__ = ["DiffOptions", "Line", "diff_attribute", "diff_object"]

KNOWN_AFTER_APPLY: Final = "(known after apply)"
# Shown in updates even when unchanged, so a reader knows which object it is.
_IDENTIFYING: Final = frozenset({"id", "name", "tags"})
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_STEP: Final = 4
_TEXT_CONTEXT: Final = 3  # unchanged lines shown around a change in a heredoc
_LIST_CONTEXT: Final = 1  # unchanged elements shown around a change in a list


class Line(NamedTuple):
    """One output line: ``text`` starts at column ``col``; ``sym`` sits just left of it."""

    # A tuple, not a frozen dataclass: a large plan makes millions, and a frozen
    # dataclass sets each field through object.__setattr__.
    col: int
    sym: str
    text: str


@dataclass(frozen=True, slots=True)
class DiffOptions:
    sensitive_text: str = "(sensitive value)"
    replace_paths: tuple[Path, ...] = ()


def _absent(v: Any) -> bool:
    return v is None


def _is_map(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_list(v: Any) -> bool:
    return isinstance(v, list | tuple)


def _is_multiline(v: Any) -> bool:
    return isinstance(v, str) and "\n" in v


# Labels of string keys: a plan repeats the same few attribute names many times.
_LABELS: dict[str, str] = {}
_LABELS_MAX: Final = 4096


def _key_label(key: object) -> str:
    if type(key) is str:
        label = _LABELS.get(key)
        if label is None:
            label = key if _IDENT.match(key) else encode_basestring(key)
            if len(_LABELS) < _LABELS_MAX:
                _LABELS[key] = label
        return label
    text = str(key)
    return text if _IDENT.match(text) else encode_basestring(text)


def _scalar(v: Any, opts: DiffOptions) -> str:
    # The exact types first, as json.dumps would write them (the common, hot case).
    kind = type(v)
    if kind is str:
        return encode_basestring(v)
    if kind is bool:
        return "true" if v else "false"
    if kind is int:
        return int.__repr__(v)
    if isinstance(v, Secret):
        return opts.sensitive_text
    if v is UNKNOWN:
        return KNOWN_AFTER_APPLY
    if isinstance(v, str | bool | int | float) or v is None:
        return json.dumps(v, ensure_ascii=False)
    return json.dumps(str(v), ensure_ascii=False)


def _text_lines(v: str) -> list[str]:
    lines = v.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _suffix(lines: list[Line], suffix: str) -> list[Line]:
    if not suffix:
        return lines
    last = lines[-1]
    return [*lines[:-1], Line(last.col, last.sym, last.text + suffix)]


def _sorted_keys(*maps: Mapping[Any, Any]) -> list[Any]:
    if len(maps) == 1:
        return text_order(maps[0])
    keys: set[Any] = set()
    for m in maps:
        keys.update(m)
    return text_order(keys)


def _labelled(before: Mapping[Any, Any], after: Mapping[Any, Any]) -> list[tuple[Any, str]]:
    """The keys present (not null) on either side, sorted, each with its label padded
    to the widest: Terraform aligns a map's ``=`` signs."""
    if not before:  # a create, or a whole map
        pairs = [(k, _key_label(k)) for k in text_order(after) if after[k] is not None]
    else:
        pairs = [
            (k, _key_label(k))
            for k in _sorted_keys(before, after)
            if not (_absent(before.get(k)) and _absent(after.get(k)))
        ]
    width = max((len(label) for _, label in pairs), default=0)
    return [(k, label.ljust(width) + " = ") for k, label in pairs]


def _whole(v: Any, col: int, sym: str, opts: DiffOptions) -> tuple[str, list[Line]]:
    """Render ``v`` entirely: its first line's text and the lines that follow."""
    kind = type(v)
    if (kind is str and "\n" not in v) or kind is int or kind is bool:
        return _scalar(v, opts), []  # the common case, first
    if isinstance(v, Secret) or v is UNKNOWN:
        return _scalar(v, opts), []
    inner = col + _STEP
    if _is_multiline(v):
        body = [Line(inner, "", line) for line in _text_lines(v)]
        return "<<-EOT", [*body, Line(col, "", "EOT")]
    if _is_map(v):
        if not v:
            return "{}", []
        lines: list[Line] = []
        for k, label in _labelled({}, v):
            lines += _entry(label, v[k], inner, sym, "", opts)
        return "{", [*lines, Line(col, "", "}")]
    if _is_list(v):
        if not v:
            return "[]", []
        lines = []
        for item in v:
            lines += _entry("", item, inner, sym, ",", opts)
        return "[", [*lines, Line(col, "", "]")]
    return _scalar(v, opts), []


def _entry(label: str, v: Any, col: int, sym: str, suffix: str, opts: DiffOptions) -> list[Line]:
    first, rest = _whole(v, col, sym, opts)
    return _suffix([Line(col, sym, label + first), *rest], suffix)


def _canon(v: Any) -> str:
    """A comparable key for a list element; a secret contributes only a digest."""
    if isinstance(v, Secret):
        raw = json.dumps(reveal(v), sort_keys=True, default=str)
        return "secret:" + hashlib.sha256(raw.encode()).hexdigest()
    if v is UNKNOWN:
        return "unknown"
    if _is_map(v):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_canon(v[k])}" for k in _sorted_keys(v)) + "}"
    if _is_list(v):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    return json.dumps(v, default=str)


def _same(a: Any, b: Any) -> bool:
    return _canon(a) == _canon(b)


def diff_attribute(
    label: str, before: Any, after: Any, col: int, path: Path, opts: DiffOptions, suffix: str = ""
) -> list[Line]:
    """The lines of one attribute (or list element) going from ``before`` to ``after``."""
    forces = " # forces replacement" if path in opts.replace_paths else ""
    if _absent(before):
        first, rest = _whole(after, col, "+", opts)
        return _suffix([Line(col, "+", label + first + forces), *rest], suffix)
    if _absent(after):
        first, rest = _whole(before, col, "-", opts)
        tail = suffix or " -> null"
        return _suffix([Line(col, "-", label + first + forces), *rest], tail)
    if _same(before, after):
        first, rest = _whole(after, col, "", opts)
        return _suffix([Line(col, "", label + first), *rest], suffix)
    lines = _diff_changed(label, before, after, col, path, opts)
    head = lines[0]
    lines[0] = Line(head.col, head.sym, head.text + forces)
    return _suffix(lines, suffix)


def _diff_changed(
    label: str, before: Any, after: Any, col: int, path: Path, opts: DiffOptions
) -> list[Line]:
    if isinstance(before, Secret) and isinstance(after, Secret):
        return [Line(col, "~", label + opts.sensitive_text)]
    plain = not (isinstance(before, Secret) or isinstance(after, Secret))
    if plain and _is_map(before) and _is_map(after):
        body = diff_object(before, after, col + _STEP, path, opts)
        return [Line(col, "~", label + "{"), *body, Line(col, "", "}")]
    if plain and _is_list(before) and _is_list(after):
        body = _diff_list(before, after, col + _STEP, path, opts)
        return [Line(col, "~", label + "["), *body, Line(col, "", "]")]
    texts = isinstance(before, str) and isinstance(after, str)
    if texts and (_is_multiline(before) or _is_multiline(after)):
        return [Line(col, "~", label + "<<-EOT"), *_diff_text(before, after, col)]
    old_first, old_rest = _whole(before, col, "-", opts)
    new_first, new_rest = _whole(after, col, "+", opts)
    if not old_rest:
        return [Line(col, "~", label + old_first + " -> " + new_first), *new_rest]
    return [
        Line(col, "~", label + old_first),
        *_suffix(old_rest, " -> " + new_first),
        *new_rest,
    ]


def diff_object(
    before: Mapping[Any, Any], after: Mapping[Any, Any], col: int, path: Path, opts: DiffOptions
) -> list[Line]:
    """The entries of a map (or a resource's attributes) with unchanged ones hidden."""
    lines: list[Line] = []
    hidden = 0
    for k, label in _labelled(before, after):
        b, a = before.get(k), after.get(k)
        if not _absent(b) and not _absent(a) and _same(b, a) and k not in _IDENTIFYING:
            hidden += 1
            continue
        lines += diff_attribute(label, b, a, col, (*path, k), opts)
    if hidden:
        word = "attribute" if hidden == 1 else "attributes"
        lines.append(Line(col, "", f"# ({hidden} unchanged {word} hidden)"))
    return lines


def _hidden(n: int, col: int, noun: str) -> list[Line]:
    if n <= 0:
        return []
    word = noun if n == 1 else noun + "s"
    return [Line(col, "", f"# ({n} unchanged {word} hidden)")]


def _context(
    items: Sequence[Any], first: bool, last: bool, col: int, opts: DiffOptions
) -> list[Line]:
    """An unchanged run of list elements: the ends next to a change shown, the rest hidden."""
    n = len(items)
    head = 0 if first else min(_LIST_CONTEXT, n)
    tail = 0 if last else min(_LIST_CONTEXT, n - head)
    lines: list[Line] = []
    for item in items[:head]:
        lines += _entry("", item, col, "", ",", opts)
    lines += _hidden(n - head - tail, col, "element")
    for item in items[n - tail :]:
        lines += _entry("", item, col, "", ",", opts)
    return lines


def _diff_list(
    before: Sequence[Any], after: Sequence[Any], col: int, path: Path, opts: DiffOptions
) -> list[Line]:
    matcher = difflib.SequenceMatcher(
        None, [_canon(x) for x in before], [_canon(x) for x in after], autojunk=False
    )
    ops = matcher.get_opcodes()
    lines: list[Line] = []
    for n, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            lines += _context(before[i1:i2], n == 0, n == len(ops) - 1, col, opts)
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for off in range(i2 - i1):
                b, a = before[i1 + off], after[j1 + off]
                lines += diff_attribute("", b, a, col, (*path, j1 + off), opts, ",")
            continue
        for i in range(i1, i2):
            lines += _entry("", before[i], col, "-", ",", opts)
        for j in range(j1, j2):
            lines += _entry("", after[j], col, "+", ",", opts)
    return lines


def _diff_text(before: str, after: str, col: int) -> list[Line]:
    """A heredoc's body diffed line by line, with a few lines of context, then ``EOT``."""
    old, new = _text_lines(before), _text_lines(after)
    inner = col + _STEP
    lines: list[Line] = []
    ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    for n, (tag, i1, i2, j1, j2) in enumerate(ops):
        if tag == "equal":
            run = old[i1:i2]
            head = 0 if n == 0 else min(_TEXT_CONTEXT, len(run))
            tail = 0 if n == len(ops) - 1 else min(_TEXT_CONTEXT, len(run) - head)
            lines += [Line(inner, "", t) for t in run[:head]]
            lines += _hidden(len(run) - head - tail, inner, "line")
            lines += [Line(inner, "", t) for t in run[len(run) - tail :]]
            continue
        lines += [Line(inner, "-", t) for t in old[i1:i2]]
        lines += [Line(inner, "+", t) for t in new[j1:j2]]
    return [*lines, Line(col, "", "EOT")]
