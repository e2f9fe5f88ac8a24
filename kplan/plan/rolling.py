"""Rolling blocks: which of a block's changes go together, and in what order.

A resource with ``rolling: {serial: N}`` (or ``"P%"``) changes its instances
in batches: the block's changed instances sorted by instance key, cut into
batches of N (or P percent of them, rounded down, at least one). Deletes are
not rolled (they go first, as every delete does), nor are creates: a new
instance serves nobody yet, so a fresh deploy starts every instance at once,
and a cluster whose members must find each other to start (Galera, RabbitMQ)
can. For the same reason an instance whose refreshed state says it is not
running (``running: false``, a container stopped outside kplan) is not rolled:
a whole cluster stopped by hand starts all at once, as it must to find its
most advanced member, and no running instance waits for it. The plan records the batches
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
    for c in changes:
        if not c.action.is_change or c.action in (Action.DELETE, Action.CREATE):
            continue
        if c.before is not None and c.before.get("running") is False:
            continue  # stopped: it serves nobody, so nothing is gained by waiting
        rolling = rolling_of(c.addr)
        if not rolling or "serial" not in rolling:
            continue
        if c.addr.key is None:
            continue  # a block of one instance has nothing to roll
        block = str(c.addr.config)
        blocks.setdefault(block, (rolling, []))[1].append(c.addr)
    rolls: list[tuple[tuple[object, ...], Roll]] = []
    for block, (rolling, addrs) in blocks.items():
        addrs.sort(key=lambda a: a.sort_key())
        size = batch_size(rolling["serial"], len(addrs))
        batches = tuple(tuple(addrs[i : i + size]) for i in range(0, len(addrs), size))
        rolls.append(
            (addrs[0].config.instance().sort_key(), Roll(block, rolling["serial"], batches))
        )
    return tuple(r for _, r in sorted(rolls, key=lambda kr: kr[0]))
