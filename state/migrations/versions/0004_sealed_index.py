"""An index of the resources that hold sealed secrets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

A state without a key check (one that never held a secret, or one written
before key checks existed) is asked on every command for one value holding a
sealed secret, to prove the key on it (kplan/state/keys.py). Without an index
that question read every row: 27 ms of a 0.6 s targeted plan at 100,000
resources. The partial index holds only the rows with secrets, so the answer
costs the same at any size. SQLite and PostgreSQL both have partial indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each dialect's predicate as SQLAlchemy writes has_secrets.is_(True) there: a
    # partial index serves a query only when the query's WHERE has the same term.
    op.create_index(
        "ix_resources_sealed",
        "resources",
        ["workspace_id"],
        sqlite_where=sa.text("has_secrets IS 1"),
        postgresql_where=sa.text("has_secrets IS true"),
    )


def downgrade() -> None:
    op.drop_index("ix_resources_sealed", table_name="resources")
