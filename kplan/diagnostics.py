"""Errors and warnings with source positions.

A :class:`Diagnostic` is what kplan tells a user went wrong (or may go
wrong): a one-line summary, an optional detail, and where — file, line and
column — when the problem comes from a file. Functions that check input
collect many diagnostics and return them together instead of raising on the
first. :class:`KplanError` carries diagnostics across layers that must
stop; the CLI is the one place that turns them into text and exit codes.

Imports nothing of kplan, so every module may import it.

    KplanError               any problem reported to the user (exit code 1)
     └─ StateLockedError     the state is locked by someone else
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "Diagnostic",
    "Diagnostics",
    "KplanError",
    "Severity",
    "SourcePos",
    "StateLockedError",
]


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'did you mean "X"? ' for the closest of ``choices`` to a misspelt ``word``, or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f'did you mean "{close[0]}"? ' if close else ""


@dataclass(frozen=True, slots=True, order=True)
class SourcePos:
    """A position in a source file; line and column count from 1."""

    file: str
    line: int
    col: int
    # Columns from ``col`` to the first character of the value's text: 1 when the
    # node is a quoted YAML scalar (``col`` is its opening quote), else 0.
    text_offset: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: Severity
    summary: str
    detail: str = ""
    pos: SourcePos | None = None
    # A short kebab-case code (``unknown-variable``) that tests and scripts can match.
    code: str = ""
    # For a provider's diagnostic: the attribute path it concerns; the engine places it.
    attribute: tuple[str | int, ...] = ()

    @classmethod
    def error(
        cls, summary: str, detail: str = "", pos: SourcePos | None = None, code: str = ""
    ) -> Diagnostic:
        return cls(Severity.ERROR, summary, detail, pos, code)

    @classmethod
    def warning(
        cls, summary: str, detail: str = "", pos: SourcePos | None = None, code: str = ""
    ) -> Diagnostic:
        return cls(Severity.WARNING, summary, detail, pos, code)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def with_pos(self, pos: SourcePos | None) -> Diagnostic:
        if self.pos is not None or pos is None:
            return self
        return Diagnostic(self.severity, self.summary, self.detail, pos, self.code, self.attribute)

    def format(self) -> str:
        head = "Error" if self.is_error else "Warning"
        lines = [f"{head}: {self.summary}"]
        if self.pos is not None:
            lines.append(f"  on {self.pos}")
        if self.detail:
            lines.extend("  " + d if d else "" for d in self.detail.splitlines())
        return "\n".join(lines)

    def __str__(self) -> str:
        prefix = f"{self.pos}: " if self.pos else ""
        return f"{prefix}{self.summary}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Diagnostics:
    """An ordered collection of diagnostics."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diag: Diagnostic) -> None:
        self.items.append(diag)

    def error(
        self, summary: str, detail: str = "", pos: SourcePos | None = None, code: str = ""
    ) -> None:
        self.items.append(Diagnostic.error(summary, detail, pos, code))

    def warning(
        self, summary: str, detail: str = "", pos: SourcePos | None = None, code: str = ""
    ) -> None:
        self.items.append(Diagnostic.warning(summary, detail, pos, code))

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        self.items.extend(diags)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise KplanError(self.items)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)


class KplanError(Exception):
    """One or more diagnostics that stop the current command."""

    def __init__(
        self, diagnostics: Diagnostic | str | Iterable[Diagnostic], code: str = ""
    ) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic.error(diagnostics, code=code)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class StateLockedError(KplanError):
    """The state is locked by another kplan; the message names the holder."""
