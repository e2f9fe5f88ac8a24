"""Group commit: changes finishing together are written in one transaction, each durably."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from kplan.apply.recording import GroupCommit
from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.crypto import generate_key
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import UNKNOWN

WAIT = 10.0  # only a broken group commit ever reaches it


def rec(address: str, **attrs: object) -> ResourceRecord:
    return ResourceRecord.from_addr(address, provider="builtin", attributes=dict(attrs))


class SlowStore:
    """Records each transaction; the first one waits until ``release`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.in_first = threading.Event()
        self.release = threading.Event()
        self.fail_next: bool = False

    def record(self, changes: Sequence[tuple[str, ResourceRecord | None]]) -> None:
        if not self.batches:
            self.in_first.set()
            assert self.release.wait(WAIT)
        if self.fail_next:
            self.fail_next = False
            self.batches.append([a for a, _ in changes])
            raise KplanError(Diagnostic.error("the state database is locked"))
        self.batches.append([a if r is not None else f"-{a}" for a, r in changes])


def _writers(gc: GroupCommit, names: list[str]) -> tuple[list[threading.Thread], list[object]]:
    outcomes: list[object] = []

    def write(name: str) -> None:
        try:
            if name.startswith("-"):
                gc.delete(name[1:])
            else:
                gc.put(rec(name))
            outcomes.append(name)
        except KplanError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in names]
    for t in threads:
        t.start()
    return threads, outcomes


def test_writes_queued_behind_a_commit_go_together_in_the_next() -> None:
    store = SlowStore()
    gc = GroupCommit(store)
    first, done = _writers(gc, ["null_resource.a"])
    assert store.in_first.wait(WAIT)
    rest, later = _writers(gc, ["null_resource.b", "null_resource.c", "-null_resource.d"])
    while len(gc._queue) < 3:  # all three wait behind the first commit
        threading.Event().wait(0.01)
    assert done == [] and later == []  # nobody returns before its commit
    store.release.set()
    for t in first + rest:
        t.join(WAIT)
    assert gc.commits == 2
    assert store.batches[0] == ["null_resource.a"]
    assert sorted(store.batches[1]) == ["-null_resource.d", "null_resource.b", "null_resource.c"]
    assert sorted(map(str, later)) == ["-null_resource.d", "null_resource.b", "null_resource.c"]


def test_a_failed_commit_fails_every_write_it_held_and_no_other() -> None:
    store = SlowStore()
    store.release.set()
    store.fail_next = True
    gc = GroupCommit(store)
    with pytest.raises(KplanError, match="locked"):
        gc.put(rec("null_resource.a"))
    gc.put(rec("null_resource.b"))  # the next commit is a new transaction
    assert store.batches == [["null_resource.a"], ["null_resource.b"]]


def test_a_write_the_state_refuses_fails_alone_and_its_batch_is_recorded(tmp_path: Path) -> None:
    env = {"KPLAN_STATE_KEY": generate_key()}
    with StateStore.open(str(tmp_path / "state.db"), environ=env) as real:
        first_in, release = threading.Event(), threading.Event()

        class Gated:
            """The real store, its first transaction held until the others queue."""

            def record(self, changes: Sequence[tuple[str, ResourceRecord | None]]) -> None:
                if not first_in.is_set():
                    first_in.set()
                    assert release.wait(WAIT)
                real.record(changes)

        gc = GroupCommit(Gated())
        first, done = _writers(gc, ["null_resource.a"])
        assert first_in.wait(WAIT)
        refused: list[BaseException] = []

        def write_unknown() -> None:
            try:
                gc.put(rec("null_resource.bad", id=UNKNOWN))  # the state holds no unknown
            except ValueError as exc:
                refused.append(exc)

        bad = threading.Thread(target=write_unknown)
        bad.start()
        rest, later = _writers(gc, ["null_resource.b", "null_resource.c"])
        while len(gc._queue) < 3:  # the three go in one batch
            threading.Event().wait(0.01)
        release.set()
        for t in [*first, bad, *rest]:
            t.join(WAIT)
        assert [str(e) for e in refused] == [
            "null_resource.bad: an unknown value cannot be stored in the state"
        ]
        assert done == ["null_resource.a"]
        assert sorted(map(str, later)) == ["null_resource.b", "null_resource.c"]
        assert sorted(real.resources()) == ["null_resource.a", "null_resource.b", "null_resource.c"]


def test_the_store_writes_a_batch_as_one_serial(tmp_path: Path) -> None:
    env = {"KPLAN_STATE_KEY": generate_key()}
    with StateStore.open(str(tmp_path / "state.db"), environ=env) as store:
        store.put_many([rec("null_resource.old", n=0), rec("null_resource.kept", n=0)])
        before = store.serial
        store.record(
            [
                ("null_resource.new", rec("null_resource.new", n=1)),
                ("null_resource.old", None),
                ("null_resource.brief", rec("null_resource.brief", n=1)),
                ("null_resource.brief", None),  # the last write of an address counts
                ("null_resource.never", None),  # deleting what is not there: nothing
            ]
        )
        assert store.serial == before + 1
        assert sorted(store.resources()) == ["null_resource.kept", "null_resource.new"]
        assert store.resources_at(before + 1).keys() == store.resources().keys()
        assert "null_resource.old" in store.resources_at(before)
        store.record([("null_resource.never", None)])
        assert store.serial == before + 1  # nothing changed: no new serial
