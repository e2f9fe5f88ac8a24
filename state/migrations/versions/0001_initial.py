"""The initial state schema: meta, workspaces, resources, history, outputs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out by hand (not generated from schema.py at run time), so that this
revision keeps creating the same tables when schema.py moves on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _workspace_fk(table: str) -> sa.Column[int]:
    return sa.Column(
        "workspace_id",
        sa.Integer,
        sa.ForeignKey(
            "workspaces.id", ondelete="CASCADE", name=f"fk_{table}_workspace_id_workspaces"
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("lineage", sa.String(36), nullable=False),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workspaces"),
        sa.UniqueConstraint("name", name="uq_workspaces_name"),
    )
    op.create_table(
        "resources",
        _workspace_fk("resources"),
        sa.Column("address", sa.String(1024), nullable=False),
        sa.Column("module", sa.String(1024), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("index_key", sa.Text, nullable=True),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("has_secrets", sa.Boolean, nullable=False),
        sa.Column("dependencies", sa.Text, nullable=False),
        sa.Column("updated_serial", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "address", name="pk_resources"),
    )
    op.create_table(
        "history",
        _workspace_fk("history"),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("machine", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "serial", name="pk_history"),
    )
    op.create_table(
        "outputs",
        _workspace_fk("outputs"),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "name", name="pk_outputs"),
    )


def downgrade() -> None:
    for table in ("outputs", "history", "resources", "workspaces", "meta"):
        op.drop_table(table)
