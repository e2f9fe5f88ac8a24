"""The state store's versioned schema: its Alembic migrations (installed as ``kplan_state``).

``migrations/`` holds the Alembic environment and one script per schema
revision; :mod:`kplan.state.migrate` finds them through
``importlib.resources`` (Alembic's ``kplan_state:migrations`` location), so
they work from a wheel as from a checkout. The SQLAlchemy tables the store's
code queries are in :mod:`kplan.state.schema` and must match the newest
revision here. Never here: code that opens, reads or writes a state.
"""
