"""Resource versions: the state of any serial, rebuilt from the append-only versions."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from kplan.diagnostics import KplanError
from kplan.state import migrate
from kplan.state.crypto import generate_key
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import Secret

SECRET = "v3rs10n-s3cr3t"


@pytest.fixture
def env() -> dict[str, str]:
    return {"KPLAN_STATE_KEY": generate_key()}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / ".kplan" / "state.db")


def rec(address: str, **attrs: object) -> ResourceRecord:
    return ResourceRecord.from_addr(address, provider="builtin", attributes=dict(attrs), host="h1")


def test_every_serial_can_be_shown(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        store.put_many([rec("a.x", n=1), rec("a.y", pw=Secret(SECRET))])  # serial 1
        store.put(rec("a.x", n=2))  # 2
        store.delete("a.y")  # 3
        store.set_outputs({"o": 1})  # 4: outputs only
        store.move("a.x", rec("a.z", n=2))  # 5
        store.put(rec("a.y", pw=Secret(SECRET + "2")))  # 6: back again
        assert store.serial == 6
        at = {n: store.resources_at(n) for n in range(7)}
        assert at[0] == {}
        assert at[1] == {"a.x": rec("a.x", n=1), "a.y": rec("a.y", pw=Secret(SECRET))}
        assert at[2] == {"a.x": rec("a.x", n=2), "a.y": rec("a.y", pw=Secret(SECRET))}
        assert at[3] == at[4] == {"a.x": rec("a.x", n=2)}
        assert at[5] == {"a.z": rec("a.z", n=2)}
        assert at[6] == store.resources()
        assert store.get_at("a.x", 1) == rec("a.x", n=1)
        assert store.get_at("a.x", 5) is None and store.get_at("a.y", 4) is None
        assert store.get_at("a.y", 6) == rec("a.y", pw=Secret(SECRET + "2"))
        for bad in (7, -1):
            with pytest.raises(KplanError, match=f"no serial {bad}: it can show serials 0 to 6"):
                store.resources_at(bad)
    # Versions are sealed as the resources are: no secret in the file.
    data = b"".join(p.read_bytes() for p in Path(db).parent.glob("state.db*"))
    assert SECRET.encode() not in data


def test_a_version_is_written_with_its_change_or_not_at_all(db: str, env: dict[str, str]) -> None:
    code = f"""
        from kplan.state.store import StateStore, ResourceRecord
        s = StateStore.open({db!r})
        for i in range(3):
            s.put(ResourceRecord.from_addr("a.b", provider="p", attributes={{"n": i}}))
            print(i, flush=True)
        import time; time.sleep(60)
    """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env | {"PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for _ in range(3):
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    with StateStore.open(db, environ=env) as store:
        assert [store.get_at("a.b", n).attributes for n in (1, 2, 3)] == [  # type: ignore[union-attr]
            {"n": 0},
            {"n": 1},
            {"n": 2},
        ]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT serial FROM resource_versions ORDER BY serial").fetchall()
    assert rows == [(1,), (2,), (3,)]


def test_large_batches_are_versioned_too(db: str, env: dict[str, str]) -> None:
    records = [rec(f"a.b[{i}]", n=i) for i in range(2500)]
    with StateStore.open(db, environ=env) as store:
        store.put_many(records)
        store.put_many([rec(f"a.b[{i}]", n=-i) for i in range(2500)])
        assert store.resources_at(1) == {r.address: r for r in records}
        assert store.resources_at(2)["a.b[7]"] == rec("a.b[7]", n=-7)


def test_history_records_the_state_serial_a_run_ended_at(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        run = store.begin_run("apply", "Plan: 2 to add")
        assert store.history()[0].state_serial is None
        store.put_many([rec("a.x"), rec("a.y")])
        store.put(rec("a.z"))
        store.finish_run(run, "success", "3 added")
        assert store.history()[0].state_serial == 2 == store.serial


def test_a_state_from_before_versions_is_upgraded(tmp_path: Path, env: dict[str, str]) -> None:
    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    try:
        from alembic import command

        with engine.begin() as conn:
            command.upgrade(migrate.alembic_config(conn), "0002")
    finally:
        engine.dispose()
    with sqlite3.connect(db) as conn:  # what kplan 0002 wrote: serial 5, two resources
        conn.execute(
            "INSERT INTO workspaces (id, name, lineage, serial, created_at) "
            "VALUES (1, 'default', 'lin-1', 5, '2026-01-01 00:00:00')"
        )
        for addr, serial in (("a.x", 2), ("a.y", 5)):
            conn.execute(
                "INSERT INTO resources VALUES (1, ?, '', 'a', ?, NULL, 'builtin', NULL, "
                "'{\"n\":1}', 0, '[]', ?)",
                (addr, addr[2:], serial),
            )
    with StateStore.open(str(db), environ=env) as store:
        assert migrate.schema_revision(store._backend.engine) == "0004"
        assert store.resources_at(5) == store.resources()
        with pytest.raises(KplanError, match="it can show only its current serial 5") as err:
            store.resources_at(4)
        assert "kept since serial 5" in err.value.diagnostics[0].detail
        store.put(rec("a.x", n=2))
        assert store.get_at("a.x", 5) == ResourceRecord.from_addr(
            "a.x", provider="builtin", attributes={"n": 1}
        )
        assert store.get_at("a.x", 6) == rec("a.x", n=2)
        with pytest.raises(KplanError, match="serials 5 to 6"):
            store.resources_at(0)
