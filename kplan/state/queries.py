"""SQL for the state store, as SQLAlchemy Core statements on an open connection.

Each function runs inside a transaction the caller (store.py) holds; none
commits. Upserts use the dialect's ``ON CONFLICT`` (SQLite and PostgreSQL
share the syntax). Counters are race-free on PostgreSQL too, where two
writers may run at once: the serial is bumped with ``UPDATE ... RETURNING``,
a history serial is taken under a row lock of the workspace, and inserts
that may race (a new workspace, a meta default) use ``ON CONFLICT DO
NOTHING``. :func:`translate_error` maps driver errors to kplan's.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from kplan.diagnostics import Diagnostic, KplanError
from kplan.state.migrate import not_a_state
from kplan.state.records import HistoryEntry, as_utc, machine_name, pid_alive
from kplan.state.schema import history as H
from kplan.state.schema import meta as M
from kplan.state.schema import outputs as O
from kplan.state.schema import resource_versions as V
from kplan.state.schema import resources as R
from kplan.state.schema import workspaces as W

__all__ = ["translate_error"]

_FINAL_OUTCOMES = ("success", "failed", "interrupted")


def find_workspace(conn: Connection, name: str) -> tuple[int, str] | None:
    row = conn.execute(select(W.c.id, W.c.lineage).where(W.c.name == name)).first()
    return None if row is None else (int(row[0]), str(row[1]))


def _insert_ignore(conn: Connection, table: Table, keys: Sequence[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING in the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))


def ensure_workspace(conn: Connection, name: str) -> tuple[int, str]:
    """The workspace's (id, lineage), creating it with a new lineage when missing."""
    found = find_workspace(conn, name)
    if found is not None:
        return found
    lineage = str(uuid.uuid4())
    conn.execute(
        _insert_ignore(conn, W, ["name"]).values(
            name=name, lineage=lineage, serial=0, created_at=datetime.now(UTC)
        )
    )
    found = find_workspace(conn, name)
    assert found is not None
    return found


def delete_workspace(conn: Connection, ws_id: int) -> None:
    for table in (O, H, R, V):
        conn.execute(delete(table).where(table.c.workspace_id == ws_id))
    conn.execute(delete(W).where(W.c.id == ws_id))


def bump_serial(conn: Connection, ws_id: int) -> int:
    """Add one to the workspace serial and return the new value (one atomic statement)."""
    stmt = update(W).where(W.c.id == ws_id).values(serial=W.c.serial + 1).returning(W.c.serial)
    return int(conn.execute(stmt).scalar_one())


def resource_columns() -> list[Any]:
    """The columns rows.from_rows reads, in its order: the one list both queries use."""
    c = R.c
    return [
        c.address,
        c.module,
        c.type,
        c.name,
        c.index_key,
        c.provider,
        c.host,
        c.attributes,
        c.has_secrets,
        c.dependencies,
    ]


def select_resources(ws_id: int) -> Select[Any]:
    return select(*resource_columns()).where(R.c.workspace_id == ws_id).order_by(R.c.address)


