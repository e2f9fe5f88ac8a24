"""``mariadb_grant``: the privileges of one account on one database, table or everything.

Attributes: ``user``, ``client_host`` (default ``%``), ``database`` (``*``:
every database), ``table`` (default ``*``) — these four name the grant and
replace it — and ``privileges``, compared as a set: upper case, one spelling
each (``ALL`` is ``ALL PRIVILEGES``), order and repeats ignored; ``GRANT
OPTION`` is a privilege like the others here (``WITH GRANT OPTION`` in SQL).
A refresh runs ``SHOW GRANTS`` for every account concerned, all in one exec
per host; a privilege revoked by hand is drift, a grant gone entirely (or its
user dropped) is planned again. An update revokes what is no longer wanted and
grants what is missing; a delete revokes the grant's privileges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ResourceSchema,
)
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, Failed, States, attr_error, plain

from ._client import (
    CLIENT_HOST,
    COMMON_ATTRIBUTES,
    Batch,
    MariaDBType,
    Result,
    Where,
    check_common,
    lower,
    normalised_plan,
    sql_error,
)
from ._sql import (
    ALL,
    GRANT_OPTION,
    account,
    check_name,
    check_privileges,
    grant_object,
    normal_privileges,
    parse_grant_line,
    unescape,
)

__all__ = ["MariaDBGrant"]

SCHEMA = ResourceSchema(
    type_name="mariadb_grant",
    description="Privileges of a MariaDB account on a database or table.",
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "user": Attribute("string", required=True, force_new=True, description="the user's name"),
        "client_host": CLIENT_HOST,
        "database": Attribute(
            "string", required=True, force_new=True, description="a database, or * for all"
        ),
        "table": Attribute(
            "string", optional=True, default="*", force_new=True, description="a table, or *"
        ),
        "privileges": Attribute(
            "list",
            required=True,
            normalized=True,
            description='e.g. ["ALL"] or ["SELECT", "INSERT"]; compared as a set',
        ),
        **COMMON_ATTRIBUTES,
    },
)

# SHOW GRANTS for an absent account; REVOKE of a grant that is not there.
_ABSENT = frozenset({1141, 1147, 1133})
_MARK = "kplan-account:"


def _key(state: Mapping[str, Any]) -> tuple[str, str]:
    host = plain(state.get("client_host")) or "%"
    return str(plain(state.get("user"))), str(host).lower()


def _object(state: Mapping[str, Any]) -> tuple[str, str]:
    return str(plain(state.get("database"))), str(plain(state.get("table")) or "*")


def _privileges(state: Mapping[str, Any]) -> set[str]:
    return set(normal_privileges(plain(state.get("privileges")) or []))


def _normal(privileges: Any) -> Any:
    """A known list of strings as a normal set (sorted); anything else as is."""
    if isinstance(privileges, list | tuple) and all(isinstance(p, str) for p in privileges):
        return normal_privileges(privileges)
    return privileges


def _grant(privs: set[str], obj: str, acct: str) -> str:
    words = sorted(privs - {GRANT_OPTION}) or ["USAGE"]
    option = " WITH GRANT OPTION" if GRANT_OPTION in privs else ""
    return f"GRANT {', '.join(words)} ON {obj} TO {acct}{option};"


def _revoke(privs: set[str], obj: str, acct: str) -> list[str]:
    out = []
    words = [ALL] if ALL in privs else sorted(privs - {GRANT_OPTION})
    if words:
        out.append(f"REVOKE {', '.join(words)} ON {obj} FROM {acct};")
    if GRANT_OPTION in privs:
        out.append(f"REVOKE GRANT OPTION ON {obj} FROM {acct};")
    return out


class MariaDBGrant(MariaDBType):
    schema = SCHEMA
    error_attribute = "privileges"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        out = check_common(
            config,
            check_name("user", config.get("user"), "user"),
            check_name("client_host", config.get("client_host"), "host"),
            check_name("database", config.get("database"), "database", star=True),
            check_name("table", config.get("table"), "table", star=True),
            check_privileges(config.get("privileges")),
        )
        table = plain(config.get("table"))
        if plain(config.get("database")) == "*" and isinstance(table, str) and table != "*":
            out.append(
                attr_error(
                    "table",
                    'a table needs a database: database "*" takes only table "*"',
                    code="invalid-grant",
                )
            )
        return out

    def plan(self, req: PlanRequest) -> PlanResponse:
        return normalised_plan(self.schema, req, client_host=lower, privileges=_normal)

    def read_sql(self, instances: Sequence[ReadInstance]) -> Batch:
        keys = sorted({_key(i.state) for i in instances})
        sql = "\n".join(
            f"SELECT '{_MARK}{n}';\nSHOW GRANTS FOR {account(u, h)};"
            for n, (u, h) in enumerate(keys)
        )
        return Batch(sql, "reading grants", force=True)

    def parse(
        self, instances: Sequence[ReadInstance], result: Result, host: str, container: str
    ) -> States:
        unexpected = [(c, m) for c, m in result.errors if c not in _ABSENT]
        if unexpected:
            who = ", ".join(sorted(i.address for i in instances))
            failed = replace(result, errors=unexpected)
            raise Failed(sql_error(host, container, "reading grants", who, failed))
        keys = sorted({_key(i.state) for i in instances})
        grants: dict[tuple[str, str], dict[tuple[str, str], list[str]]] = {k: {} for k in keys}
        current: dict[tuple[str, str], list[str]] | None = None
        for line in result.stdout.splitlines():
            if line.startswith(_MARK):
                current = grants[keys[int(line[len(_MARK) :])]]
                continue
            parsed = parse_grant_line(unescape(line))
            if current is not None and parsed is not None and parsed[1]:
                current[parsed[0]] = parsed[1]
        out: States = {}
        for inst in instances:
            privs = grants[_key(inst.state)].get(_object(inst.state))
            out[inst.address] = None if privs is None else {**inst.state, "privileges": privs}
        return out

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        user, host = _key(planned)
        obj = grant_object(*_object(planned))
        try:
            t.run(
                Batch(
                    _grant(_privileges(planned), obj, account(user, host)),
                    f"granting on {obj} to {user}@{host}",
                )
            )
        except Failed as exc:
            if "ERROR 1133" in exc.diagnostics[0].detail:
                d = exc.diagnostics[0]
                hint = (
                    "\nthe user does not exist: create it first (user: ${mariadb_user.NAME.name})"
                )
                raise Failed(replace(d, detail=d.detail + hint)) from None
            raise
        return ApplyResponse(dict(planned))

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        user, host = _key(planned)
        acct, obj = account(user, host), grant_object(*_object(planned))
        before, after = _privileges(prior), _privileges(planned)
        gone = before - after
        if ALL in after:  # ALL PRIVILEGES holds every other privilege but GRANT OPTION
            gone &= {GRANT_OPTION}
        added = after - before if ALL not in gone else after
        statements = _revoke(gone, obj, acct)
        if added:
            statements.append(_grant(added, obj, acct))
        if statements:
            t.run(Batch("\n".join(statements), f"changing the grant on {obj} to {user}@{host}"))
        return ApplyResponse(dict(planned))

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        user, host = _key(prior)
        acct, obj = account(user, host), grant_object(*_object(prior))
        what = f"revoking on {obj} from {user}@{host}"
        result = t.run(Batch("\n".join(_revoke(_privileges(prior), obj, acct)), what, force=True))
        unexpected = [(c, m) for c, m in result.errors if c not in _ABSENT]
        if unexpected:
            raise Failed(sql_error(t.host, t.container, what, t.address, result))
        return ApplyResponse(None)
