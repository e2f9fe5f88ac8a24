"""The state store: resources, outputs, meta, workspaces, history, secrets at rest."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kplan.diagnostics import KplanError
from kplan.state.crypto import generate_key
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import UNKNOWN, Secret
from tests.unit.sqlite_plans import query_plans

SECRET = "s3cr3t-XYZ"


@pytest.fixture
def env() -> dict[str, str]:
    return {"KPLAN_STATE_KEY": generate_key()}


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / ".kplan" / "state.db")


def rec(address: str, **attrs: object) -> ResourceRecord:
    return ResourceRecord.from_addr(
        address, provider="docker", attributes=dict(attrs), dependencies=("secret_password.db",)
    )


def run_python(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
    )


def test_round_trip_nested_attributes_and_secrets(db: str, env: dict[str, str]) -> None:
    r = ResourceRecord.from_addr(
        'module.keystone["ctl1"].docker_container.api[0]',
        provider="docker",
        host="ctl1",
        attributes={
            "image": "keystone:zed",
            "env": {"PASSWORD": Secret(SECRET), "N": 3},
            "mounts": [{"src": "/etc/k", "ro": True}, {"key": Secret({"pem": "K"})}],
        },
        dependencies=("secret_password.db", "module.mariadb.docker_container.db"),
    )
    assert r.module == 'module.keystone["ctl1"]' and r.index_key == 0
    with StateStore.open(db, environ=env) as store:
        store.put(r)
        store.put(rec('tls_cert.x["a b"]', n=1))
    with StateStore.open(db, environ=env) as store:
        got = store.resources()
        assert list(got) == sorted(got)
        assert got[r.address] == r
        assert got[r.address].attributes["env"]["PASSWORD"].reveal() == SECRET
        assert got['tls_cert.x["a b"]'].index_key == "a b"
        assert store.get(r.address) == r
        assert store.get("nope.x") is None


def test_serial_and_lineage(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        lineage = store.lineage
        assert store.serial == 0
        store.put(rec("a.b", v=1))
        store.put(rec("a.b", v=2))
        assert store.serial == 2
        store.delete("a.b")
        assert store.serial == 3
        store.delete("a.b")  # nothing to delete: no change
        assert store.serial == 3
        store.put_many([rec("a.c"), rec("a.d")])
        assert store.serial == 4
        assert set(store.resources()) == {"a.c", "a.d"}
    with StateStore.open(db, environ=env) as store:
        assert store.lineage == lineage
        assert store.serial == 4


def test_move_is_one_change(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        store.put(rec("a.b", pw=Secret(SECRET)))
        old = store.get("a.b")
        assert old is not None
        moved = ResourceRecord.from_addr(
            "module.m.a.b", provider=old.provider, attributes=old.attributes
        )
        store.move("a.b", moved)
        assert store.serial == 2
        assert store.resources() == {"module.m.a.b": moved}


def test_a_targeted_read_takes_the_blocks_asked_of_each_module_instance(
    db: str, env: dict[str, str]
) -> None:
    addrs = [
        "secret_password.db",
        'module.node["h1"].docker_container.svc',
        'module.node["h1"].host_file.conf',
        'module.node["h1"].module.inner.host_file.conf',
        'module.node["h10"].host_file.conf',  # a prefix of h1's name, not inside it
        'module.node["h2"].host_file.conf',
    ]
    with StateStore.open(db, environ=env) as store:
        store.put_many([rec(a) for a in addrs])
        h1 = 'module.node["h1"]'

        def read(modules: dict[str, set[tuple[str, ...]] | None]) -> list[str]:
            return list(store.resources(blocks={("secret_password", "db")}, modules=modules))

        assert read({h1: None}) == [addrs[1], addrs[2], addrs[3], addrs[0]]
        assert read({h1: {("host_file", "conf")}}) == [addrs[2], addrs[3], addrs[0]]
        assert read({h1: set()}) == [addrs[0]]
        assert read({}) == [addrs[0]]
        assert list(store.resources(blocks=set(), modules={h1: None})) == addrs[1:4]
        assert list(store.resources(blocks=set(), modules={})) == []


def test_a_module_read_touches_only_that_module_s_rows(db: str, env: dict[str, str]) -> None:
    # -target of one host's module at 1,000 hosts: the read must be a range of the
    # primary key, not a scan of every row (a LIKE on the module column was: 36 ms
    # at 100,000 resources).
    with StateStore.open(db, environ=env) as store:
        store.put_many([rec(f'module.node["h{i}"].host_file.conf') for i in range(3)])
        modules = {'module.node["h1"]': None, 'module.node["h2"]': {("host_file", "conf")}}
        with query_plans(store._backend.engine, "ORDER BY resources.address") as plans:
            assert list(store.resources(blocks=set(), modules=modules)) == [
                'module.node["h1"].host_file.conf',
                'module.node["h2"].host_file.conf',
            ]
    details = plans[0]
    assert all("SCAN" not in d for d in details), details
    assert any("address>? AND address<?" in d for d in details), details


def test_secret_box_seals_for_the_state(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        token = store.secret_box.encrypt(b"plan secret", b"planfile")
    with StateStore.open(db, environ=env) as store:
        assert store.secret_box.decrypt(token, b"planfile") == b"plan secret"
    other = StateStore.open(db, environ={"KPLAN_STATE_KEY": generate_key()})
    with other, pytest.raises(KplanError, match="wrong state key"):
        other.secret_box.decrypt(token, b"planfile")


def test_unknown_is_never_stored(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        with pytest.raises(ValueError, match=r"a\.b: an unknown value"):
            store.put(rec("a.b", id=UNKNOWN))
        assert store.serial == 0
        assert store.resources() == {}


def test_outputs_and_meta(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        store.set_outputs({"url": "http://x", "admin": Secret(SECRET), "l": (1, 2)})
        assert store.serial == 1
        store.set_outputs({"url": "http://x", "admin": Secret(SECRET), "l": [1, 2]})
        assert store.serial == 1  # unchanged: no write
        out = store.outputs()
        assert out == {"url": "http://x", "admin": Secret(SECRET), "l": [1, 2]}
        assert isinstance(out["admin"], Secret)
        assert store.get_meta("hostkey.ctl1") is None
        store.set_meta("hostkey.ctl1", "ssh-ed25519 AAAA")
        store.set_meta("hostkey.ctl1", "ssh-ed25519 BBBB")
        assert store.get_meta("hostkey.ctl1") == "ssh-ed25519 BBBB"
        with pytest.raises(ValueError):
            store.set_meta("kplan.state.key_check", "x")


def test_workspaces(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        store.put(rec("a.b"))
        store.create_workspace("staging")
        with pytest.raises(KplanError, match="already exists"):
            store.create_workspace("staging")
        with pytest.raises(KplanError, match="invalid workspace"):
            store.create_workspace("../x")
        assert store.workspaces() == ["default", "staging"]
        with pytest.raises(KplanError, match="cannot delete"):
            store.delete_workspace("default")
    with StateStore.open(db, workspace="staging", environ=env, create=False) as st:
        assert st.resources() == {}
        assert st.lineage != store.lineage
        st.put(rec("a.b", pw=Secret(SECRET)))
    with StateStore.open(db, environ=env) as store:
        with pytest.raises(KplanError, match="still has 1 resources"):
            store.delete_workspace("staging")
        store.delete_workspace("staging", force=True)
        assert store.workspaces() == ["default"]
        assert list(store.resources()) == ["a.b"]
    with pytest.raises(KplanError, match="does not exist"):
        StateStore.open(db, workspace="prod", environ=env, create=False)


def test_missing_state_without_create(db: str, env: dict[str, str]) -> None:
    with pytest.raises(KplanError, match="no state file"):
        StateStore.open(db, environ=env, create=False)
    assert not Path(db).exists()


def test_state_file_holds_no_plaintext_secret(db: str, env: dict[str, str]) -> None:
    needles = [SECRET.encode(), base64.b64encode(SECRET.encode()), SECRET.encode("utf-16-le")]
    with StateStore.open(db, environ=env) as store:
        store.put(rec("a.b", pw=Secret(SECRET), nested={"x": [Secret(SECRET)]}))
        store.set_outputs({"admin_password": Secret(SECRET)})
        store.put(rec("a.b", pw=Secret(SECRET + "2")))  # old page contents are rewritten
        files = [Path(db), Path(db + "-wal"), Path(db + "-shm")]
        assert Path(db + "-wal").exists()  # checked while open as well
        for path in files:
            data = path.read_bytes() if path.exists() else b""
            assert not any(n in data for n in needles), path
    for path in files:
        data = path.read_bytes() if path.exists() else b""
        assert not any(n in data for n in needles), path
    assert Path(db).stat().st_size > 0


def test_wrong_key_is_refused_clearly(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        store.put(rec("a.b", pw=Secret(SECRET)))
        store.put(rec("a.c", plain=1))
    other = {"KPLAN_STATE_KEY": generate_key()}
    with StateStore.open(db, environ=other) as store:
        assert store.get("a.c") is not None  # no secret, no key needed
        with pytest.raises(KplanError, match="wrong state key") as err:
            store.resources()
        assert "KPLAN_STATE_KEY" in str(err.value)
    # No key at all: the default key file would be created only for a new state.
    with StateStore.open(db, environ={}) as store, pytest.raises(KplanError, match=r"state\.key"):
        store.resources()
    assert not (Path(db).parent / "state.key").exists()


def test_passphrase_mode(db: str) -> None:
    env = {"KPLAN_STATE_PASSPHRASE": "correct horse battery staple"}
    with StateStore.open(db, environ=env) as store:
        store.put(rec("a.b", pw=Secret(SECRET)))
    with StateStore.open(db, environ=env) as store:
        assert store.resources()["a.b"].attributes["pw"].reveal() == SECRET
    with StateStore.open(db, environ={"KPLAN_STATE_PASSPHRASE": "wrong"}) as store:
        with pytest.raises(KplanError, match="wrong state key") as err:
            store.resources()
        assert "KPLAN_STATE_PASSPHRASE" in str(err.value)
    assert not (Path(db).parent / "state.key").exists()


def test_default_key_file(db: str) -> None:
    with StateStore.open(db, environ={}) as store:
        store.put(rec("a.b", pw=Secret(SECRET)))
    key = Path(db).parent / "state.key"
    assert key.stat().st_mode & 0o077 == 0
    with StateStore.open(db, environ={}) as store:
        assert store.resources()["a.b"].attributes["pw"] == Secret(SECRET)
    with StateStore.open(db, environ={"KPLAN_STATE_KEY_FILE": str(key)}) as store:
        assert store.resources()["a.b"].attributes["pw"] == Secret(SECRET)


def test_not_a_state_file(tmp_path: Path, env: dict[str, str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(KplanError, match="is not a kplan state database"):
        StateStore.open(str(junk), environ=env)
    other = tmp_path / "other.db"
    import sqlite3

    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(KplanError, match="is not a kplan state database"):
        StateStore.open(str(other), environ=env)


def test_newer_schema_is_refused(db: str, env: dict[str, str]) -> None:
    StateStore.open(db, environ=env).close()
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = '0099'")
    con.commit()
    con.close()
    with pytest.raises(KplanError, match=r"newer than this kplan \(schema revision 0099\)"):
        StateStore.open(db, environ=env)


def test_unsupported_url(env: dict[str, str]) -> None:
    with pytest.raises(KplanError, match="unsupported state backend"):
        StateStore.open("mysql://x/y", environ=env)


def test_history_lifecycle(db: str, env: dict[str, str]) -> None:
    with StateStore.open(db, environ=env) as store:
        before = datetime.now(UTC)
        first = store.begin_run("apply", "Plan: 2 to add")
        (entry,) = store.history()
        assert entry.serial == first and entry.outcome == "running"
        assert entry.operation == "apply" and entry.summary == "Plan: 2 to add"
        assert entry.started_at >= before.replace(microsecond=0)
        assert entry.started_at.tzinfo is not None and entry.finished_at is None
        store.finish_run(first, "failed", "1 added, 1 failed")
        with pytest.raises(KplanError):
            store.finish_run(first, "success", "again")
        with pytest.raises(ValueError):
            store.finish_run(first, "running", "x")
    # A run whose process died without finishing shows as interrupted.
    child = run_python(
        f"""
        from kplan.state.store import StateStore
        s = StateStore.open({db!r})
        print(s.begin_run("apply", "Plan: 1 to add"), flush=True)
        import time; time.sleep(60)
        """,
        env,
    )
    assert child.stdout is not None
    serial = int(child.stdout.readline())
    with StateStore.open(db, environ=env) as store:
        assert store.history()[-1].outcome == "running"
        child.send_signal(signal.SIGKILL)
        child.wait()
        entries = store.history()
    assert [e.serial for e in entries] == [first, serial]
    assert entries[0].outcome == "failed" and entries[0].finished_at is not None
    assert entries[0].summary == "1 added, 1 failed"
    assert entries[1].outcome == "interrupted"


def test_each_put_is_committed_before_a_kill(db: str, env: dict[str, str]) -> None:
    child = run_python(
        f"""
        from kplan.state.store import StateStore, ResourceRecord
        from kplan.values import Secret
        s = StateStore.open({db!r})
        for i in range(3):
            s.put(ResourceRecord.from_addr(f"a.b[{{i}}]", provider="p",
                                           attributes={{"pw": Secret("x")}}))
            print(i, flush=True)
        import time; time.sleep(60)
        """,
        env,
    )
    assert child.stdout is not None
    for _ in range(3):
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    with StateStore.open(db, environ=env) as store:
        assert list(store.resources()) == ["a.b[0]", "a.b[1]", "a.b[2]"]
        assert store.serial == 3


def test_ten_thousand_rows_round_trip(db: str, env: dict[str, str]) -> None:
    records = [
        ResourceRecord.from_addr(
            f'module.m["h{i % 50}"].docker_container.c[{i}]',
            provider="docker",
            host=f"h{i % 50}",
            attributes={"image": "x:1", "ports": [i, i + 1], "env": {"A": str(i)}}
            | ({"pw": Secret(f"p{i}")} if i % 10 == 0 else {}),
            dependencies=(f"secret_password.p{i % 7}",),
        )
        for i in range(10_000)
    ]
    with StateStore.open(db, environ=env) as store:
        store.put_many(records)
    start = time.perf_counter()
    with StateStore.open(db, environ=env) as store:
        got = store.resources()
    elapsed = time.perf_counter() - start
    assert len(got) == 10_000
    assert got == {r.address: r for r in records}
    print(f"10,000 resources loaded in {elapsed:.3f}s")


def test_open_of_current_db_skips_alembic(db: str, env: dict[str, str]) -> None:
    StateStore.open(db, environ=env).close()
    code = f"""
        import sys, time
        from kplan.state.store import StateStore
        t = time.perf_counter()
        StateStore.open({db!r}).close()
        print(time.perf_counter() - t, "alembic" in sys.modules)
    """
    child = run_python(code, env)
    out, _ = child.communicate(timeout=60)
    seconds, imported = out.split()
    assert imported == "False"
    print(f"open took {float(seconds) * 1000:.1f} ms")
