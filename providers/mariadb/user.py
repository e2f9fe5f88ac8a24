"""``mariadb_user``: an account (``'name'@'client_host'``) of a MariaDB server, with a password.

Attributes: ``name`` and ``client_host`` (default ``%``; both replace),
``password`` (sensitive). The account authenticates with
``mysql_native_password``. The password itself never leaves kplan: the
server is given its hash (``IDENTIFIED BY PASSWORD '*…'``, in the exec's
environment), and a refresh reads the server's hash (``mysql.user``'s
``authentication_string``, one query per host for every account) and compares
it with the hash of the recorded password, computed here. A password changed
by hand (or another authentication plugin) is drift: the refreshed password
becomes a placeholder, and the plan shows ``~ password = (sensitive value)``
— *password changed outside kplan; restoring it* — never a value.

Create adopts an account that is already there (``CREATE USER IF NOT EXISTS``
then ``ALTER USER``): an apply that died half-way is simply run again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, States, attr_error, plain
from kplan.values import Secret

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
)
from ._sql import account, check_name, literal, native_hash, rows

__all__ = ["DRIFTED", "MariaDBUser"]

#: The refreshed password of an account whose hash no longer matches (never a real one).
DRIFTED = "(changed outside kplan)"
NATIVE = "mysql_native_password"

SCHEMA = ResourceSchema(
    type_name="mariadb_user",
    description="An account of a MariaDB server with a password, reached through its container.",
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "name": Attribute("string", required=True, force_new=True, description="user name"),
        "client_host": CLIENT_HOST,
        "password": Attribute(
            "string", required=True, sensitive=True, description="the account's password"
        ),
        **COMMON_ATTRIBUTES,
    },
)


class MariaDBUser(MariaDBType):
    schema = SCHEMA
    error_attribute = "name"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        out = check_common(
            config,
            check_name("name", config.get("name"), "user"),
            check_name("client_host", config.get("client_host"), "host"),
        )
        if plain(config.get("password")) == "":
            out.append(
                attr_error(
                    "password",
                    "password is empty",
                    "an account without a password lets anyone in: generate one "
                    "(secret_password) and pass its value",
                    code="empty-password",
                )
            )
        return out

    def plan(self, req: PlanRequest) -> PlanResponse:
        return normalised_plan(self.schema, req, client_host=lower)

    @staticmethod
    def _key(state: Mapping[str, Any]) -> tuple[str, str]:
        return str(plain(state.get("name"))), str(lower(plain(state.get("client_host")) or "%"))

    def read_sql(self, instances: Sequence[ReadInstance]) -> Batch:
        keys = sorted({self._key(i.state) for i in instances})
        pairs = ", ".join(f"({literal(u)}, {literal(h)})" for u, h in keys)
        return Batch(
            "SELECT User, Host, plugin, authentication_string FROM mysql.user "
            f"WHERE (User, Host) IN ({pairs});",
            "reading users",
        )

    def parse(
        self, instances: Sequence[ReadInstance], result: Result, host: str, container: str
    ) -> States:
        found = {(r[0], r[1]): (r[2], r[3]) for r in rows(result.stdout) if len(r) == 4}
        out: States = {}
        for inst in instances:
            live = found.get(self._key(inst.state))
            if live is None:
                out[inst.address] = None
                continue
            plugin, stored = live
            recorded = plain(inst.state.get("password"))
            same = (
                isinstance(recorded, str) and plugin == NATIVE and stored == native_hash(recorded)
            )
            out[inst.address] = (
                {**inst.state} if same else {**inst.state, "password": Secret(DRIFTED)}
            )
        return out

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        user, host = self._key(planned)
        password = str(plain(planned["password"]))
        digest = native_hash(password)
        acct = account(user, host)
        t.run(
            Batch(
                f"CREATE USER IF NOT EXISTS {acct} IDENTIFIED BY PASSWORD {literal(digest)};\n"
                f"ALTER USER {acct} IDENTIFIED BY PASSWORD {literal(digest)};",
                f"setting up user {user}@{host}",
                secrets=(password, digest),
            )
        )
        return ApplyResponse(dict(planned))

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self.create_at(t, planned)

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        user, host = self._key(prior)
        t.run(Batch(f"DROP USER IF EXISTS {account(user, host)};", f"dropping user {user}@{host}"))
        return ApplyResponse(None)
