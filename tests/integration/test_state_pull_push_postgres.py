"""Resource versions, pull and push on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from kplan.diagnostics import KplanError
from kplan.state import migrate
from kplan.state.crypto import generate_key
from kplan.state.store import ResourceRecord, StateStore
from kplan.values import Secret

from .conftest import PgServer

SECRET = "pg-pu5h-s3cr3t"


def rec(address: str, **attrs: Any) -> ResourceRecord:
    return ResourceRecord.from_addr(address, provider="builtin", attributes=attrs, host="ctl1")


def test_versions_on_postgresql(pg_server: PgServer, pg_url: str, pg_env: dict[str, str]) -> None:
    many = [rec(f"a.b[{i}]", n=i, pw=Secret(f"{SECRET}{i}")) for i in range(2100)]
    with StateStore.open(pg_url, environ=pg_env) as store:
        store.put_many(many)  # copied into the versions inside the database
        store.put(rec("a.b[5]", n=-5))
        store.delete("a.b[6]")
        store.move("a.b[7]", rec("a.c", n=7))
        assert store.resources_at(1) == {r.address: r for r in many}
        assert store.get_at("a.b[5]", 2) == rec("a.b[5]", n=-5)
        assert store.get_at("a.b[6]", 2) is not None and store.get_at("a.b[6]", 3) is None
        assert store.resources_at(4) == store.resources()
        with pytest.raises(KplanError, match="has no serial 5"):
            store.get_at("a.c", 5)
    with pg_server.admin(pg_url.rsplit("/", 1)[1]) as conn:
        (n,) = conn.execute("SELECT count(*) FROM resource_versions").fetchone()
        assert n == 2100 + 1 + 1 + 2
        found = conn.execute(
            "SELECT count(*) FROM resource_versions WHERE attributes LIKE %s", (f"%{SECRET}%",)
        ).fetchone()
        assert found == (0,)


def test_upgrade_from_0002_on_postgresql(
    pg_server: PgServer, pg_url: str, pg_env: dict[str, str]
) -> None:
    from alembic import command

    engine = create_engine(
        pg_url.replace("postgresql://", "postgresql+psycopg://"),
        connect_args={"password": pg_server.password},
    )
    try:
        with engine.begin() as conn:
            command.upgrade(migrate.alembic_config(conn), "0002")
            conn.execute(
                text(
                    "INSERT INTO workspaces (name, lineage, serial, created_at) "
                    "VALUES ('default', 'lin-pg', 4, now())"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO resources SELECT id, 'a.x', '', 'a', 'x', NULL, 'builtin', "
                    "NULL, :attrs, false, '[]', 3 FROM workspaces"
                ),
                {"attrs": '{"n":1}'},
            )
    finally:
        engine.dispose()
    with StateStore.open(pg_url, environ=pg_env) as store:
        assert store.resources_at(4) == store.resources() != {}
        with pytest.raises(KplanError, match="only its current serial 4"):
            store.resources_at(3)
        store.put(rec("a.x", n=2))
        assert store.get_at("a.x", 4).attributes == {"n": 1}  # type: ignore[union-attr]


def test_pull_from_sqlite_push_into_postgresql(
    pg_server: PgServer, pg_url: str, pg_env: dict[str, str], tmp_path: Path
) -> None:
    key = {"KPLAN_STATE_KEY": pg_env["KPLAN_STATE_KEY"]}
    with StateStore.open(str(tmp_path / "a.db"), environ=key) as src:
        src.put(rec("a.pw", value=Secret(SECRET)))
        src.put(rec("a.pw", value=Secret(SECRET + "2")))
        src.delete("a.pw")
        src.put(rec("a.x", pw=Secret(SECRET)))
        src.set_outputs({"pw": Secret(SECRET)})
        pulled, want = src.pull(), src.content_checksum()
    assert SECRET not in pulled

    wrong = {**pg_env, "KPLAN_STATE_KEY": generate_key()}
    with StateStore.open(pg_url, environ=wrong) as dst:
        dst.put(rec("a.mine", pw=Secret("x")))
        before = dst.serial, dst.content_checksum()
        with pytest.raises(KplanError, match="sealed with another state key"):
            dst.push(pulled, source="a.json", force=True)
        assert (dst.serial, dst.content_checksum()) == before

    fresh = pg_server.new_database()
    with StateStore.open(fresh, environ=pg_env) as dst:
        dst.push(pulled, source="a.json")
        assert dst.content_checksum() == want
        assert dst.get("a.x") == rec("a.x", pw=Secret(SECRET))
        assert dst.get_at("a.pw", 2) == rec("a.pw", value=Secret(SECRET + "2"))
        assert dst.outputs() == {"pw": Secret(SECRET)}
