"""The PostgreSQL workspace lock against a real server: waits, holders, kills, readers."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from typing import Any

import pytest

from kplan.diagnostics import KplanError, StateLockedError
from kplan.state.store import StateStore
from kplan.values import Secret

from .conftest import PgServer

# A child that opens the state, takes the lock, "applies" N resources (each its own
# commit, with a pause), records the run in the history and releases the lock.
APPLY = """
    import json, sys, time
    from kplan.state.store import StateStore, ResourceRecord
    from kplan.values import Secret
    with StateStore.open({url!r}) as s:
        with s.lock("apply", timeout={timeout}, who={who!r}) as info:
            run = s.begin_run("apply", "Plan: {n} to add")
            print(json.dumps({{"id": info.id, "pid": info.pid}}), flush=True)
            for i in range({n}):
                s.put(ResourceRecord.from_addr(f"a.{who}[{{i}}]", provider="p",
                                               attributes={{"pw": Secret(str(i))}}))
                time.sleep({pause})
            s.finish_run(run, "success", "{n} added")
    print("released", flush=True)
"""


def apply_child(spawn: Any, url: str, env: dict[str, str], **kw: Any) -> Any:
    args = {"timeout": 0, "who": "alice", "n": 3, "pause": 0.0} | kw
    return spawn(APPLY.format(url=url, **args), env)


def first_line(child: Any) -> dict[str, Any]:
    line = child.stdout.readline()
    assert line, child.stderr.read()
    return dict(json.loads(line))


@pytest.fixture
def state(pg_url: str, pg_env: dict[str, str]) -> str:
    StateStore.open(pg_url, environ=pg_env).close()
    return pg_url


def test_second_writer_waits_then_fails_naming_the_holder(
    state: str, pg_env: dict[str, str], spawn: Any
) -> None:
    holder = apply_child(spawn, state, pg_env, who="alice", n=4, pause=0.5)
    held = first_line(holder)
    store = StateStore.open(state, environ=pg_env)
    start = time.monotonic()
    with store, pytest.raises(StateLockedError) as err, store.lock("apply", timeout=0.5):
        pass
    assert time.monotonic() - start >= 0.5
    diag = err.value.diagnostics[0]
    assert diag.code == "state-locked"
    assert "alice" in diag.summary and f"pid {held['pid']}" in diag.summary
    assert "'apply'" in diag.summary and " since " in diag.summary
    assert held["id"] in diag.detail and "PostgreSQL advisory lock" in diag.detail
    assert "-lock-timeout" in str(err.value)
    # A reader neither waits for nor disturbs the holder.
    with StateStore.open(state, environ=pg_env) as reader:
        t = time.monotonic()
        reader.resources()
        reader.history()
        assert time.monotonic() - t < 1.0
        holder_info = reader.lock_holder()
        assert holder_info is not None and holder_info.id == held["id"]
    holder.wait(timeout=30)


def test_two_applies_one_waits_and_nothing_is_lost(
    state: str, pg_env: dict[str, str], spawn: Any
) -> None:
    first = apply_child(spawn, state, pg_env, who="alice", n=5, pause=0.2)
    first_line(first)
    second = apply_child(spawn, state, pg_env, who="bob", n=5, pause=0.0, timeout=30)
    start = time.monotonic()
    first_line(second)  # printed only once it holds the lock
    waited = time.monotonic() - start
    for child in (first, second):
        _, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
    assert waited > 0.4
    with StateStore.open(state, environ=pg_env) as store:
        got = store.resources()
        assert len(got) == 10
        assert got["a.bob[4]"].attributes["pw"] == Secret("4")
        assert store.serial == 10
        runs = store.history()
        assert [(e.serial, e.outcome) for e in runs] == [(1, "success"), (2, "success")]
        assert store.lock_holder() is None


def test_sigkill_of_the_holder_frees_the_lock_at_once(
    state: str, pg_env: dict[str, str], spawn: Any
) -> None:
    holder = apply_child(spawn, state, pg_env, who="alice", n=1, pause=60)
    held = first_line(holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with StateStore.open(state, environ=pg_env) as store:
        start = time.monotonic()
        with store.lock("apply", timeout=5) as info:
            elapsed = time.monotonic() - start
            # The dead holder's stale record was overwritten by ours.
            current = store.lock_holder()
            assert current is not None and current.id == info.id != held["id"]
        assert elapsed < 1.0, elapsed
        assert store.lock_holder() is None
        # Its half-done run shows as interrupted.
        assert [e.outcome for e in store.history()] == ["interrupted"]


def test_twenty_readers_during_a_writer(state: str, pg_env: dict[str, str], spawn: Any) -> None:
    writer = apply_child(spawn, state, pg_env, who="w", n=40, pause=0.02)
    first_line(writer)
    errors: list[BaseException] = []
    slowest: list[float] = []
    counts: list[list[int]] = []
    stop = threading.Event()

    def read() -> None:
        seen: list[int] = []
        try:
            with StateStore.open(state, environ=pg_env) as store:
                while not stop.is_set():
                    t = time.monotonic()
                    seen.append(len(store.resources()))
                    store.outputs()
                    slowest.append(time.monotonic() - t)
                    time.sleep(0.005)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)
        counts.append(seen)

    threads = [threading.Thread(target=read) for _ in range(20)]
    for t in threads:
        t.start()
    try:
        writer.wait(timeout=30)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert writer.returncode == 0, writer.stderr.read()
    assert not errors, errors
    assert len(counts) == 20 and all(seen for seen in counts)
    assert all(seen == sorted(seen) for seen in counts)  # each commit seen whole, in order
    assert max(slowest) < 2.0
    with StateStore.open(state, environ=pg_env) as store:
        assert len(store.resources()) == 40


def test_lock_is_per_workspace_and_per_session(state: str, pg_env: dict[str, str]) -> None:
    with StateStore.open(state, environ=pg_env) as a:
        a.create_workspace("staging")
        with StateStore.open(state, environ=pg_env) as b:
            with a.lock("apply"), pytest.raises(StateLockedError), b.lock("apply"):
                pass
            staging = StateStore.open(state, workspace="staging", environ=pg_env)
            with (
                staging,
                a.lock("apply"),
                staging.lock("apply"),
                pytest.raises(StateLockedError, match="locked"),
            ):
                a.delete_workspace("staging")
            with b.lock("apply"):
                pass
        a.delete_workspace("staging")
        assert a.workspaces() == ["default"]


def test_force_unlock(pg_server: PgServer, state: str, pg_env: dict[str, str], spawn: Any) -> None:
    # A live holder: the record goes, the lock stays, and the message says why.
    holder = apply_child(spawn, state, pg_env, who="alice", n=1, pause=60)
    held = first_line(holder)
    with StateStore.open(state, environ=pg_env) as store:
        with pytest.raises(KplanError, match="no lock with ID 'nope'") as err:
            store.force_unlock("nope")
        assert held["id"] in str(err.value)
        result = store.force_unlock(held["id"])
        assert result.holder_active and result.holder.who == "alice"
        assert "PostgreSQL cannot release another session's advisory lock" in result.message
        assert "stop that kplan process" in result.message
        assert re.search(r"backend pid \d+ \(user kplan, application kplan", result.message)
        with (
            pytest.raises(StateLockedError, match="locked by another kplan") as locked,
            store.lock("apply"),
        ):
            pass
        assert "Held by database session backend pid" in locked.value.diagnostics[0].detail
        assert holder.poll() is None  # nothing was terminated
        holder.kill()
        holder.wait()
        # The server ends the dead session as soon as it sees the closed socket.
        with store.lock("apply", timeout=10):
            pass
    # A stale record (its holder gone): removed, nothing held.
    holder = apply_child(spawn, state, pg_env, who="bob", n=1, pause=60)
    held = first_line(holder)
    holder.kill()
    holder.wait()
    with StateStore.open(state, environ=pg_env) as store:
        result = store.force_unlock(held["id"])
        assert not result.holder_active and "stale" in result.message
        with pytest.raises(KplanError, match="not locked"):
            store.force_unlock(held["id"])


def test_no_password_in_lock_messages(
    pg_server: PgServer, state: str, pg_env: dict[str, str], spawn: Any
) -> None:
    pw = pg_server.password
    url = state.replace("://kplan@", f"://kplan:{pw}@")
    env = {"KPLAN_STATE_KEY": pg_env["KPLAN_STATE_KEY"]}
    holder = apply_child(spawn, url, env, who="alice", n=1, pause=60)
    held = first_line(holder)
    texts = []
    with StateStore.open(url, environ=env) as store:
        with pytest.raises(StateLockedError) as err, store.lock("apply", timeout=0.1):
            pass
        texts.append(str(err.value))
        texts.append(store.force_unlock(held["id"]).message)
        info = store.lock_holder()
        texts.append(repr(info))
        texts.append(store.description)
    assert all(pw not in t for t in texts), texts
    assert "kplan:***@" in texts[0]
