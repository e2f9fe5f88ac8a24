"""The PostgreSQL state backend against a real server: schema, content, secrets, copies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from kplan.diagnostics import KplanError
from kplan.state import migrate, schema
from kplan.state.crypto import generate_key
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import Secret

from .conftest import PgServer

SECRET = "pg-s3cr3t-XYZ"


def rec(address: str, **attrs: Any) -> ResourceRecord:
    return ResourceRecord.from_addr(
        address, provider="docker", host="ctl1", attributes=attrs, dependencies=("a.dep",)
    )


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_fresh_database_is_migrated_to_head(pg_server: PgServer, pg_url: str) -> None:
    env = {"KPLAN_PG_PASSWORD": pg_server.password}
    with StateStore.open(pg_url, environ=env) as store:
        assert store.serial == 0 and store.workspaces() == ["default"]
        assert store.description == f"PostgreSQL state {pg_url}"
    engine = create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://"),
        connect_args={"password": pg_server.password},
    )
    try:
        assert migrate.schema_revision(engine) == schema.HEAD_REVISION == "0004"
        insp = inspect(engine)
        assert set(insp.get_table_names()) - {"alembic_version"} == set(schema.metadata.tables)
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), schema.metadata) == []
    finally:
        engine.dispose()


def test_first_openers_do_not_race(pg_url: str, pg_env: dict[str, str], spawn: Any) -> None:
    code = f"""
        from kplan.state.store import StateStore
        with StateStore.open({pg_url!r}) as s:
            print(s.lineage, s.workspaces(), flush=True)
    """
    children = [spawn(code, pg_env) for _ in range(4)]
    outs = [c.communicate(timeout=60) for c in children]
    assert [c.returncode for c in children] == [0] * 4, [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1  # one default workspace, one lineage


def test_round_trip_with_secrets(pg_server: PgServer, pg_url: str, pg_env: dict[str, str]) -> None:
    r = ResourceRecord.from_addr(
        'module.keystone["ctl1"].docker_container.api[0]',
        provider="docker",
        host="ctl1",
        attributes={"env": {"PASSWORD": Secret(SECRET), "N": 3}, "l": [{"k": Secret({"a": 1})}]},
        dependencies=("secret_password.db",),
    )
    with StateStore.open(pg_url, environ=pg_env) as store:
        store.put(r)
        store.put_many([rec('tls_cert.x["a b"]', n=1), rec("a.b", n=2)])
        store.delete("a.b")
        store.set_outputs({"admin": Secret(SECRET), "url": "http://x"})
        serial = store.begin_run("apply", "Plan: 2 to add")
        store.finish_run(serial, "success", "2 added")
        assert store.serial == 4
    with StateStore.open(pg_url, environ=pg_env, create=False) as store:
        got = store.resources()
        assert list(got) == sorted([r.address, 'tls_cert.x["a b"]'])
        assert got[r.address] == r and got['tls_cert.x["a b"]'].index_key == "a b"
        assert store.outputs() == {"admin": Secret(SECRET), "url": "http://x"}
        (entry,) = store.history()
        assert (entry.outcome, entry.summary, entry.started_at.tzinfo is not None) == (
            "success",
            "2 added",
            True,
        )
    # No plaintext secret anywhere in the database.
    with pg_server.admin(dbname(pg_url)) as conn:
        texts = conn.execute(
            "SELECT attributes FROM resources UNION ALL SELECT value FROM outputs "
            "UNION ALL SELECT value FROM meta"
        ).fetchall()
    assert texts and not any(SECRET in t for (t,) in texts)


def test_serial_bumps_are_race_free(pg_url: str, pg_env: dict[str, str], spawn: Any) -> None:
    StateStore.open(pg_url, environ=pg_env).close()
    code = """
        from kplan.state.store import StateStore, ResourceRecord
        me = {me!r}
        with StateStore.open({url!r}) as s:
            for i in range(40):
                s.put(ResourceRecord.from_addr(f"a.{{me}}[{{i}}]", provider="p"))
                s.finish_run(s.begin_run("apply", me), "success", me)
        print("done", flush=True)
    """
    children = [spawn(code.format(me=m, url=pg_url), pg_env) for m in ("x", "y", "z")]
    for child in children:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
    with StateStore.open(pg_url, environ=pg_env) as store:
        assert len(store.resources()) == 120
        assert store.serial == 120
        assert [e.serial for e in store.history()] == list(range(1, 121))


def test_password_sources_and_masking(
    pg_server: PgServer, pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pw = pg_server.password
    key = {"KPLAN_STATE_KEY": generate_key()}
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    messages: list[str] = []
    with_pw = pg_url.replace("://kplan@", f"://kplan:{pw}@")
    for url, env in [
        (with_pw, key),
        (pg_url, {**key, "KPLAN_PG_PASSWORD": pw}),
        (pg_url, {**key, "PGPASSWORD": pw}),
        (pg_url.replace("postgresql://", "postgresql+psycopg://"), {**key, "PGPASSWORD": pw}),
    ]:
        with StateStore.open(url, environ=env) as store:
            store.put(rec("a.b", pw=Secret(SECRET)))
            messages += [store.description, repr(store._backend.engine)]
    wrong = with_pw.replace(pw, pw + "-wrong")
    for url, env in [(wrong, key), (pg_url, {**key, "KPLAN_PG_PASSWORD": pw + "-wrong"})]:
        with pytest.raises(KplanError, match="cannot log in to PostgreSQL state") as err:
            StateStore.open(url, environ=env)
        assert err.value.diagnostics[0].code == "state-auth"
        messages.append(str(err.value))
    with pytest.raises(KplanError, match="cannot log in") as err:
        StateStore.open(pg_url, environ=key)  # no password at all
    messages.append(str(err.value))
    missing = with_pw.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(KplanError, match="cannot open PostgreSQL state") as err:
        StateStore.open(missing, environ=key)
    messages.append(str(err.value))
    assert "postgresql://kplan:***@127.0.0.1" in messages[0]
    assert messages[1].count("***") == 1
    for text in messages:
        assert pw not in text, text
        assert "-wrong" not in text, text


def test_default_key_file_is_in_the_working_folder(
    pg_server: PgServer, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"KPLAN_PG_PASSWORD": pg_server.password}
    with StateStore.open(pg_url, environ=env) as store:
        store.put(rec("a.b", pw=Secret(SECRET)))
    key = tmp_path / ".kplan" / "state.key"
    assert key.stat().st_mode & 0o077 == 0
    with StateStore.open(pg_url, environ=env) as store:
        assert store.resources()["a.b"].attributes["pw"] == Secret(SECRET)
    # From another folder without the key: refused, naming where the key was looked for.
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    missing_key = re.escape(str(other / ".kplan" / "state.key"))
    with (
        StateStore.open(pg_url, environ=env) as store,
        pytest.raises(KplanError, match=missing_key),
    ):
        store.resources()
    assert not (other / ".kplan").exists()
    with StateStore.open(pg_url, environ={**env, "KPLAN_STATE_KEY_FILE": str(key)}) as store:
        assert store.get("a.b") is not None


def _fill(store: StateStore) -> None:
    store.put_many([rec(f"docker_container.c[{i}]", i=i) for i in range(5)])
    store.put(rec("secret_password.db", value=Secret(SECRET), nested={"k": [Secret(1)]}))
    run = store.begin_run("apply", "Plan: 6 to add")
    store.finish_run(run, "success", "6 added")
    store.begin_run("apply", "Plan: 1 to change")  # left running (still alive: this process)
    store.set_outputs({"admin": Secret(SECRET), "n": 6})
    store.set_meta("hostkey.ctl1", "ssh-ed25519 AAAA")


def _content(store: StateStore) -> dict[str, Any]:
    out = {}
    for ws in store.workspaces():
        with StateStore.open(store._url, workspace=ws, environ=store._env) as st:
            out[ws] = (st.lineage, st.serial, st.resources(), st.outputs(), st.history())
    return out


def test_copy_sqlite_postgres_sqlite(
    pg_server: PgServer, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = [{"KPLAN_STATE_KEY": generate_key(), "KPLAN_PG_PASSWORD": pg_server.password}]
    envs += [{**envs[0], "KPLAN_STATE_KEY": generate_key()} for _ in range(2)]
    first, last = str(tmp_path / "a" / "state.db"), str(tmp_path / "b" / "state.db")
    stores = []
    for url, env in zip((first, pg_url, last), envs, strict=True):
        store = StateStore.open(url, environ=env)
        store._url, store._env = url, env  # type: ignore[attr-defined]
        stores.append(store)
    src, mid, dst = stores
    try:
        _fill(src)
        src.create_workspace("staging")
        with StateStore.open(first, workspace="staging", environ=envs[0]) as staging:
            _fill(staging)
            staging.delete("docker_container.c[0]")
        checksum = src.content_checksum()
        assert src.copy_to(mid) == checksum
        assert mid.content_checksum() == checksum
        assert mid.copy_to(dst) == checksum
        assert dst.content_checksum() == checksum
        assert _content(src) == _content(mid) == _content(dst)
        assert dst.get_meta("hostkey.ctl1") == "ssh-ed25519 AAAA"
        assert (dst.lineage, dst.serial) == (src.lineage, src.serial)
        # Re-sealed under each store's own key: the source key cannot read the copy.
        with StateStore.open(last, environ=envs[0]) as wrong, pytest.raises(KplanError):
            wrong.resources()
        with pg_server.admin(dbname(pg_url)) as conn:
            (n,) = conn.execute("SELECT count(*) FROM resources WHERE has_secrets").fetchone()
            assert n == 2
        # A secret change shows in the checksum; its plaintext never does.
        mid.put(rec("secret_password.db", value=Secret(SECRET + "!"), nested={"k": [Secret(1)]}))
        assert mid.content_checksum() != checksum
        assert SECRET not in str(mid.export_state())
    finally:
        for store in stores:
            store.close()


def test_import_refuses_older_serial_and_other_lineage(
    pg_url: str, pg_env: dict[str, str], tmp_path: Path
) -> None:
    with StateStore.open(pg_url, environ=pg_env) as store:
        store.put(rec("a.b", n=1))
        old = store.export_state()
        store.put(rec("a.b", n=2))
        with pytest.raises(KplanError, match="serial 2, newer than 1"):
            store.import_state(old)
        assert store.get("a.b") == rec("a.b", n=2)
        store.import_state(old, force=True)
        assert (store.serial, store.get("a.b")) == (1, rec("a.b", n=1))
        same_serial = store.export_state()
        same_serial["workspaces"]["default"]["resources"]["a.b"]["attributes"] = {"n": 9}
        with pytest.raises(KplanError, match="same serial 1 with other content"):
            store.import_state(same_serial)
        store.import_state(store.export_state())  # the same content again: fine
    with StateStore.open(str(tmp_path / "other.db"), environ=pg_env) as other:
        other.put(rec("x.y"))
        with pytest.raises(KplanError, match="lineage") as err:
            other.import_state(old)
        assert err.value.diagnostics[0].code == "state-push-refused"
    with pytest.raises(KplanError, match="format_version"):
        StateStore.open(pg_url, environ=pg_env).import_state({"workspaces": {}})


def test_not_a_kplan_database(pg_server: PgServer, pg_url: str) -> None:
    with pg_server.admin(dbname(pg_url)) as conn:
        conn.execute("CREATE TABLE someone_elses (x int)")
    with pytest.raises(KplanError, match="is not a kplan state database"):
        StateStore.open(pg_url, environ={"KPLAN_PG_PASSWORD": pg_server.password})
    with pytest.raises(KplanError, match="no PostgreSQL state"):
        StateStore.open(
            pg_server.new_database(),
            environ={"KPLAN_PG_PASSWORD": pg_server.password},
            create=False,
        )


def test_psycopg_is_the_driver(pg_server: PgServer, pg_url: str) -> None:
    with StateStore.open(pg_url, environ={"KPLAN_PG_PASSWORD": pg_server.password}) as store:
        assert store._backend.engine.dialect.driver == "psycopg"
        assert psycopg.__version__.startswith("3.")
