"""A change that only waits gives its parallelism place up meanwhile.

``-parallelism N`` bounds the changes *working* at once: creating, pulling,
writing, running a job. Much of a change can be waiting instead — for a
container to turn healthy, for a value another change has still to produce —
and a place held through such a wait is a place no other change can use: at
10 places, 200 containers each watched for 2 s after their start spend most of
a deploy in their gates, one container per host at a time.

The apply scheduler binds each change's thread to its place (:func:`hold`);
code running in the change wraps a wait in :func:`waiting`. The place is
given up on entry and taken back on exit, before any change not yet started
gets one, so a change that began is never starved by those behind it. Outside
an apply (a plan, a test calling a provider directly) ``waiting()`` does
nothing. Providers reach it as ``kplan.provider_sdk.waiting``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Protocol

__all__ = ["Places", "hold", "waiting"]


class Places(Protocol):
    """What lends a thread its place: the apply scheduler."""

    def give_up(self) -> None:
        """The calling thread stops counting against the limit."""

    def take_back(self) -> None:
        """Block until the calling thread may count again, ahead of changes not yet started."""


_local = threading.local()


def hold(places: Places | None) -> None:
    """Bind the calling thread to a place of ``places`` (None: to none)."""
    _local.places = places
    _local.away = False


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Run the block without holding the calling change's place (nested: the outer one counts)."""
    places: Places | None = getattr(_local, "places", None)
    if places is None or getattr(_local, "away", False):
        yield
        return
    _local.away = True
    places.give_up()
    try:
        yield
    finally:
        _local.away = False
        places.take_back()
