"""Resource versions: every version of every resource, for ``state show -serial N``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

``resource_versions`` is append-only: each write of a resource adds its row
as written (secrets sealed exactly as in ``resources``) under the workspace
serial of that write; a delete adds a tombstone (every column NULL but the
key). ``history.state_serial`` records the state serial a run ended at.

A state older than this revision kept no versions: the current resources are
copied in as the versions their ``updated_serial`` wrote, and the workspace's
``versions_from`` is set to its serial (the oldest serial that can be rebuilt
exactly). Plain INSERT ... SELECT and ADD COLUMN: the same on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workspaces",
        sa.Column("versions_from", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("history", sa.Column("state_serial", sa.Integer, nullable=True))
    op.create_table(
        "resource_versions",
        sa.Column(
            "workspace_id",
            sa.Integer,
            sa.ForeignKey(
                "workspaces.id",
                ondelete="CASCADE",
                name="fk_resource_versions_workspace_id_workspaces",
            ),
            nullable=False,
        ),
        sa.Column("address", sa.String(1024), nullable=False),
        sa.Column("serial", sa.Integer, nullable=False),
        sa.Column("module", sa.String(1024), nullable=True),
        sa.Column("type", sa.String(255), nullable=True),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("index_key", sa.Text, nullable=True),
        sa.Column("provider", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("attributes", sa.Text, nullable=True),
        sa.Column("has_secrets", sa.Boolean, nullable=True),
        sa.Column("dependencies", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("workspace_id", "address", "serial", name="pk_resource_versions"),
    )
    columns = (
        "workspace_id, address, module, type, name, index_key, provider, host, "
        "attributes, has_secrets, dependencies"
    )
    op.execute(
        f"INSERT INTO resource_versions ({columns}, serial) "
        f"SELECT {columns}, updated_serial FROM resources"
    )
    op.execute("UPDATE workspaces SET versions_from = serial")


def downgrade() -> None:
    op.drop_table("resource_versions")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("state_serial")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("versions_from")
