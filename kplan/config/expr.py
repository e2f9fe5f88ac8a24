"""Expressions in configuration strings: ``"${ var.release }"``, ``"http://${ local.vip }:5000"``.

A raw value (plain YAML data) may hold ``${ expr }`` in any string or map
key. :func:`evaluate` walks it and replaces each such string: a string that
is exactly one ``${...}`` gives the expression's native value (list, map,
number, bool, null); in a longer string each part is interpolated as text
(true/false, 2 for 2.0, JSON for lists and maps). ``$${`` is a literal ``${``.
:func:`references` finds the references statically (the graph's edges) and
:func:`check_syntax` reports every syntax error at once.

The syntax is Jinja2's expression syntax (``a if c else b``, ``~`` joins
strings, ``[1, 2]``, ``{"k": v}``, ``x.y``, ``x["y"]``, ``x[1:3]``); it is
parsed by Jinja2's sandboxed parser and run as closures (``expr_compile``).
Functions (``functions.py``) are the supported way to transform values;
Jinja filters and tests are rejected with a hint. UNKNOWN and Secret values
propagate (see ``expr_ops``). Never here: Python ``eval``, reading Python
attributes of values, I/O (only the file() and templatefile() functions read
files), or a Python traceback or a secret in an error message.

    KplanError
     └─ ExprError     any expression problem; carries Diagnostics with file:line:col
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kplan.config.expr_compile import Compiled, compile_source, static_reference
from kplan.config.expr_lookup import chain_text
from kplan.config.expr_ops import EvalFailure, join_text
from kplan.config.functions_base import type_name
from kplan.config.model import Positions
from kplan.diagnostics import Diagnostic, KplanError, SourcePos
from kplan.values import UNKNOWN, Path, Secret

__all__ = [
    "ExprError",
    "Reference",
    "check_syntax",
    "compile_text",
    "compile_value",
    "contains_expression",
    "escape_hint",
    "evaluate",
    "evaluate_fast",
    "parse_reference",
    "references",
]


class ExprError(KplanError):
    """An expression could not be parsed or evaluated; ``diagnostics`` say where and why."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A static reference, e.g. ``local_file.conf.sha256`` is
    ``Reference("resource", ("local_file", "conf", "sha256"))``.

    ``root`` is var, local, module, each, count, host, hosts, groups, path,
    self, or resource (then ``parts[0]`` is the type and ``parts[1]`` the
    name). ``parts`` holds every constant step after the root. ``pos`` is
    where it was written (not part of equality).
    """

    root: str
    parts: tuple[str | int, ...]
    pos: SourcePos | None = field(default=None, compare=False)

    def __str__(self) -> str:
        if self.root == "resource" and self.parts:
            return chain_text(str(self.parts[0]), self.parts[1:])
        return chain_text(self.root, self.parts)


# -- templates: a string split into literal text and ${...} parts -----------------------


@dataclass(frozen=True, slots=True)
class _Part:
    source: str  # the text between ${ and }
    offset: int  # where "${" starts in the string
    compiled: Compiled


@dataclass(frozen=True, slots=True)
class _Template:
    pieces: tuple[str | _Part, ...]
    literal: str | None = None  # the value when the string holds no expression
    native: _Part | None = None  # the one part when the string is exactly "${...}"
    error: str | None = None  # a scanning error (unterminated ${ or string)
    error_offset: int = 0


_TEMPLATES: dict[str, _Template] = {}
_MAX_CACHED = 500_000


def _expr_end(text: str, start: int) -> int:
    """Index of the "}" closing the expression that starts at ``start``; -1 if none."""
    depth, i, n = 0, start, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i += 1
            while i < n and text[i] != c:
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                return -1
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def _scan(text: str) -> _Template:
    pieces: list[str | _Part] = []
    buf: list[str] = []
    i = 0
    while True:
        j = text.find("${", i)
        if j < 0:
            buf.append(text[i:])
            break
        if j - 1 >= i and text[j - 1] == "$":
            buf.append(text[i : j - 1] + "${")
            i = j + 2
            continue
        buf.append(text[i:j])
        end = _expr_end(text, j + 2)
        if end < 0:
            msg = "unterminated expression: ${ has no closing } (or a string in it is not closed)"
            return _Template(tuple(pieces), error=msg, error_offset=j)
        if "".join(buf):
            pieces.append("".join(buf))
        buf = []
        source = text[j + 2 : end]
        pieces.append(_Part(source, j, compile_source(source)))
        i = end + 1
    rest = "".join(buf)
    if rest:
        pieces.append(rest)
    if not any(isinstance(p, _Part) for p in pieces):
        return _Template(tuple(pieces), literal=rest)
    if len(pieces) == 1 and isinstance(pieces[0], _Part):
        return _Template(tuple(pieces), native=pieces[0])
    return _Template(tuple(pieces))


def _template(text: str) -> _Template:
    t = _TEMPLATES.get(text)
    if t is None:
        if "${" not in text:
            return _Template((text,), literal=text)
        if len(_TEMPLATES) >= _MAX_CACHED:
            _TEMPLATES.clear()
        t = _TEMPLATES[text] = _scan(text)
    return t


def _pos(positions: Positions | None, path: Path, text: str, offset: int) -> SourcePos | None:
    """The position of ``text[offset]``: the node's, moved right on single-line strings."""
    if positions is None:
        return None
    base = positions.at(path)
    if offset and "\n" not in text[:offset] and tuple(path) in positions.nodes:
        return SourcePos(base.file, base.line, base.col + base.text_offset + offset)
    return base


