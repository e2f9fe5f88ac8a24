"""The state schema: Alembic migrations match schema.py and run without an ini file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from kplan.state import migrate, schema
from kplan.state.crypto import generate_key
from kplan.state.store import StateStore
from tests.unit.sqlite_plans import query_plans


@pytest.fixture
def fresh_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Run from a directory without alembic.ini: nothing may depend on the cwd.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sub" / "state.db"
    StateStore.open(str(path), environ={"KPLAN_STATE_KEY": generate_key()}).close()
    return path


def test_head_revision_constant_matches_scripts() -> None:
    assert migrate.head_revision() == schema.HEAD_REVISION


def test_fresh_db_is_at_head(fresh_db: Path) -> None:
    engine = create_engine(f"sqlite:///{fresh_db}")
    try:
        assert migrate.schema_revision(engine) == schema.HEAD_REVISION
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_migrated_tables_match_schema(fresh_db: Path) -> None:
    engine = create_engine(f"sqlite:///{fresh_db}")
    try:
        insp = inspect(engine)
        tables = set(insp.get_table_names()) - {"alembic_version"}
        assert tables == set(schema.metadata.tables)
        for name, table in schema.metadata.tables.items():
            reflected = {c["name"]: c for c in insp.get_columns(name)}
            assert list(reflected) == [c.name for c in table.columns], name
            for col in table.columns:
                assert reflected[col.name]["nullable"] == col.nullable, (name, col.name)
            pk = insp.get_pk_constraint(name)
            assert pk["constrained_columns"] == [c.name for c in table.primary_key], name
    finally:
        engine.dispose()


def test_alembic_autogenerate_sees_no_difference(fresh_db: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(f"sqlite:///{fresh_db}")
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_config_needs_no_ini_file(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    cfg = migrate.alembic_config()
    assert cfg.config_file_name is None
    # A package resource, not a path: found through importlib.resources, from a wheel too
    # (scripts/wheel_check.py); in a checkout it is the top-level state/migrations.
    assert cfg.get_main_option("script_location") == "kplan_state:migrations"
    found = Path(ScriptDirectory.from_config(cfg).dir)
    assert os.path.isabs(found)
    assert found == Path(__file__).resolve().parents[2] / "state" / "migrations"


def test_old_db_without_tables_is_upgraded(tmp_path: Path) -> None:
    # An empty file (e.g. touched by a user) is treated as a new state.
    path = tmp_path / "state.db"
    path.touch()
    with StateStore.open(str(path), environ={"KPLAN_STATE_KEY": generate_key()}) as store:
        assert store.serial == 0


def test_the_key_proof_reads_only_the_rows_with_secrets(fresh_db: Path) -> None:
    # A state without a key check proves a key on one sealed value: the query that
    # finds it must use the partial index, not read every row of the workspace.
    env = {"KPLAN_STATE_KEY": generate_key()}
    with (
        StateStore.open(str(fresh_db), environ=env) as store,
        query_plans(store._backend.engine, "has_secrets") as plans,
    ):
        assert store._sealed_sample() is None
    details = plans[0]
    assert "USING INDEX ix_resources_sealed" in " ".join(details), details
