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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from kplan.config.functions_io import template_line
from kplan.values import SENSITIVE_TEXT, Secret, contains_secret, reveal

__all__ = ["RenderError", "Rendered", "render", "syntax_error"]

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
