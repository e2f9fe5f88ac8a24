"""Apply progress: live lines with elapsed time on a terminal, plain lines elsewhere."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from rich.console import Console

from kplan.apply.executor import ApplyEvent
from kplan.cli.progress import LIVE_LINES, ApplyProgress
from kplan.plan.model import Action

A = 'docker_container.keystone["ctl1"]'
B = 'docker_container.keystone["ctl2"]'


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def terminal(color: bool = True) -> tuple[Console, StringIO]:
    out = StringIO()
    console = Console(
        file=out, force_terminal=True, width=100, color_system="standard", no_color=not color
    )
    return console, out


def rendered(console: Console, progress: ApplyProgress) -> str:
    with console.capture() as cap:
        console.print(progress)
    return cap.get()


def test_a_live_line_per_change_in_flight_with_its_elapsed_time() -> None:
    console, out = terminal()
    clock = Clock()
    progress = ApplyProgress(console, clock=clock)
    assert progress.live
    with progress:
        progress(ApplyEvent("start", A, Action.RESTART))
        clock.now += 3
        progress(ApplyEvent("start", B, Action.CREATE))
        clock.now += 9
        lines = rendered(console, progress)
        assert f"{A}: Restarting... [12s elapsed]" in _plain(lines)
        assert f"{B}: Creating... [9s elapsed]" in _plain(lines)
        assert _plain(lines).splitlines()[-1] == "2 in flight, 0 done"
        progress(ApplyEvent("done", A, Action.RESTART, elapsed=12.04))
        assert A not in rendered(console, progress)
        progress(ApplyEvent("error", B, Action.CREATE, elapsed=9.5, message="image not found"))
        # (a capture while live may hold the live region too: compare the lines as a set)
        left = {line.strip() for line in _plain(rendered(console, progress)).splitlines()}
        assert left - {""} == {"0 in flight, 1 done, 1 failed"}
    text = out.getvalue()
    assert f"{A}: Restart complete after 12.0s" in _plain(text)
    assert f"{B}: failed: image not found" in _plain(text)
    assert "\x1b[32m" in text and "\x1b[31m" in text  # green done, red failed


def test_no_colour_on_a_terminal_with_no_color() -> None:
    console, out = terminal(color=False)
    with ApplyProgress(console, clock=Clock()) as progress:
        progress(ApplyEvent("start", A, Action.UPDATE))
        progress(ApplyEvent("done", A, Action.UPDATE, elapsed=1.0))
    text = out.getvalue()
    assert f"{A}: Modifications complete after 1.0s" in _plain(text)
    assert "\x1b[3" not in text  # no colour (bold and cursor control only)


def test_plain_lines_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(file=StringIO(), force_terminal=False)
    with ApplyProgress(console) as progress:
        assert not progress.live
        progress(ApplyEvent("start", A, Action.CREATE))
        progress(ApplyEvent("done", A, Action.CREATE, elapsed=0.04))
        progress(ApplyEvent("start", B, Action.DELETE))
        progress(ApplyEvent("error", B, Action.DELETE, message="boom"))
    captured = capsys.readouterr()
    assert captured.out == (
        f"{A}: Creating...\n{A}: Creation complete after 0.0s\n{B}: Destroying...\n"
    )
    assert captured.err == f"{B}: failed: boom\n"


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_the_oldest_changes_in_flight_have_lines_the_rest_a_count() -> None:
    console, _ = terminal()
    clock = Clock()
    with ApplyProgress(console, clock=clock) as progress:
        for i in range(LIVE_LINES + 3):
            progress(ApplyEvent("start", f"docker_container.c{i:02d}", Action.CREATE))
            clock.now += 1
        # (a capture while live may hold the live region too: compare the lines as a set)
        lines = [line.strip() for line in _plain(rendered(console, progress)).splitlines()]
    shown = {line.split(":")[0] for line in lines if "Creating..." in line}
    assert shown == {f"docker_container.c{i:02d}" for i in range(LIVE_LINES)}
    assert lines[-2:] == ["... and 3 more", f"{LIVE_LINES + 3} in flight, 0 done"]
