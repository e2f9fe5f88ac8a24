"""The lock record: who holds a workspace's lock (PostgreSQL's advisory lock).

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

PostgreSQL locks a workspace with a session-level advisory lock and keeps
the holder's details here so that a second kplan can name them. SQLite keeps
the holder in its lock file; the table exists there too (one schema).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "locks",
        sa.Column("workspace", sa.String(255), nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("machine", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace", name="pk_locks"),
    )


def downgrade() -> None:
    op.drop_table("locks")
