"""Small helpers every provider uses: attribute diagnostics, secrets, modes, durations."""

from __future__ import annotations

import re
import secrets
from typing import Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_api import ResourceSchema
from kplan.transport.base import UNREACHABLE_CODE, TransportError
from kplan.values import UNKNOWN, Secret, reveal

__all__ = [
    "MODE_RE",
    "DurationError",
    "attr_error",
    "attr_warning",
    "check_mode",
    "is_known",
    "keep_secret",
    "missing_host",
    "new_id",
    "parse_duration",
    "plain",
    "transport_diag",
]


def attr_error(attribute: str, summary: str, detail: str = "", code: str = "") -> Diagnostic:
    """An error about one attribute (the engine places it in the file)."""
    return Diagnostic(Severity.ERROR, summary, detail, None, code, (attribute,))


def attr_warning(attribute: str, summary: str, detail: str = "", code: str = "") -> Diagnostic:
    """A warning about one attribute (the engine places it in the file)."""
    return Diagnostic(Severity.WARNING, summary, detail, None, code, (attribute,))


def plain(value: Any) -> Any:
    """``value`` with every Secret unwrapped, for checks and for writing; never for state."""
    return reveal(value)


def is_known(value: Any) -> bool:
    """True unless ``value`` is UNKNOWN (or a Secret wrapping UNKNOWN)."""
    return plain(value) is not UNKNOWN


def keep_secret(value: Any, like: Any) -> Any:
    """``value`` wrapped in Secret when ``like`` is one (and value is not already)."""
    if isinstance(like, Secret) and not isinstance(value, Secret) and value is not None:
        return Secret(value)
    return value


def new_id() -> str:
    """A random identifier: 16 hex digits."""
    return secrets.token_hex(8)


def missing_host(type_name: str, address: str = "") -> Diagnostic:
    """The error for an instance of a hosted type without a ``host``."""
    where = f"{address}: " if address else ""
    return Diagnostic.error(
        f"{where}a {type_name} needs a host",
        "set the resource's `host:` key to a host of the inventory, e.g. host: ${each.key}",
        code="missing-host",
    )


def transport_diag(exc: TransportError, attribute: str = "") -> Diagnostic:
    """A transport failure as a diagnostic; an unreachable host keeps its code and no path."""
    d = exc.diagnostics[0] if exc.diagnostics else Diagnostic.error(str(exc))
    path: tuple[str | int, ...] = (attribute,) if attribute else ()
    if d.code == UNREACHABLE_CODE:
        path = ()
    return Diagnostic(Severity.ERROR, d.summary, d.detail, None, d.code, path)


def missing_attribute_paths(schema: ResourceSchema, diags: list[Diagnostic]) -> list[Diagnostic]:
    """validate_against_schema's missing-attribute errors carry no attribute path: add it."""
    out = []
    for d in diags:
        if d.code == "missing-attribute" and not d.attribute:
            name = d.summary.split('"')[1] if d.summary.count('"') >= 2 else ""
            if name in schema.attributes:
                d = Diagnostic(d.severity, d.summary, d.detail, d.pos, d.code, (name,))
        out.append(d)
    return out


# Permission bits as an octal string: "644", "0640", "2775".
MODE_RE = re.compile(r"[0-7]{3,4}")


def check_mode(mode: Any) -> Diagnostic | None:
    """An error on ``mode`` unless it is an octal permission string (or not a str/number)."""
    mode = plain(mode)
    if isinstance(mode, int | float) and not isinstance(mode, bool):
        return attr_error(
            "mode",
            'mode must be an octal string such as "0640"',
            f"got the number {mode}; YAML reads an unquoted 0640 as the number 416: quote it",
            code="invalid-mode",
        )
    if isinstance(mode, str) and not MODE_RE.fullmatch(mode):
        return attr_error(
            "mode",
            f'mode "{mode}" is not an octal permission string',
            'use three or four digits 0-7, e.g. "0644" or "0750"',
            code="invalid-mode",
        )
    return None


_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


class DurationError(ValueError):
    """A duration string that does not parse."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``: one or more number+unit parts (``1m30s``, ``500ms``), or ``"0"``."""
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(text):
        raise DurationError(f'"{text}" is not a duration')
    return total
