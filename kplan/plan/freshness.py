"""What a saved plan was computed from, and whether it still holds.

:func:`input_checksum` is the sha256 of every configuration file of the module
tree and of the variable values: a plan records it with the state's workspace
and serial, and :func:`check_fresh` refuses (KplanError, code ``stale-plan``)
a saved plan whose workspace, serial or inputs moved since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kplan.config.model import ModuleConfig
from kplan.diagnostics import Diagnostic, KplanError
from kplan.graph.builder import iter_modules
from kplan.plan.model import Plan
from kplan.values import reveal

__all__ = ["check_fresh", "input_checksum"]


def input_checksum(cfg: ModuleConfig, variables: Mapping[str, Any]) -> str:
    """sha256 of every configuration file of the module tree and the variable values."""
    h = hashlib.sha256()
    seen: set[str] = set()
    for _, mod in iter_modules(cfg):
        for path in mod.files:  # as the loader gives them: relative to the working folder
            if path in seen:
                continue
            seen.add(path)
            h.update(path.encode() + b"\0")
            h.update(Path(path).read_bytes() + b"\0")
    h.update(json.dumps(reveal(dict(variables)), sort_keys=True, default=str).encode())
    return h.hexdigest()


def check_fresh(
    plan: Plan, cfg: ModuleConfig, *, workspace: str, serial: int, planfile: str
) -> None:
    """Refuse a saved plan made for another workspace, serial or configuration."""
    why = ""
    if plan.workspace != workspace:
        why = f"it was made for workspace {plan.workspace!r}, the current one is {workspace!r}"
    elif plan.serial != serial:
        why = f"the state changed since the plan was made (serial {plan.serial} then, {serial} now)"
    elif input_checksum(cfg, plan.variables) != plan.input_checksum:
        why = "the configuration files changed since the plan was made"
    if why:
        raise KplanError(
            Diagnostic.error(
                f"saved plan {planfile} is stale",
                why + ". Run kplan plan again and review the new plan.",
                code="stale-plan",
            )
        )
