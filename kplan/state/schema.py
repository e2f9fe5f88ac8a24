"""The state schema as SQLAlchemy Core tables (the ones migrations 0001-0004 create).

Portable types only (SQLite and PostgreSQL run the same migrations). JSON is kept as text the
codec writes; times are UTC. Changing a table here needs a new Alembic
revision under ``state/migrations/versions`` (top level) and a new :data:`HEAD_REVISION`.

    meta        key -> value: small global values (salt, key check, host keys)
    workspaces  name, lineage (uuid4) and serial of each workspace
    resources   one row per resource instance, PK (workspace_id, address); the
                partial index ix_resources_sealed holds the rows with secrets
    history     append-only record of runs, PK (workspace_id, serial); state_serial
                is the workspace serial when the run ended
    resource_versions
                append-only: every version of every resource, PK (workspace_id,
                address, serial) where serial is the workspace serial that wrote
                it; columns as in resources (secrets sealed the same way), all
                NULL but the key on a tombstone (the resource was deleted)
    outputs     root module outputs, PK (workspace_id, name)
    locks       who holds each workspace's lock (PostgreSQL writes it; SQLite
                keeps the holder in its lock file), PK workspace name
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = [
    "HEAD_REVISION",
    "history",
    "locks",
    "meta",
    "metadata",
    "outputs",
    "resource_versions",
    "resources",
    "workspaces",
]

# The newest Alembic revision; StateStore.open skips Alembic when a db is at it.
HEAD_REVISION: Final = "0004"

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

meta = Table(
    "meta",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("lineage", String(36), nullable=False),
    Column("serial", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # The oldest serial whose resources resource_versions can rebuild (0: every one).
    Column("versions_from", Integer, nullable=False, default=0, server_default="0"),
)


def _workspace_fk() -> Column[int]:
    return Column(
        "workspace_id",
        Integer,
        ForeignKey("workspaces.id", ondelete="CASCADE"),
        nullable=False,
    )


resources = Table(
    "resources",
    metadata,
    _workspace_fk(),
    Column("address", String(1024), nullable=False),
    Column("module", String(1024), nullable=False),
    Column("type", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("index_key", Text, nullable=True),
    Column("provider", String(255), nullable=False),
    Column("host", String(255), nullable=True),
    Column("attributes", Text, nullable=False),
    Column("has_secrets", Boolean, nullable=False, default=False),
    Column("dependencies", Text, nullable=False),
    Column("updated_serial", Integer, nullable=False),
    PrimaryKeyConstraint("workspace_id", "address"),
    # Finds a sealed value to prove the key on without reading every row. Partial
    # (WHERE has_secrets): migration 0004 writes each dialect's predicate. Not said
    # here: a `postgresql_where` makes SQLAlchemy import the PostgreSQL dialect
    # into every command, SQLite's included (19 ms of a 0.5 s start).
    Index("ix_resources_sealed", "workspace_id"),
)

history = Table(
    "history",
    metadata,
    _workspace_fk(),
    Column("serial", Integer, nullable=False),
    Column("operation", String(64), nullable=False),
    Column("user", String(255), nullable=False),
    Column("machine", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("summary", Text, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("state_serial", Integer, nullable=True),
    PrimaryKeyConstraint("workspace_id", "serial"),
)

resource_versions = Table(
    "resource_versions",
    metadata,
    _workspace_fk(),
    Column("address", String(1024), nullable=False),
    Column("serial", Integer, nullable=False),
    Column("module", String(1024), nullable=True),
    Column("type", String(255), nullable=True),
    Column("name", String(255), nullable=True),
    Column("index_key", Text, nullable=True),
    Column("provider", String(255), nullable=True),
    Column("host", String(255), nullable=True),
    Column("attributes", Text, nullable=True),
    Column("has_secrets", Boolean, nullable=True),
    Column("dependencies", Text, nullable=True),
    PrimaryKeyConstraint("workspace_id", "address", "serial"),
)

outputs = Table(
    "outputs",
    metadata,
    _workspace_fk(),
    Column("name", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("workspace_id", "name"),
)

locks = Table(
    "locks",
    metadata,
    Column("workspace", String(255), nullable=False),
    Column("id", String(36), nullable=False),
    Column("who", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("machine", String(255), nullable=False),
    Column("operation", String(255), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("workspace"),
)
