"""Apply progress for people: live on a terminal, plain lines otherwise.

On a terminal (rich's :class:`~rich.console.Console` says so), every change
in flight has a line of its own with its elapsed time (the oldest
:data:`LIVE_LINES` of them: changes watching a health gate hold no
parallelism place, so hundreds can be in flight), kept at the bottom
with a count (``2 in flight, 5 done``) and redrawn a few times a second;
finished and failed changes scroll above it, coloured unless ``-no-color``
or ``NO_COLOR``. Anywhere else (a pipe, a CI log) each event is one plain
line, as Terraform prints them: ``ADDRESS: Creating...``, ``ADDRESS:
Creation complete after 1.2s``, ``ADDRESS: failed: MESSAGE`` (on stderr).
Never here: deciding anything.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from kplan.apply.executor import ApplyEvent

__all__ = ["LIVE_LINES", "ApplyProgress"]

# At most this many live lines; the rest are counted ("... and 188 more").
LIVE_LINES = 12

ING = {
    "create": "Creating",
    "update": "Modifying",
    "restart": "Restarting",
    "replace": "Replacing",
    "delete": "Destroying",
}
ED = {
    "create": "Creation complete",
    "update": "Modifications complete",
    "restart": "Restart complete",
    "replace": "Replacement complete",
    "delete": "Destruction complete",
}


class ApplyProgress:
    """A notify function for apply_plan; use it as a context manager around the apply."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Bound to the real stdout: while live, sys.stdout is rich's proxy.
        self.console = console or Console(file=sys.stdout, highlight=False)
        self.live = self.console.is_terminal if live is None else live
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[str, tuple[ApplyEvent, float]] = {}
        self._display: Live | None = None
        self._counts = {"done": 0, "error": 0}

    def __enter__(self) -> ApplyProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the live display (the summary is printed after it)."""
        with self._lock:
            display, self._display = self._display, None
        if display is not None:
            display.stop()

    def __call__(self, e: ApplyEvent) -> None:
        if not self.live:
            with self._lock:
                _plain(e)
            return
        starting = None
        with self._lock:  # never held while waiting for rich's own locks
            if e.kind == "start":
                self._in_flight[e.address] = (e, self._clock())
            else:
                self._in_flight.pop(e.address, None)
                self._counts[e.kind] = self._counts.get(e.kind, 0) + 1
            if self._display is None:  # started on the first event: not during the prompt
                starting = self._display = Live(
                    self, console=self.console, refresh_per_second=4, transient=True
                )
        if starting is not None:
            starting.start()
        line = _finished(e)
        if line is not None:
            self.console.print(line)

    def __rich__(self) -> RenderableType:
        """The changes in flight, one line each, oldest first, then a count."""
        now = self._clock()
        with self._lock:
            flying = sorted(self._in_flight.values(), key=lambda ev: (ev[1], ev[0].address))
            done, failed = self._counts["done"], self._counts["error"]
        count = f"{len(flying)} in flight, {done} done" + (f", {failed} failed" if failed else "")
        lines = [
            Text.assemble(
                (f"{ev.address}: ", "bold"),
                f"{ING[ev.action.value]}... ",
                (f"[{now - started:.0f}s elapsed]", "dim"),
            )
            for ev, started in flying[:LIVE_LINES]
        ]
        if len(flying) > LIVE_LINES:
            lines.append(Text(f"... and {len(flying) - LIVE_LINES} more", style="dim"))
        return Group(*lines, Text(count, style="dim"))


def _finished(e: ApplyEvent) -> Text | None:
    if e.kind == "done":
        return Text.assemble(
            (f"{e.address}: ", "bold"), (f"{ED[e.action.value]} after {e.elapsed:.1f}s", "green")
        )
    if e.kind == "error":
        return Text.assemble((f"{e.address}: ", "bold"), (f"failed: {e.message}", "red"))
    return None


def _plain(e: ApplyEvent) -> None:
    if e.kind == "start":
        typer.echo(f"{e.address}: {ING[e.action.value]}...")
    elif e.kind == "done":
        typer.echo(f"{e.address}: {ED[e.action.value]} after {e.elapsed:.1f}s")
    else:
        typer.echo(f"{e.address}: failed: {e.message}", err=True)
    sys.stdout.flush()
