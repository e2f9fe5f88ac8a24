"""The connections of one run: one per host, opened on first use, all closed at the end."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kplan.transport.base import Connection, HostUnreachable, close_quietly
from kplan.transport.hostkeys import HostKeys
from kplan.transport.local import LocalConnection

__all__ = ["HostSpec", "Transports"]


@dataclass(frozen=True, slots=True)
class HostSpec:
    """How to reach one host (from the root module's ``hosts:``)."""

    name: str
    address: str
    connection: str = "ssh"
    user: str | None = None
    port: int = 22
    ssh_key: str | None = None
    known_hosts: str | None = None


class Transports:
    def __init__(self, hosts: Iterable[HostSpec], host_keys: HostKeys) -> None:
        self._hosts: Mapping[str, HostSpec] = {h.name: h for h in hosts}
        self._host_keys = host_keys
        self._open: dict[str, Connection] = {}
        self._lock = threading.Lock()

    def connect(self, name: str) -> Connection:
        """The connection to host ``name``; nothing touches the network until it is used."""
        with self._lock:
            conn = self._open.get(name)
            if conn is not None:
                return conn
            spec = self._hosts.get(name)
            if spec is None:
                raise HostUnreachable(
                    name,
                    "not in the inventory",
                    "the state has resources on this host, but the root module's hosts: "
                    "does not declare it; add it back to destroy them there, or "
                    "`kplan state rm` them",
                )
            conn = self._make(spec)
            self._open[name] = conn
            return conn

    def _make(self, spec: HostSpec) -> Connection:
        if spec.connection == "local":
            return LocalConnection(spec.name)
        # Imported on the first SSH host: paramiko costs a start-up that plans which
        # reach no host (-refresh=false, nothing to apply there) should not pay.
        from kplan.transport.ssh import SSHConnection

        return SSHConnection(
            spec.name,
            spec.address,
            port=spec.port,
            user=spec.user,
            key_filename=_expand(spec.ssh_key),
            known_hosts=_expand(spec.known_hosts),
            host_keys=self._host_keys,
        )

    def close(self) -> None:
        with self._lock:
            conns = list(self._open.values())
            self._open.clear()
        if not conns:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(conns))) as pool:
            list(pool.map(close_quietly, conns))


def _expand(path: str | None) -> str | None:
    return os.path.expanduser(path) if path else None
