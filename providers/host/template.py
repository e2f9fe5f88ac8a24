"""Render a ``host_file`` template: Jinja2 in the sandbox, undefined names are errors.

The template is source text (usually ``${file("keystone.conf.j2")}``); it is
rendered at plan time, so the plan shows the file as it will be written.
Secrets among ``vars`` are revealed only for the real rendering; a second
rendering with every secret replaced by ``(sensitive)`` gives the text a
plan may show. That masked text never saw a secret, so nothing derived from
one (a length, a slice, a comparison) can leak through it. An error names
the template line; when a secret was among the inputs its message is
replaced by one that cannot hold the value.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from kplan.config.functions_io import template_line
from kplan.values import SENSITIVE_TEXT, UNKNOWN, Secret, contains_secret, reveal

__all__ = [
    "RenderError",
    "Rendered",
    "dry_render",
    "mask_like",
    "render",
    "syntax_error",
    "undefined_name",
]

_NAME = "<template>"
# The one error message that holds only a name from the template's source text.
_UNDEFINED_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


class RenderError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        self.message = message
        self.line = line
        super().__init__(message)

    def text(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.message}"


@dataclass(frozen=True, slots=True)
class Rendered:
    #: The text to write; a Secret when any input was one.
    content: Any
    #: The text with every secret input masked; None when nothing is secret, or when the
    #: masked rendering itself failed (a filter that cannot take the placeholder).
    masked: str | None


_ENV = SandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def syntax_error(source: str) -> RenderError | None:
    """The template's syntax error, if any (no rendering)."""
    try:
        _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        return RenderError(f"syntax error: {exc.message}", exc.lineno)
    return None


class _Indeterminate(Exception):
    """The dry rendering reached a choice that depends on a value not known yet."""


class _Placeholder:
    """A value known only later, in a dry rendering: any operation gives another one.

    A choice made on it (``if``, a loop over it, a comparison's truth) stops the
    rendering: what follows may or may not be rendered once the value is known.
    """

    def __getattr__(self, name: str) -> _Placeholder:
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> _Placeholder:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Placeholder:
        return self

    def _op(self, *other: Any) -> _Placeholder:
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _op
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _op
    __pow__ = __rpow__ = __neg__ = __pos__ = __lt__ = __le__ = __gt__ = __ge__ = _op
    __eq__ = __ne__ = _op  # type: ignore[assignment]
    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        raise _Indeterminate

    def __iter__(self) -> Any:
        raise _Indeterminate

    def __len__(self) -> int:
        raise _Indeterminate

    def __contains__(self, item: Any) -> bool:
        raise _Indeterminate

    def __str__(self) -> str:
        return ""

    def __int__(self) -> int:
        return 0

    def __float__(self) -> float:
        return 0.0


_PLACEHOLDER = _Placeholder()


def _placeholders(value: Any) -> Any:
    if value is UNKNOWN or isinstance(value, Secret):
        return _PLACEHOLDER
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_placeholders(v) for v in value]
    return value


def undefined_name(source: str, variables: Mapping[str, Any]) -> RenderError | None:
    """A name the template uses that ``variables`` lacks, found before all values are known.

    The template is rendered with each unknown (or secret) value replaced by a
    placeholder; the rendering stops at the first choice that depends on one, so
    only names that the real rendering would certainly miss are reported.
    """
    try:
        _compile(source).render(_placeholders(dict(variables)))
    except jinja2.UndefinedError as exc:
        m = _UNDEFINED_NAME.fullmatch(str(exc))
        if m is not None and m[1] not in variables:
            return RenderError(str(exc), template_line(exc, _NAME))
    except Exception:  # a placeholder in a filter, a choice on one: no verdict
        pass
    return None


