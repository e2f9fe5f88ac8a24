"""The connections of one run to the root module's hosts, and the providers' view of them.

:func:`connect_inventory` turns the inventory into :class:`HostSpec` (key and
known_hosts paths taken from the root module's folder), checks host keys
against known_hosts and the keys recorded in the state's meta (an accepted new
key is recorded there), hands every provider the inventory and ``connect``,
and closes every session opened when the run ends.

Never here: a host key accepted without ``accept_new``, or a changed one at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from kplan.provider_api import ConfigureRequest, HostInfo
from kplan.transport.hostkeys import HostKeys
from kplan.transport.pool import HostSpec, Transports

__all__ = ["HOST_KEY_META", "InventoryHost", "KeyRecords", "connect_inventory"]

# State meta key of an SSH host key accepted with -accept-new-host-keys.
HOST_KEY_META = "hostkey:"


class InventoryHost(Protocol):
    """A host of the root module (kplan.config.model.Host), as far as transport reads it."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def connection(self) -> str: ...
    @property
    def user(self) -> str | None: ...
    @property
    def port(self) -> int: ...
    @property
    def groups(self) -> tuple[str, ...]: ...
    @property
    def vars(self) -> Mapping[str, Any]: ...
    @property
    def ssh_key(self) -> str | None: ...
    @property
    def known_hosts(self) -> str | None: ...


class KeyRecords(Protocol):
    """Where accepted host keys are kept: the state's meta (StateStore)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


@contextmanager
def connect_inventory(
    hosts: Iterable[InventoryHost],
    *,
    root: str,
    records: KeyRecords,
    accept_new_host_keys: bool,
    configure: Callable[[ConfigureRequest], None],
) -> Iterator[Transports]:
    """Give providers (through ``configure``) the inventory and ``connect``; every
    session opened is closed when the block ends."""
    hosts = list(hosts)
    keys = HostKeys(
        lambda host: records.get_meta(HOST_KEY_META + host),
        accept_new=accept_new_host_keys,
        record=lambda host, key: records.set_meta(HOST_KEY_META + host, key),
    )
    transports = Transports(
        [
            HostSpec(
                name=h.name,
                address=h.address,
                connection=h.connection,
                user=h.user,
                port=h.port,
                ssh_key=_from_root(root, h.ssh_key),
                known_hosts=_from_root(root, h.known_hosts),
            )
            for h in hosts
        ],
        keys,
    )
    infos = {h.name: HostInfo(h.name, h.address, h.connection, h.groups, h.vars) for h in hosts}
    try:
        configure(ConfigureRequest(hosts=infos, connect=transports.connect))
        yield transports
    finally:
        transports.close()


def _from_root(root: str, path: str | None) -> str | None:
    if not path:
        return None
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.join(root, path)
