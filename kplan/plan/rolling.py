"""Rolling blocks: which of a block's changes go together, and in what order.

A resource with ``rolling: {serial: N}`` (or ``"P%"``) changes its instances
in batches: the block's changed instances sorted by instance key, cut into
batches of N (or P percent of them, rounded down, at least one). Deletes are
not rolled (they go first, as every delete does), nor are creates: a new
instance serves nobody yet, so a fresh deploy starts every instance at once,
and a cluster whose members must find each other to start (Galera, RabbitMQ)
can. An instance whose refreshed state says it is not running (``running:
false``, a container stopped outside kplan) serves nobody either: when every
changed instance of a block is stopped (a whole cluster stopped by hand, or
by a power cut) nothing rolls and they all start at once, as a cluster must
to find its most advanced member; when some are running, the stopped ones
go first, together, and the running ones roll after them, so no more running
members are down at once than the roll allows. The plan records the batches
(:class:`~kplan.plan.model.Roll`); apply follows them exactly. Nothing here
talks to providers or reads files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kplan.addrs import ResourceAddr
from kplan.plan.model import Action, ResourceChange, Roll

__all__ = ["batch_size", "plan_rolls"]


def batch_size(serial: int | str, count: int) -> int:
    """How many of ``count`` changes go at once: ``serial`` is N or "P%" (checked at load)."""
    if isinstance(serial, str):
        percent = int(serial.strip().rstrip("%"))
        return max(1, count * percent // 100)
    return max(1, serial)


def plan_rolls(
    changes: Iterable[ResourceChange],
    rolling_of: Callable[[ResourceAddr], Mapping[str, Any] | None],
) -> tuple[Roll, ...]:
    """The rolls of the blocks that ask for one, sorted by block address."""
    blocks: dict[str, tuple[Mapping[str, Any], list[ResourceAddr]]] = {}
    stopped: set[ResourceAddr] = set()
    for c in changes:
        if not c.action.is_change or c.action in (Action.DELETE, Action.CREATE):
            continue
        rolling = rolling_of(c.addr)
        if not rolling or "serial" not in rolling:
            continue
        if c.addr.key is None:
            continue  # a block of one instance has nothing to roll
        block = str(c.addr.config)
        blocks.setdefault(block, (rolling, []))[1].append(c.addr)
        if c.before is not None and c.before.get("running") is False:
            stopped.add(c.addr)
    rolls: list[tuple[tuple[object, ...], Roll]] = []
    for block, (rolling, addrs) in blocks.items():
        down = sorted((a for a in addrs if a in stopped), key=lambda a: a.sort_key())
        if len(down) == len(addrs):
            continue  # all stopped: they start together, nothing to roll
        addrs = sorted((a for a in addrs if a not in stopped), key=lambda a: a.sort_key())
        size = batch_size(rolling["serial"], len(addrs))
        batches = tuple(tuple(addrs[i : i + size]) for i in range(0, len(addrs), size))
        batches = ((tuple(down),) if down else ()) + batches
        rolls.append(
            (batches[0][0].config.instance().sort_key(), Roll(block, rolling["serial"], batches))
        )
    return tuple(r for _, r in sorted(rolls, key=lambda kr: kr[0]))
