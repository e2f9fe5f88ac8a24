"""Transport to hosts: one SSH session per host, or ``connection: local``.

Providers see only :class:`Connection` (kplan.transport.base); the engine
builds one :class:`Transports` per run and closes it at the end
(``session.connect_inventory``: the inventory, host keys recorded in state, and
the providers' ``connect``).
"""

from kplan.transport.base import (
    UNREACHABLE_CODE,
    CommandFailed,
    CommandResult,
    Connection,
    HostUnreachable,
    TransportError,
)

__all__ = [
    "UNREACHABLE_CODE",
    "CommandFailed",
    "CommandResult",
    "Connection",
    "HostUnreachable",
    "TransportError",
]
