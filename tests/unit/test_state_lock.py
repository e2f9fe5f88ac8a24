"""The state lock: a second kplan is told who holds it, waits, or finds it free."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kplan.diagnostics import StateLockedError
from kplan.state.crypto import generate_key
from kplan.state.store import StateStore


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = str(tmp_path / "state.db")
    StateStore.open(path, environ={"KPLAN_STATE_KEY": generate_key()}).close()
    return path


def hold_lock(
    db: str, seconds: float, workspace: str = "default"
) -> tuple[subprocess.Popen[str], dict[str, object]]:
    """Start a python that takes the lock, reports its LockInfo and sleeps."""
    code = f"""
        import json, time
        from kplan.state.store import StateStore
        s = StateStore.open({db!r}, workspace={workspace!r})
        with s.lock("apply", who="alice@ctl-box") as info:
            print(json.dumps({{"id": info.id, "pid": info.pid}}), flush=True)
            time.sleep({seconds})
        print("released", flush=True)
    """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    return child, json.loads(child.stdout.readline())


def test_second_holder_gets_a_clear_message(db: str) -> None:
    child, held = hold_lock(db, 60)
    try:
        store = StateStore.open(db)
        with store, pytest.raises(StateLockedError) as err, store.lock("plan"):
            pass
    finally:
        child.kill()
        child.wait()
    text = str(err.value)
    diag = err.value.diagnostics[0]
    assert "alice@ctl-box" in diag.summary
    assert f"pid {held['pid']}" in diag.summary
    assert "'apply'" in diag.summary and " since " in diag.summary
    assert str(held["id"]) in diag.detail
    assert "-lock-timeout" in text
    assert diag.code == "state-locked"


def test_lock_timeout_waits_for_the_holder(db: str) -> None:
    child, _ = hold_lock(db, 1.0)
    try:
        with StateStore.open(db) as store:
            start = time.monotonic()
            with store.lock("apply", timeout=30) as info:
                waited = time.monotonic() - start
                assert info.operation == "apply" and info.pid == os.getpid()
                assert json.loads(Path(db + ".lock").read_text())["id"] == info.id
    finally:
        child.wait(timeout=30)
    assert 0.3 < waited < 30
    assert Path(db + ".lock").read_text() == ""  # released: holder info cleared


def test_lock_timeout_expires(db: str) -> None:
    child, _ = hold_lock(db, 60)
    try:
        with StateStore.open(db) as store:
            start = time.monotonic()
            with (
                pytest.raises(StateLockedError, match="alice@ctl-box"),
                store.lock("x", timeout=0.5),
            ):
                pass
            assert time.monotonic() - start >= 0.5
    finally:
        child.kill()
        child.wait()


def test_killed_holder_leaves_no_stale_lock(db: str) -> None:
    child, _ = hold_lock(db, 60)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with StateStore.open(db) as store, store.lock("apply") as info:
        assert info.who.count("@") == 1


def test_lock_is_per_workspace(db: str) -> None:
    with StateStore.open(db) as store:
        store.create_workspace("staging")
    child, _ = hold_lock(db, 60, workspace="staging")
    try:
        with StateStore.open(db) as store, store.lock("apply"):
            pass
        staging = StateStore.open(db, workspace="staging")
        with staging, pytest.raises(StateLockedError), staging.lock("apply"):
            pass
    finally:
        child.kill()
        child.wait()


def test_lock_in_the_same_process_is_exclusive(db: str) -> None:
    with StateStore.open(db) as a, StateStore.open(db) as b:
        with a.lock("apply"), pytest.raises(StateLockedError), b.lock("apply"):
            pass
        with b.lock("apply"):
            pass
