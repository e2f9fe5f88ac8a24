"""The one error type of ``kplan lab``: a message for the operator, no traceback."""

from __future__ import annotations

__all__ = ["LabError"]


class LabError(Exception):
    """Something the operator must fix; the CLI prints it and exits 1."""
