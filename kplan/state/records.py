"""The values a state store hands out: resource records and history entries.

Both are frozen: a caller changes the state through the store, never by
mutating what it read. Attributes in a record are decoded (sensitive values
are :class:`~kplan.values.Secret`), never encrypted tokens.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kplan.addrs import Key, ResourceAddr, parse_resource

__all__ = [
    "OUTCOMES",
    "HistoryEntry",
    "ResourceRecord",
    "current_user",
    "machine_name",
    "pid_alive",
]

# A run's outcome: "running" until finish_run; "interrupted" when its process is gone.
OUTCOMES: Final = ("running", "success", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """One resource instance as recorded in the state."""

    address: str
    module: str
    type: str
    name: str
    index_key: Key
    provider: str
    host: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()

    @classmethod
    def from_addr(
        cls,
        addr: ResourceAddr | str,
        *,
        provider: str,
        attributes: dict[str, Any] | None = None,
        dependencies: tuple[str, ...] = (),
        host: str | None = None,
    ) -> ResourceRecord:
        """A record whose address fields are taken from one address."""
        if isinstance(addr, str):
            addr = parse_resource(addr)
        return cls(
            address=str(addr),
            module=str(addr.module),
            type=addr.type,
            name=addr.name,
            index_key=addr.key,
            provider=provider,
            host=host,
            attributes=dict(attributes or {}),
            dependencies=tuple(dependencies),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One run (apply, destroy, import...) in the append-only history."""

    serial: int
    user: str
    host: str  # the machine kplan ran on
    started_at: datetime
    finished_at: datetime | None
    operation: str
    summary: str
    outcome: str
    pid: int = 0
    # The state serial when the run ended (None while running, or from before kplan kept it).
    state_serial: int | None = None


def as_utc(value: datetime) -> datetime:
    """SQLite drops the zone of a stored time; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or f"uid{os.getuid()}"


def machine_name() -> str:
    return socket.gethostname() or "localhost"


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine is alive (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    state = stat.rsplit(")", 1)[-1].split()
    return not state or state[0] not in ("Z", "X")
