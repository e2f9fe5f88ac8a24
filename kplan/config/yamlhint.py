"""Better errors for YAML that breaks on an unquoted ``${...}``.

HCL users write ``inputs: {host: ${each.key}}``; YAML reads the ``{`` of
``${`` as a nested flow mapping and libyaml says "did not find expected ','
or '}'". :func:`unquoted_expression` looks at the lines around a YAML
syntax error and, when an unquoted value holding ``${`` is what broke it,
returns a diagnostic that says to quote it and shows the corrected line.
Otherwise it returns None and the caller keeps libyaml's message.

Only a hint: it never changes what is parsed, and it scans just the lines
from where the flow collection (or the line) started to the error.
"""

from __future__ import annotations

import yaml

from kplan.diagnostics import Diagnostic, SourcePos

__all__ = ["comment_in_expression", "unclosed_expression", "unquoted_expression"]

_SPACE = " \t\r\n"
_FLOW = ",[]{}"

_WHY = {
    "{": "inside {...}, YAML reads the { of an unquoted ${ as a nested mapping",
    "[": "inside [...], YAML reads the { of an unquoted ${ as a mapping",
    "": "YAML ends an unquoted value at ': ' or ' #', even inside ${...}",
}
_WHAT = {
    "{": "a ${...} value inside a YAML flow mapping {...} must be quoted",
    "[": "a ${...} item inside a YAML flow sequence [...] must be quoted",
    "": "a value holding ${...} must be quoted here",
}


def _expr_end(text: str, start: int) -> int:
    """Index just after the "}" closing the ``${`` at ``start``; -1 if it is not closed."""
    depth, i, n = 0, start + 2, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i += 1
            while i < n and text[i] != c and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i + 1
            depth -= 1
        elif c == "\n":
            return -1
        i += 1
    return -1


def _plain_end(text: str, i: int, flow: bool) -> int:
    """Where the plain scalar starting at ``i`` ends, taking ``${...}`` as one piece."""
    n = len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else "\n"
        if text.startswith("${", i):
            end = _expr_end(text, i)
            if end < 0:
                return text.find("\n", i) if "\n" in text[i:] else n
            i = end
            continue
        if c == "\n" or (c == "#" and text[i - 1] in _SPACE):
            return i
        if c == ":" and (nxt in _SPACE or (flow and nxt in _FLOW)):
            return i
        if flow and c in _FLOW:
            return i
        i += 1
    return n


def _quoted_end(text: str, i: int) -> int:
    q, n = text[i], len(text)
    i += 1
    while i < n:
        if q == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == q:
            if q == "'" and i + 1 < n and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _quote(value: str) -> str:
    if '"' not in value and "\\" not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fixes(text: str) -> list[tuple[int, int, str, str]]:
    """Each unquoted scalar holding ``${``: (start, end, quoted, innermost flow bracket or "")."""
    out: list[tuple[int, int, str, str]] = []
    brackets: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else "\n"
        if c in _SPACE:
            i += 1
        elif c == "#" and (i == 0 or text[i - 1] in _SPACE):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            i = _quoted_end(text, i)
        elif c in "{[":
            brackets.append(c)
            i += 1
        elif c in "}]":
            if brackets:
                brackets.pop()
            i += 1
        elif (c == "," and brackets) or (
            c in "-?:" and (nxt in _SPACE or (brackets and nxt in _FLOW))
        ):
            i += 1  # an indicator: item separator, sequence entry, key or value
        elif c in "|>" and not brackets:
            break  # a block scalar: its text is not YAML syntax
        elif c in "&*!":
            while i < n and text[i] not in _SPACE and not (brackets and text[i] in _FLOW):
                i += 1
        else:
            end = _plain_end(text, i, bool(brackets))
            value = text[i:end].rstrip(" \t")
            if "${" in value:
                out.append((i, i + len(value), _quote(value), brackets[-1] if brackets else ""))
            i = max(end, i + 1)
    return out


_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _mends(lines: list[str], line: int, fixed: str) -> bool:
    """Whether the file with ``fixed`` in place of ``line`` gets past that line."""
    try:
        for _ in yaml.parse("\n".join([*lines[:line], fixed, *lines[line + 1 :]]), _Parser):
            pass
    except yaml.MarkedYAMLError as exc:
        return exc.problem_mark is not None and exc.problem_mark.line > line
    except yaml.YAMLError:
        return False
    return True


def unquoted_expression(
    file: str, text: str, problem: str, line: int, col: int, start_line: int
) -> Diagnostic | None:
    """A diagnostic for a YAML error at ``line``:``col`` (from 0) caused by an unquoted ``${``.

    ``start_line`` is where the flow collection the error is in started (or ``line``).
    """
    lines = text.split("\n")
    if not 0 <= start_line <= line < len(lines):
        return None
    base = sum(len(x) + 1 for x in lines[:start_line])
    head = base + sum(len(x) + 1 for x in lines[start_line:line])
    fixes = [f for f in _fixes("\n".join(lines[start_line : line + 1])) if base + f[0] >= head]
    if not fixes:
        return None
    at = [f for f in fixes if base + f[0] - head <= col] or fixes
    start, _, _, bracket = at[-1]
    source = lines[line]
    fixed = source
    for s, e, quoted, _ in reversed(fixes):
        fixed = fixed[: base + s - head] + quoted + fixed[base + e - head :]
    if not _mends(lines, line, fixed):
        return None  # quoting alone would not mend this line: keep libyaml's message
    detail = f"{_WHY[bracket]} (YAML says: {problem}).\nQuote it:\n    {fixed.strip()}"
    pos = SourcePos(file, line + 1, base + start - head + 1)
    return Diagnostic.error(_WHAT[bracket], detail, pos, "yaml-unquoted-expression")


def unclosed_expression(value: str) -> bool:
    """Whether some ``${`` in ``value`` has no closing ``}``."""
    i = value.find("${")
    while i >= 0:
        end = _expr_end(value, i)
        if end < 0:
            return True
        i = value.find("${", end)
    return False


def comment_in_expression(
    file: str, lines: list[str], value: str, line: int, col: int
) -> Diagnostic | None:
    """A diagnostic for an unquoted value at ``line``:``col`` (from 0) that a ``#`` cut short.

    YAML parses ``a: ${ "x #y" }`` without error: `` #y" }`` is a comment, and the
    value, ``${ "x``, an expression that does not end. None when that is not what
    happened, or when quoting the value would not mend it.
    """
    if "${" not in value or not unclosed_expression(value) or not 0 <= line < len(lines):
        return None
    source = lines[line]
    fixes = [f for f in _fixes(source) if f[0] == col]
    if not fixes or "#" not in source[col:]:
        return None
    start, end, quoted, bracket = fixes[0]
    fixed = source[:start] + quoted + source[end:]
    if not _mends(lines, line, fixed):
        return None
    detail = f"{_WHY[bracket]}: here a # started a comment.\nQuote it:\n    {fixed.strip()}"
    pos = SourcePos(file, line + 1, start + 1)
    return Diagnostic.error(_WHAT[bracket], detail, pos, "yaml-unquoted-expression")
