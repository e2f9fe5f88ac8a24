"""Alembic environment for the kplan state schema.

kplan runs Alembic programmatically (see kplan/state/migrate.py): the caller
passes an open SQLAlchemy connection in ``config.attributes["connection"]``.
For development (``alembic revision --autogenerate``) a URL in the
``sqlalchemy.url`` option works too. No logging configuration is loaded.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from kplan.state.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later migrations go through batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
