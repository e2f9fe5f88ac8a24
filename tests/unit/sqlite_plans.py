"""The plans SQLite chose for the statements a block ran: for tests that a read uses an index."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def query_plans(engine: Engine, marker: str) -> Iterator[list[list[str]]]:
    """Yield a list that, once the block ends, holds for every statement containing
    ``marker`` that the block ran on ``engine``, in order, its EXPLAIN QUERY PLAN lines."""
    ran: list[tuple[str, Any]] = []

    def seen(conn: object, cursor: object, sql: str, params: Any, *_: object) -> None:
        ran.append((sql, params))

    event.listen(engine, "before_cursor_execute", seen)
    plans: list[list[str]] = []
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with engine.connect() as conn:
        for sql, params in ran:
            if marker in sql:
                plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
                plans.append([str(row[-1]) for row in plan])
