"""Which SSH host keys kplan trusts, and what it says when it does not.

A host's key is checked, in order, against the host's known_hosts file and
the key recorded in state for that host (kplan records the keys an operator
accepted). A key that differs from the one found is refused, always: it is
what a man-in-the-middle looks like. A key found in neither is refused with
its fingerprint shown, unless the operator passed ``-accept-new-host-keys``;
then it is accepted and recorded in state, so every later run checks it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kplan.transport.base import HostUnreachable

if TYPE_CHECKING:
    import paramiko

__all__ = ["HostKeys", "fingerprint"]


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: ``SHA256:`` and the unpadded base64 of the key's hash."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class HostKeys:
    """The keys recorded in state, the operator's choice about new ones, and a
    callback that records an accepted key (in state)."""

    def __init__(
        self,
        recorded: Mapping[str, str] | Callable[[str], str | None],
        *,
        accept_new: bool = False,
        record: Callable[[str, str], None] | None = None,
    ) -> None:
        # Keys recorded in state: a mapping, or a lookup by host name (read lazily,
        # so a run that touches two hosts of a thousand reads two keys).
        self._lookup = recorded.get if isinstance(recorded, Mapping) else recorded
        self._recorded: dict[str, str] = {}
        self._accept_new = accept_new
        self._record = record
        self._lock = threading.Lock()
        self._files: dict[str, paramiko.HostKeys] = {}

    def _known_hosts(self, path: str) -> paramiko.HostKeys:
        with self._lock:
            keys = self._files.get(path)
            if keys is None:
                import paramiko  # here: a run that reaches no SSH host never loads it

                keys = paramiko.HostKeys()
                if os.path.exists(path):
                    keys.load(path)
                self._files[path] = keys
            return keys

    def known(
        self, known_hosts: str, address: str, port: int
    ) -> tuple[str, dict[str, paramiko.PKey]]:
        """The known_hosts name of the host and its keys there, by type (maybe none)."""
        lookup = address if port == 22 else f"[{address}]:{port}"
        entry = self._known_hosts(known_hosts).lookup(lookup)
        return lookup, ({t: entry[t] for t in entry} if entry is not None else {})

    def verify(
        self, host: str, address: str, port: int, key: paramiko.PKey, known_hosts: str
    ) -> None:
        """Return when ``key`` is trusted for ``host``; raise HostUnreachable otherwise."""
        shown = f"{key.get_name()} key {fingerprint(key)}"
        lookup, entry = self.known(known_hosts, address, port)
        if entry:
            if entry.get(key.get_name()) == key:
                return
            # Known there, and this is not its key: of the same type, or of a type
            # the host was asked not to prefer — both are what an impostor does.
            raise HostUnreachable(
                host,
                f"host key changed: {address} now presents {shown}",
                f"it differs from the keys for {lookup} in {known_hosts} "
                f"({', '.join(sorted(entry))})",
            )
        with self._lock:
            recorded = self._recorded.get(host)
        if recorded is None:
            recorded = self._lookup(host)
        if recorded is not None:
            if recorded == key_line(key):
                return
            raise HostUnreachable(
                host,
                f"host key changed: {address} now presents {shown}",
                "it differs from the key recorded in state when it was accepted. "
                "kplan never accepts a changed key; if the host was rebuilt, check its "
                "new key out of band and add it to known_hosts (which is checked first).",
            )
        if self._accept_new:
            with self._lock:
                self._recorded[host] = key_line(key)
            if self._record is not None:
                self._record(host, key_line(key))
            return
        raise HostUnreachable(
            host,
            f"unknown host key: {address} presents {shown}",
            f"it is not in {known_hosts} nor recorded in state. Check the fingerprint, "
            "then run again with -accept-new-host-keys (kplan records it in state), "
            "or add the key to known_hosts.",
        )
