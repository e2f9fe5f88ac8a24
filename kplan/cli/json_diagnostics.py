"""Diagnostics as JSON, in Terraform's shapes, so that CI tools can annotate the line.

:func:`diagnostic_json` gives Terraform's diagnostic object::

    {"severity": "error", "summary": "...", "detail": "...",
     "range": {"filename": "main.kp.yaml",
               "start": {"line": 3, "column": 7, "byte": 41},
               "end": {"line": 3, "column": 12, "byte": 46}},
     "snippet": {"context": null, "code": "...", "start_line": 3,
                 "highlight_start_offset": 6, "highlight_end_offset": 11, "values": []},
     "code": "unknown-variable"}

``range`` and ``snippet`` only for a diagnostic that has a position (lines and
columns count from 1, ``byte`` from 0; the end is the end of the word at the
position); ``code`` is kplan's own addition. :func:`validate_document` is the
document of ``terraform validate -json``; :func:`ui_message` is one line of
Terraform's machine-readable UI (``"type": "diagnostic"``), as ``plan -json``
and ``apply -json`` write them to standard error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kplan.diagnostics import Diagnostic, SourcePos

__all__ = ["diagnostic_json", "ui_message", "validate_document"]

# A word ends at one of these (the end of a range when the diagnostic has only a start).
_WORD_END = frozenset(" \t,:{}[]#\"'")


def _lines(path: str) -> tuple[bytes, ...] | None:
    try:
        with open(path, "rb") as f:
            return tuple(f.read().splitlines(keepends=True))
    except OSError:
        return None


def _token_length(rest: str) -> int:
    """The length of the token a position points at: a ``${...}`` expression, a quoted
    string, or a word."""
    if rest.startswith("${") and "}" in rest:
        return rest.index("}") + 1
    if rest[:1] in ("'", '"') and rest[0] in rest[1:]:
        return rest.index(rest[0], 1) + 1
    n = 0
    while n < len(rest) and rest[n] not in _WORD_END:
        n += 1
    return n


def _range_and_snippet(pos: SourcePos) -> tuple[dict[str, Any], dict[str, Any] | None]:
    lines = _lines(pos.file)
    if lines is None or not 1 <= pos.line <= len(lines):
        point: dict[str, int] = {"line": pos.line, "column": pos.col}
        if lines is not None and pos.line > len(lines):  # the end of the file
            point["byte"] = sum(len(b) for b in lines)
        return {"filename": pos.file, "start": point, "end": dict(point)}, None
    raw = lines[pos.line - 1]
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    line_start = sum(len(b) for b in lines[: pos.line - 1])
    start_col = min(max(pos.col, 1), len(text) + 1)
    end_col = start_col + _token_length(text[start_col - 1 :])
    start_off = len(text[: start_col - 1].encode("utf-8"))
    end_off = len(text[: end_col - 1].encode("utf-8"))
    rng: dict[str, Any] = {
        "filename": pos.file,
        "start": {"line": pos.line, "column": start_col, "byte": line_start + start_off},
        "end": {"line": pos.line, "column": end_col, "byte": line_start + end_off},
    }
    snippet: dict[str, Any] = {
        "context": None,
        "code": text,
        "start_line": pos.line,
        "highlight_start_offset": start_off,
        "highlight_end_offset": end_off,
        "values": [],
    }
    return rng, snippet


def _is_module_file(path: str) -> bool:
    return path.endswith((".kp.yaml", ".kp.yml"))


def diagnostic_json(d: Diagnostic) -> dict[str, Any]:
    """One diagnostic in Terraform's JSON shape (see the module docstring)."""
    out: dict[str, Any] = {
        "severity": d.severity.value,
        "summary": d.summary,
        "detail": d.detail,
    }
    if d.pos is not None:
        rng, snippet = _range_and_snippet(d.pos)
        out["range"] = rng
        # The source line is quoted only from module files: a variable file's line
        # may hold a sensitive value (the human message never quotes it either).
        if snippet is not None and _is_module_file(d.pos.file):
            out["snippet"] = snippet
    if d.code:
        out["code"] = d.code
    return out


def validate_document(diags: Iterable[Diagnostic]) -> dict[str, Any]:
    """What ``kplan validate -json`` prints: the envelope of ``terraform validate -json``."""
    items = list(diags)
    errors = sum(1 for d in items if d.is_error)
    return {
        "format_version": "1.0",
        "valid": errors == 0,
        "error_count": errors,
        "warning_count": len(items) - errors,
        "diagnostics": [diagnostic_json(d) for d in items],
    }


def ui_message(d: Diagnostic) -> str:
    """One line of Terraform's machine-readable UI for a diagnostic."""
    head = "Error" if d.is_error else "Warning"
    doc = {
        "@level": d.severity.value,
        "@message": f"{head}: {d.summary}",
        "@module": "kplan.ui",
        "@timestamp": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "diagnostic": diagnostic_json(d),
        "type": "diagnostic",
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
