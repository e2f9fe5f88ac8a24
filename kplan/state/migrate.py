"""Bring a state database to the newest schema with Alembic, run programmatically.

The Alembic scripts live in the repository's top-level ``state/migrations``,
installed as the package data of ``kplan_state``; Alembic finds them through
``importlib.resources`` (the location ``kplan_state:migrations``), never
through an ``alembic.ini`` in the working directory or a checkout's path.
The fast path reads ``alembic_version`` and stops when it is the head
revision, so opening an up-to-date state never imports Alembic.

On PostgreSQL the upgrade first takes a transaction-level advisory lock
(released at commit or rollback), so two kplans opening a new database at
once do not both create the tables: the second waits, then finds the schema
current. On SQLite the caller holds the state's file lock instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.schema import HEAD_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS", "alembic_config", "head_revision", "schema_revision", "upgrade"]

# An Alembic "package:resource" location: found through importlib.resources.
MIGRATIONS: Final = "kplan_state:migrations"
_VERSION_TABLE: Final = "alembic_version"
# pg_advisory_xact_lock key of schema upgrades; a workspace lock hashes "kplan:<name>".
MIGRATION_LOCK_NAME: Final = "kplan-schema-upgrade"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for the state migrations (no ini file involved)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The head revision as Alembic computes it from the scripts (tests compare it)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no Alembic revisions under " + MIGRATIONS)
    return head


def schema_revision(engine: Engine) -> str | None:
    """The revision a database is at, or None when it has no alembic_version table."""
    try:
        with engine.connect() as conn:
            row = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).first()
    except (OperationalError, ProgrammingError) as exc:
        if "no such table" in str(exc.orig) or "does not exist" in str(exc.orig):
            return None
        raise
    return None if row is None else str(row[0])


def is_current(engine: Engine) -> bool:
    return schema_revision(engine) == HEAD_REVISION


def _known(rev: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return script.get_revision(rev) is not None
    except CommandError:
        return False


def upgrade(engine: Engine, description: str) -> None:
    """Upgrade to head in one transaction; refuse foreign or newer databases."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            from kplan.state.postgres import advisory_key

            conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"),
                {"key": advisory_key(MIGRATION_LOCK_NAME)},
            )
        tables = set(inspect(conn).get_table_names())
        if tables and _VERSION_TABLE not in tables:
            raise not_a_state(description)
        row = None
        if _VERSION_TABLE in tables:
            row = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).first()
        if row is not None and not _known(str(row[0])):
            if "workspaces" not in tables:
                raise not_a_state(description)
            raise KplanError(
                Diagnostic.error(
                    f"{description} is newer than this kplan (schema revision {row[0]})",
                    f"This kplan knows schema revisions up to {HEAD_REVISION}. "
                    "Upgrade kplan to use this state.",
                    code="state-too-new",
                )
            )
        command.upgrade(alembic_config(conn), "head")


def not_a_state(description: str) -> KplanError:
    return KplanError(
        Diagnostic.error(
            f"{description} is not a kplan state database",
            "Point kplan at its own state file (default .kplan/state.db), or move this file away.",
            code="state-not-kplan",
        )
    )
