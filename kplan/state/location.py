"""Where a root module's state lives, and which workspace a run uses.

The root module's ``kplan.backend`` block, overlaid with what
``kplan init -backend-config`` saved in ``.kplan/backend.json``, names a SQLite
file (default ``.kplan/state.db``) or a PostgreSQL URL. The workspace is, first
match wins: the one a caller chose, ``KPLAN_WORKSPACE``, the first line of
``.kplan/environment``, ``default``. Problems are raised as KplanError.

Never here: a password written to a file (``init`` refuses them before).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.store import StateStore

__all__ = [
    "BACKEND_FILE",
    "backend_settings",
    "current_workspace",
    "location_of",
    "open_root_state",
    "state_location",
]

BACKEND_FILE = Path(".kplan", "backend.json")


def backend_settings(root: str, backend: Mapping[str, Any] | None) -> dict[str, Any]:
    """The backend block, overlaid with what ``kplan init -backend-config`` saved."""
    settings = dict(backend or {})
    saved = Path(root, BACKEND_FILE)
    if saved.is_file():
        try:
            settings.update(json.loads(saved.read_text(encoding="utf-8")))
        except ValueError:
            raise KplanError(f"{saved} is damaged: run kplan init -backend-config again") from None
    return settings


def location_of(backend: Mapping[str, Any], root: str) -> str:
    """A SQLite path or a PostgreSQL URL, from backend settings."""
    kind = backend.get("type", "sqlite")
    if kind == "sqlite":
        path = backend.get("path")
        if isinstance(path, str) and path:
            return str(Path(root, path))
        return str(Path(root, ".kplan", "state.db"))
    if kind in ("postgresql", "postgres", "pg"):
        url = backend.get("url")
        if not isinstance(url, str) or not url.startswith(("postgresql", "postgres:")):
            raise KplanError(
                Diagnostic.error(
                    "the postgresql backend needs a url",
                    "set kplan.backend.url: postgresql://USER@HOST:PORT/DB, or run "
                    "kplan init -backend-config url=...; give the password in "
                    "KPLAN_PG_PASSWORD, never in a file",
                    code="backend-config",
                )
            )
        return url
    raise KplanError(
        Diagnostic.error(
            f"unknown backend type {kind!r}", "expected sqlite or postgresql", code="backend-config"
        )
    )


def state_location(root: str, backend: Mapping[str, Any] | None) -> str:
    """The state of the root module in ``root`` with this backend block."""
    return location_of(backend_settings(root, backend), root)


def current_workspace(root: str, environ: Mapping[str, str], chosen: str = "") -> str:
    if chosen:
        return chosen
    env = environ.get("KPLAN_WORKSPACE")
    if env:
        return env
    marker = Path(root, ".kplan", "environment")
    if marker.is_file():
        return marker.read_text(encoding="utf-8").strip() or "default"
    return "default"


def open_root_state(
    root: str,
    backend: Mapping[str, Any] | None,
    *,
    environ: Mapping[str, str],
    workspace: str = "",
    create: bool = True,
    check_key: bool = False,
) -> StateStore:
    """Open the state of the root module in ``root``, in its current workspace
    (``check_key``: see :meth:`StateStore.open`)."""
    return StateStore.open(
        state_location(root, backend),
        workspace=current_workspace(root, environ, workspace),
        environ=environ,
        create=create,
        check_key=check_key,
    )