# -- evaluation ---------------------------------------------------------------------------

_FAILED: Any = object()


# Roots whose values are the same for every instance of a block in one module instance:
# a string that reads nothing else can be evaluated once and shared by all of them.
_SHARED_ROOTS = frozenset({"var", "local", "path", "groups", "hosts", "host"})
_SHAREABLE: dict[str, bool] = {}


def _shareable(text: str) -> bool:
    found = _SHAREABLE.get(text)
    if found is None:
        if len(_SHAREABLE) >= _MAX_CACHED:
            _SHAREABLE.clear()
        refs = references(text)
        found = _SHAREABLE[text] = all(r.root in _SHARED_ROOTS for r in refs)
    return found


class _Evaluator:
    def __init__(
        self,
        scope: Mapping[str, Any],
        positions: Positions | None,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.scope, self.positions, self.shared = scope, positions, shared
        self.diags: list[Diagnostic] = []

    def fail(
        self, summary: str, code: str, path: Path, text: str, part: _Part | None, extra: int = 0
    ) -> None:
        offset = part.offset + extra if part else 0
        detail = f"in ${{{part.source}}}" if part else ""
        pos = _pos(self.positions, path, text, offset)
        self.diags.append(Diagnostic.error(summary, detail, pos, code))

    def value(self, raw: Any, path: Path) -> Any:
        kind = type(raw)
        if kind is str:
            return self.string(raw, path)
        if kind is dict or isinstance(raw, Mapping):
            return self.mapping(raw, path)
        if isinstance(raw, list | tuple):
            return [self.value(v, (*path, i)) for i, v in enumerate(raw)]
        if isinstance(raw, str):
            return self.string(str(raw), path)
        return raw

    def mapping(self, raw: Mapping[Any, Any], path: Path) -> Any:
        out: dict[Any, Any] = {}
        unknown = False
        for k, v in raw.items():
            key = k
            if type(k) is str and "${" in k:
                key = self.key(k, (*path, k))
                unknown = unknown or key is UNKNOWN
                if key in out and key is not UNKNOWN and key is not _FAILED:
                    self.fail(f'duplicate key "{key}" after evaluation', "duplicate-key",
                              (*path, k), k, None)  # fmt: skip
            out[key] = self.value(v, (*path, k))
        return UNKNOWN if unknown else out

    def key(self, text: str, path: Path) -> Any:
        errors = len(self.diags)
        key = self.string(text, path)
        if len(self.diags) > errors:
            return _FAILED
        if key is UNKNOWN:
            return key
        if type(key) in (int, float, bool):
            return join_text([key])
        if type(key) is not str:
            what = "sensitive" if type(key) is Secret else f"a {type_name(key)}"
            self.fail(f"a map key must be a string, but this one is {what}", "expression-type",
                      path, text, None)  # fmt: skip
            return _FAILED
        return key

    def string(self, text: str, path: Path) -> Any:
        t = _template(text)
        if t.literal is not None:
            return t.literal
        shared = self.shared
        if shared is not None and t.error is None and _shareable(text):
            if text in shared:
                return shared[text]
            errors = len(self.diags)
            value = self._string(t, text, path)
            if len(self.diags) == errors:
                shared[text] = value
            return value
        return self._string(t, text, path)

    def _string(self, t: _Template, text: str, path: Path) -> Any:
        if t.error is not None:
            self.diags.append(
                Diagnostic.error(t.error, "", _pos(self.positions, path, text, t.error_offset),
                                 "expression-syntax")
            )  # fmt: skip
            return None
        if t.native is not None:
            value = self.run(t.native, path, text)
            return None if value is _FAILED else value
        values = []
        for piece in t.pieces:
            if type(piece) is str:
                values.append(piece)
                continue
            assert isinstance(piece, _Part)
            value = self.run(piece, path, text)
            if value is _FAILED:
                return None
            values.append(value)
        try:
            return join_text(values)
        except EvalFailure as exc:
            self.fail(exc.summary, exc.code, path, text, _first_part(t))
            return None

    def run(self, part: _Part, path: Path, text: str) -> Any:
        c = part.compiled
        if c.fn is None:
            extra = 2 + c.error_offset
            self.fail(c.error or "invalid expression", c.error_code, path, text, part, extra)
            return _FAILED
        try:
            return c.fn(self.scope)
        except EvalFailure as exc:
            self.fail(exc.summary, exc.code, path, text, part)
        except RecursionError:
            self.fail("expression or value nested too deeply", "expression-type", path, text, part)
        except Exception as exc:  # a bug of ours: report it without internals or values
            self.fail(f"internal error while evaluating ({type(exc).__name__})",
                      "internal-error", path, text, part)  # fmt: skip
        return _FAILED


def _first_part(t: _Template) -> _Part | None:
    return next((p for p in t.pieces if isinstance(p, _Part)), None)


def evaluate(
    raw: Any,
    scope: Mapping[str, Any],
    positions: Positions | None = None,
    *,
    shared: dict[str, Any] | None = None,
) -> Any:
    """Evaluate every ``${...}`` in ``raw``; raise :class:`ExprError` with all problems found.

    ``scope`` maps var, local, module, each, count, host, hosts, groups, path
    and each resource type (type → {name → value}) to their values. ``shared``
    is a cache for the instances of one block: strings that read only var,
    local, path, groups, hosts and host are evaluated once for all of them.
    """
    ev = _Evaluator(scope, positions, shared)
    result = ev.value(raw, ())
    if ev.diags:
        raise ExprError(ev.diags)
    return result


# -- compiled evaluation -------------------------------------------------------------------
#
# evaluate() walks the raw value and, for each string, looks up its template, asks
# whether it is shareable and runs its parts: a dozen calls per string, for every
# instance of a block. compile_value() does that walk once per raw value and returns
# one closure with the same result: the expressions' own closures (expr_compile)
# called from map and list displays. It has no error handling of its own: it raises
# (any exception) wherever evaluate() would report a problem, and the caller then
# runs evaluate() for the diagnostics (evaluate_fast). A value with a syntax error
# is not compiled at all (None).

Fast = Callable[[Mapping[str, Any]], Any]
_MISSING: Any = object()


class _Static(Exception):
    """A syntax error: the value is only ever evaluated by evaluate()."""


class _Problem(Exception):
    """evaluate() would report a problem here (it says which)."""


def compile_value(raw: Any, shared: dict[str, Any] | None = None) -> Fast | None:
    """A closure ``fast(scope)`` giving what ``evaluate(raw, scope, shared=shared)``
    gives when that succeeds; it raises otherwise. None when ``raw`` has a syntax error.

    ``raw`` is read once, now: it must not change afterwards (configuration never
    does). ``shared`` is bound now too: one closure serves the instances of one block.
    """
    try:
        return _compile_node(raw, shared)
    except (_Static, RecursionError):
        return None


_FAST_TEXT: dict[str, Fast | None] = {}


def compile_text(text: str) -> Fast | None:
    """compile_value for one string (no shared values), cached by its text."""
    try:
        return _FAST_TEXT[text]
    except KeyError:
        if len(_FAST_TEXT) >= _MAX_CACHED:
            _FAST_TEXT.clear()
        fast = _FAST_TEXT[text] = compile_value(text)
        return fast


def evaluate_fast(
    fast: Fast | None,
    raw: Any,
    scope: Mapping[str, Any],
    positions: Positions | None = None,
    *,
    shared: dict[str, Any] | None = None,
) -> Any:
    """``evaluate(raw, ...)`` through ``fast = compile_value(raw, shared)``: the same
    value, and on any problem the same ExprError (evaluate() runs again to report it)."""
    if fast is not None:
        try:
            return fast(scope)
        except Exception:  # evaluate() below says what went wrong
            pass
    return evaluate(raw, scope, positions, shared=shared)


def _compile_node(raw: Any, shared: dict[str, Any] | None) -> Fast:
    kind = type(raw)
    if kind is str:
        return _compile_string(raw, shared)
    if kind is dict or isinstance(raw, Mapping):
        return _compile_mapping(raw, shared)
    if isinstance(raw, list | tuple):
        items = tuple(_compile_node(v, shared) for v in raw)
        return lambda s: [f(s) for f in items]
    if isinstance(raw, str):
        return _compile_string(str(raw), shared)
    return lambda s: raw


def _compile_mapping(raw: Mapping[Any, Any], shared: dict[str, Any] | None) -> Fast:
    keyed: list[tuple[Any, Fast | None, Fast]] = []
    for k, v in raw.items():
        key_fn = _compile_string(k, shared) if type(k) is str and "${" in k else None
        keyed.append((k, key_fn, _compile_node(v, shared)))
    if all(key_fn is None for _, key_fn, _ in keyed):
        items = tuple((k, f) for k, _, f in keyed)
        return lambda s: {k: f(s) for k, f in items}
    triples = tuple(keyed)

    def run(s: Mapping[str, Any]) -> Any:  # as _Evaluator.mapping and .key
        out: dict[Any, Any] = {}
        unknown = False
        for k, key_fn, f in triples:
            key = k
            if key_fn is not None:
                key = key_fn(s)
                if key is UNKNOWN:
                    unknown = True
                elif type(key) in (int, float, bool):
                    key = join_text([key])
                elif type(key) is not str:
                    raise _Problem("a map key must be a string")
                if key in out and key is not UNKNOWN:
                    raise _Problem("duplicate key")
            out[key] = f(s)
        return UNKNOWN if unknown else out

    return run


def _compile_string(text: str, shared: dict[str, Any] | None) -> Fast:
    t = _template(text)
    if t.literal is not None:
        literal = t.literal
        return lambda s: literal
    if t.error is not None:
        raise _Static
    fns: list[Fast] = []
    for piece in t.pieces:
        if type(piece) is not str:
            assert isinstance(piece, _Part)
            if piece.compiled.fn is None:
                raise _Static
            fns.append(piece.compiled.fn)
    inner = fns[0] if t.native is not None else _joined(t.pieces, fns)
    if shared is None or not _shareable(text):
        return inner

    def shared_value(s: Mapping[str, Any]) -> Any:  # as _Evaluator.string
        value = shared.get(text, _MISSING)
        if value is _MISSING:
            value = shared[text] = inner(s)
        return value

    return shared_value


def _joined(pieces: tuple[str | _Part, ...], fns: list[Fast]) -> Fast:
    """A template with text around its expressions: the parts joined as _string does."""
    shape = tuple(type(p) is str for p in pieces)
    if shape == (True, False):  # "http://${x}"
        a, f = pieces[0], fns[0]
        return lambda s: join_text([a, f(s)])
    if shape == (False, True):  # "${x}.example.org"
        f, b = fns[0], pieces[1]
        return lambda s: join_text([f(s), b])
    if shape == (True, False, True):  # "http://${x}:80/"
        a, f, b = pieces[0], fns[0], pieces[2]
        return lambda s: join_text([a, f(s), b])
    calls = iter(fns)
    parts = tuple(p if type(p) is str else next(calls) for p in pieces)
    return lambda s: join_text([p if type(p) is str else p(s) for p in parts])  # type: ignore[operator]


# -- static analysis ---------------------------------------------------------------------


def _strings(raw: Any, path: Path) -> list[tuple[str, Path]]:
    """Every string (and string map key) in raw, with its path, in document order."""
    out: list[tuple[str, Path]] = []
    stack: list[tuple[Any, Path]] = [(raw, path)]
    while stack:
        value, p = stack.pop()
        if isinstance(value, str):
            out.append((value, p))
        elif isinstance(value, Mapping):
            for k, v in reversed(list(value.items())):
                stack.append((v, (*p, k)))
                if isinstance(k, str):
                    stack.append((k, (*p, k)))
        elif isinstance(value, list | tuple):
            stack.extend((v, (*p, i)) for i, v in reversed(list(enumerate(value))))
    return out


def references(raw: Any, positions: Positions | None = None) -> list[Reference]:
    """The references in ``raw``, in document order; never raises (syntax errors are skipped)."""
    out: list[Reference] = []
    try:
        for text, path in _strings(raw, ()):
            if "${" not in text:
                continue
            for piece in _template(text).pieces:
                if isinstance(piece, _Part) and piece.compiled.refs:
                    pos = _pos(positions, path, text, piece.offset)
                    out.extend(Reference(r, parts, pos) for r, parts in piece.compiled.refs)
    except Exception:  # a broken value has fewer references; evaluate() reports why
        pass
    return out


def check_syntax(raw: Any, positions: Positions | None = None) -> list[Diagnostic]:
    """Every syntax error in ``raw`` (code "expression-syntax" or "unknown-function")."""
    diags: list[Diagnostic] = []
    for text, path in _strings(raw, ()):
        if "${" not in text:
            continue
        t = _template(text)
        for piece in t.pieces:
            if isinstance(piece, _Part) and piece.compiled.error is not None:
                c = piece.compiled
                assert c.error is not None
                pos = _pos(positions, path, text, piece.offset + 2 + c.error_offset)
                detail = f"in ${{{piece.source}}}"
                if _SHELL_EXPANSION.match(piece.source):
                    detail += "\n" + escape_hint(piece.source)
                diags.append(Diagnostic.error(c.error, detail, pos, c.error_code))
        if t.error is not None:
            pos = _pos(positions, path, text, t.error_offset)
            diags.append(Diagnostic.error(t.error, "", pos, "expression-syntax"))
    return diags


# ${NAME:-x}, ${#NAME}, ${!NAME}, ${NAME%.*}, ${NAME//a/b}, ${NAME^^}, ${ARR[@]}: shell, not kplan
_SHELL_EXPANSION = re.compile(r"[#!]?[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?([:#%/^,@?=+-]|\[|$)")


def escape_hint(source: str) -> str:
    """The hint for a ``${source}`` that was meant for a shell: write ``$${`` to keep it."""
    return (
        f"if ${{{source}}} is for a shell (a command, a script), write $${{{source}}}: "
        f"$${{ is a literal ${{ and kplan leaves what follows alone"
    )


def contains_expression(raw: Any) -> bool:
    """Whether any string in ``raw`` holds a ``${...}`` (escaped ``$${`` does not count)."""
    return any("${" in text and _template(text).literal is None for text, _ in _strings(raw, ()))


def parse_reference(text: str, pos: SourcePos | None = None) -> Reference:
    """A reference written without ``${}`` (``depends_on``, ``restart_on``): "local_file.conf"."""
    ref = static_reference(text)
    if ref is None:
        raise ExprError(
            Diagnostic.error(
                f'"{text}" is not a reference',
                "expected one like local_file.conf, module.db.endpoint or var.name",
                pos,
                "invalid-reference",
            )
        )
    return Reference(ref[0], ref[1], pos)