def upsert(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """Insert rows, replacing those whose ``keys`` already exist."""
    columns = [k for k in rows[0] if k not in keys]
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg = postgresql.insert(table)
        stmt: Any = pg.on_conflict_do_update(
            index_elements=list(keys), set_={k: pg.excluded[k] for k in columns}
        )
    else:
        from sqlalchemy.dialects import sqlite

        lite = sqlite.insert(table)
        stmt = lite.on_conflict_do_update(
            index_elements=list(keys), set_={k: lite.excluded[k] for k in columns}
        )
    conn.execute(stmt, list(rows))


# From this many rows on, the versions are copied inside the database (one scan of the
# workspace's resources) rather than bound again from Python: 100k rows in half the time.
_COPY_IN_DATABASE = 2000


def add_versions(
    conn: Connection, ws_id: int, serial: int, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Append the resource rows just upserted at ``serial`` to resource_versions."""
    if len(rows) >= _COPY_IN_DATABASE:
        names = [c.name for c in resource_columns()]
        conn.execute(
            insert(V).from_select(
                ["workspace_id", "serial", *names],
                select(R.c.workspace_id, R.c.updated_serial, *resource_columns()).where(
                    R.c.workspace_id == ws_id, R.c.updated_serial == serial
                ),
            )
        )
    elif rows:
        conn.execute(insert(V).values(serial=bindparam("updated_serial")), list(rows))


def add_tombstones(conn: Connection, ws_id: int, serial: int, addresses: Sequence[str]) -> None:
    """Record that these resources were deleted at ``serial``."""
    if addresses:
        conn.execute(
            insert(V), [{"workspace_id": ws_id, "address": a, "serial": serial} for a in addresses]
        )


def version_columns() -> list[Any]:
    """The columns of resource_versions in rows.from_rows' order (as resource_columns)."""
    return [V.c[c.name] for c in resource_columns()]


def select_versions_at(ws_id: int, serial: int, address: str | None = None) -> Select[Any]:
    """The live resources at ``serial``: each address's newest version up to it, tombstones
    left out. One index range per address (the key is workspace, address, serial)."""
    newest = (
        select(V.c.address, func.max(V.c.serial).label("serial"))
        .where(V.c.workspace_id == ws_id, V.c.serial <= serial)
        .group_by(V.c.address)
    )
    if address is not None:
        newest = newest.where(V.c.address == address)
    latest = newest.subquery()
    return (
        select(*version_columns())
        .join(
            latest,
            and_(
                V.c.workspace_id == ws_id,
                V.c.address == latest.c.address,
                V.c.serial == latest.c.serial,
            ),
        )
        .where(V.c.attributes.is_not(None))
        .order_by(V.c.address)
    )


def select_outputs(ws_id: int) -> Select[Any]:
    return select(O.c.name, O.c.value).where(O.c.workspace_id == ws_id).order_by(O.c.name)


def replace_outputs(conn: Connection, ws_id: int, encoded: Mapping[str, str]) -> None:
    conn.execute(delete(O).where(O.c.workspace_id == ws_id))
    if encoded:
        conn.execute(
            insert(O), [{"workspace_id": ws_id, "name": n, "value": v} for n, v in encoded.items()]
        )


def get_meta(conn: Connection, key: str) -> str | None:
    value = conn.execute(select(M.c.value).where(M.c.key == key)).scalar_one_or_none()
    return None if value is None else str(value)


def set_meta(conn: Connection, key: str, value: str) -> None:
    upsert(conn, M, [{"key": key, "value": value}], ("key",))


def meta_setdefault(conn: Connection, key: str, value: str) -> str:
    """Store ``value`` unless the key has one; return what is stored."""
    current = get_meta(conn, key)
    if current is not None:
        return current
    conn.execute(_insert_ignore(conn, M, ["key"]).values(key=key, value=value))
    stored = get_meta(conn, key)
    return value if stored is None else stored


def begin_run(
    conn: Connection, ws_id: int, operation: str, summary: str, user: str, machine: str
) -> int:
    # Two writers may begin runs at once on PostgreSQL: serialise on the workspace row.
    conn.execute(select(W.c.id).where(W.c.id == ws_id).with_for_update())
    last = conn.execute(
        select(func.coalesce(func.max(H.c.serial), 0)).where(H.c.workspace_id == ws_id)
    ).scalar_one()
    serial = int(last) + 1
    conn.execute(
        insert(H).values(
            workspace_id=ws_id,
            serial=serial,
            operation=operation,
            user=user,
            machine=machine,
            pid=os.getpid(),
            started_at=datetime.now(UTC),
            finished_at=None,
            summary=summary,
            outcome="running",
        )
    )
    return serial


def finish_run(conn: Connection, ws_id: int, serial: int, outcome: str, summary: str) -> None:
    if outcome not in _FINAL_OUTCOMES:
        raise ValueError(f"a run ends as one of {', '.join(_FINAL_OUTCOMES)}, not {outcome!r}")
    state_serial = select(W.c.serial).where(W.c.id == ws_id).scalar_subquery()
    done = conn.execute(
        update(H)
        .where(H.c.workspace_id == ws_id, H.c.serial == serial, H.c.outcome == "running")
        .values(
            outcome=outcome,
            summary=summary,
            finished_at=datetime.now(UTC),
            state_serial=state_serial,
        )
    ).rowcount
    if not done:
        raise KplanError(f"no running run with serial {serial} in the state's history")


def history(conn: Connection, ws_id: int) -> list[HistoryEntry]:
    rows = conn.execute(
        select(
            H.c.serial,
            H.c.user,
            H.c.machine,
            H.c.started_at,
            H.c.finished_at,
            H.c.operation,
            H.c.summary,
            H.c.outcome,
            H.c.pid,
            H.c.state_serial,
        )
        .where(H.c.workspace_id == ws_id)
        .order_by(H.c.serial)
    ).all()
    here = machine_name()
    entries = []
    for serial, user, machine, started, finished, op, summary, outcome, pid, state in rows:
        if outcome == "running" and machine == here and not _alive(pid):
            outcome = "interrupted"
        entries.append(
            HistoryEntry(
                serial=serial,
                user=user,
                host=machine,
                started_at=as_utc(started),
                finished_at=None if finished is None else as_utc(finished),
                operation=op,
                summary=summary,
                outcome=outcome,
                pid=pid,
                state_serial=state,
            )
        )
    return entries


def _alive(pid: int) -> bool:
    return pid == os.getpid() or pid_alive(pid)


_MESSAGES: tuple[tuple[str, str, str], ...] = (
    # PostgreSQL (psycopg / libpq)
    ("password authentication failed", "cannot log in to {}", "state-auth"),
    ("no password supplied", "cannot log in to {}: no password", "state-auth"),
    ('database "', "cannot open {}", "state-unreachable"),
    ("connection refused", "cannot connect to {}", "state-unreachable"),
    ("could not translate host name", "cannot connect to {}", "state-unreachable"),
    ("timeout expired", "cannot connect to {}: timed out", "state-unreachable"),
    ("connection failed", "cannot connect to {}", "state-unreachable"),
    ("server closed the connection", "lost the connection to {}", "state-unreachable"),
    ("permission denied", "permission denied in {}", "state-permission"),
    # SQLite
    ("database is locked", "{} is busy: another process is writing to it", "state-busy"),
    ("unable to open database", "cannot open {}", "state-unreadable"),
    ("readonly database", "cannot write {}: it is read-only", "state-readonly"),
    ("disk i/o error", "cannot read or write {}: disk I/O error", "state-io"),
    ("database or disk is full", "cannot write {}: the disk is full", "state-io"),
)


def translate_error(
    exc: SQLAlchemyError, description: str, redact: Callable[[str], str] = str
) -> KplanError:
    """A KplanError for a database error, with a message a user can act on.

    ``redact`` masks what must never be shown (a PostgreSQL password).
    """
    orig = redact(str(getattr(exc, "orig", None) or exc)).strip()
    low = orig.lower()
    if "file is not a database" in low or "no such table" in low or "no such column" in low:
        return not_a_state(description)
    if low.startswith("relation ") and "does not exist" in low:
        return not_a_state(description)
    for needle, template, code in _MESSAGES:
        if needle in low:
            return KplanError(Diagnostic.error(template.format(description), orig, code=code))
    return KplanError(
        Diagnostic.error(f"error in {description}", orig.splitlines()[0], code="state-error")
    )
