"""kplan.forked: a string made by a forked child, or here when the child cannot make it."""

from __future__ import annotations

import os
import threading

import pytest

from kplan import forked


@pytest.fixture
def always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork whatever the size (the tests are small) and the machine."""
    monkeypatch.setattr(forked, "FORK_ABOVE", 0)
    monkeypatch.setattr(forked, "_can_fork", lambda: True)


def test_the_string_is_made_in_the_child(always: None) -> None:
    parent = os.getpid()
    with forked.forked(lambda: f"made by {os.getpid()} \u00e9\ud800", 1) as part:
        assert part.forked
        text = part.result()
    assert text.startswith("made by ") and text != f"made by {parent} \u00e9\ud800"
    assert text.endswith(" \u00e9\ud800")  # any str comes back as it was, lone surrogates too


def test_a_child_that_fails_leaves_the_part_to_the_parent(always: None) -> None:
    parent = os.getpid()

    def make() -> str:
        if os.getpid() != parent:
            raise RuntimeError("the child fails")
        return "made here"

    with forked.forked(make, 1) as part:
        assert part.forked
        assert part.result() == "made here"


def test_small_work_and_threaded_processes_do_not_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    with forked.forked(lambda: str(os.getpid()), forked.FORK_ABOVE) as part:
        assert not part.forked
        assert part.result() == str(os.getpid())
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not forked._can_fork()  # a lock held by the thread would stay held in a child
    finally:
        stop.set()
        thread.join()


def test_a_part_not_waited_for_is_killed_and_reaped(always: None) -> None:
    def forever() -> str:
        threading.Event().wait()
        return ""

    with pytest.raises(KeyError), forked.forked(forever, 1) as part:
        pid = part._pid
        assert pid is not None
        raise KeyError("the parent fails first")
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already: no such child


def test_no_spool_file_no_fork(always: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(forked.tempfile, "TemporaryFile", full)
    with forked.forked(lambda: "made here", 1) as part:
        assert not part.forked
        assert part.result() == "made here"