def dry_render(source: str, variables: Mapping[str, Any]) -> str | None:
    """The template with each unknown or secret value rendered as ``""``; None when the
    text depends on one of them (a choice, a loop) or the rendering fails."""
    try:
        return _compile(source).render(_placeholders(dict(variables)))
    except Exception:  # a choice on a placeholder, an undefined name: no text
        return None


def _render(source: str, variables: Mapping[str, Any], sensitive: bool) -> str:
    try:
        return _compile(source).render(dict(variables))
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"syntax error: {exc.message}", exc.lineno) from None
    except RecursionError:
        raise RenderError("recursion too deep", None) from None
    except Exception as exc:  # an undefined name, a sandbox refusal, int("x") in a filter
        line = template_line(exc, _NAME)
        if sensitive:
            msg = f"{type(exc).__name__} (the message is hidden: the inputs are sensitive)"
            m = _UNDEFINED_NAME.fullmatch(str(exc))
            if m is not None and re.search(rf"\b{m[1]}\b", source):
                msg = str(exc)  # a name written in the template, never a value
        else:
            msg = (
                str(exc)
                if isinstance(exc, jinja2.TemplateError)
                else f"{type(exc).__name__}: {exc}"
            )
        raise RenderError(msg, line) from None


def _mask(value: Any) -> Any:
    if isinstance(value, Secret):
        return SENSITIVE_TEXT
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def render(source: Any, variables: Mapping[str, Any] | None) -> Rendered:
    """Render ``source`` with ``variables``; raises :class:`RenderError`."""
    variables = variables or {}
    secret_source = isinstance(source, Secret)
    secret_vars = contains_secret(variables)
    text = _render(reveal(source), reveal(variables), secret_source or secret_vars)
    if not (secret_source or secret_vars):
        return Rendered(text, None)
    masked: str | None = None
    if not secret_source:
        try:
            masked = _render(source, _mask(variables), True)
        except RenderError:
            masked = None
    return Rendered(Secret(text), masked)


def mask_like(text: str, real: str, masked: str, known: Iterable[str] = ()) -> str | None:
    """``text`` (a file as found on the host) masked the way ``masked`` masks ``real``.

    ``real`` is the rendering that was written and ``masked`` the same rendering with
    every secret shown as ``(sensitive)``. A line of ``text`` that is a line of
    ``real`` shows as its masked line; a line that fits a secret line's text around
    its secrets (the secret itself was changed) shows as that masked line; in every
    other line each secret of ``real`` is masked. None when the secrets cannot be
    told apart line by line (a secret with a newline, or a filter that changed the
    placeholder): then nothing is shown. ``known`` are secret texts known for sure
    (the template's secret inputs): masked in every line, whatever was inferred.
    """
    real_lines, masked_lines = real.splitlines(True), masked.splitlines(True)
    if len(real_lines) != len(masked_lines):
        return None
    exact: dict[str, str] = {}
    slots: list[tuple[re.Pattern[str], str]] = []
    secrets: set[str] = {k for k in known if k}
    for r, m in zip(real_lines, masked_lines, strict=True):
        exact[r] = m
        if r == m:
            continue
        parts = m.split(SENSITIVE_TEXT)
        slot = re.compile("(.*?)".join(re.escape(p) for p in parts), re.DOTALL)
        found = slot.fullmatch(r) if len(parts) > 1 else None
        if found is None:
            return None
        slots.append((slot, m))
        secrets.update(s for s in found.groups() if s)
    longest_first = sorted(secrets, key=len, reverse=True)
    out: list[str] = []
    for line in text.splitlines(True):
        shown = exact.get(line)
        if shown is None:
            shown = next((m for slot, m in slots if slot.fullmatch(line)), None)
        if shown is None:
            shown = line
            for secret in longest_first:
                shown = shown.replace(secret, SENSITIVE_TEXT)
        for secret in longest_first:  # never, whatever the line matched
            if secret in shown:
                shown = shown.replace(secret, SENSITIVE_TEXT)
        out.append(shown)
    return "".join(out)
