"""``mariadb_database``: a database (schema) in a MariaDB server.

Attributes: ``name`` (replaces), ``character_set`` (default ``utf8mb3``, what
kolla-ansible's servers use: ``character-set-server = utf8``) and
``collation`` (default: the character set's own). A change of either is an
``ALTER DATABASE`` (it sets the default for tables made later; existing
tables keep theirs). A refresh reads ``information_schema.SCHEMATA`` once per
host for every database. Create adopts a database that is already there
(``CREATE DATABASE IF NOT EXISTS`` then ``ALTER``); delete drops it and its
tables — guard it with ``prevent_destroy``.
"""

from __future__ import annotations

import re
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

from ._client import (
    COMMON_ATTRIBUTES,
    Batch,
    MariaDBType,
    Result,
    Where,
    check_common,
    normalised_plan,
)
from ._sql import check_name, ident, literal, normal_charset, rows

__all__ = ["MariaDBDatabase"]

SCHEMA = ResourceSchema(
    type_name="mariadb_database",
    description="A database in a MariaDB server, reached through its container.",
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "name": Attribute("string", required=True, force_new=True, description="database name"),
        "character_set": Attribute(
            "string",
            optional=True,
            default="utf8mb3",
            normalized=True,
            description="the default character set of its tables",
        ),
        "collation": Attribute(
            "string",
            optional=True,
            normalized=True,
            description="the default collation (unset: the character set's default)",
        ),
        **COMMON_ATTRIBUTES,
    },
)

_CHARSET = re.compile(r"[A-Za-z0-9_]+")


def _options(state: Mapping[str, Any]) -> str:
    text = f"CHARACTER SET {plain(state.get('character_set')) or 'utf8mb3'}"
    collation = plain(state.get("collation"))
    return text + (f" COLLATE {collation}" if collation else "")


class MariaDBDatabase(MariaDBType):
    schema = SCHEMA
    error_attribute = "name"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        out = check_common(config, check_name("name", config.get("name"), "database"))
        for attr in ("character_set", "collation"):
            value = plain(config.get(attr))
            if isinstance(value, str) and not _CHARSET.fullmatch(value):
                out.append(
                    attr_error(
                        attr,
                        f"{attr} {value!r} is not a MariaDB {attr.replace('_', ' ')} name",
                        "letters, digits and underscores, e.g. utf8mb4 or utf8mb4_general_ci",
                        code="invalid-charset",
                    )
                )
        return out

    def plan(self, req: PlanRequest) -> PlanResponse:
        return normalised_plan(
            self.schema, req, character_set=normal_charset, collation=normal_charset
        )

    def read_sql(self, instances: Sequence[ReadInstance]) -> Batch:
        names = ", ".join(sorted({literal(str(plain(i.state.get("name")))) for i in instances}))
        return Batch(
            "SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            f"FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({names});",
            "reading databases",
        )

    def parse(
        self, instances: Sequence[ReadInstance], result: Result, host: str, container: str
    ) -> States:
        found = {r[0]: r[1:] for r in rows(result.stdout) if len(r) == 3}
        out: States = {}
        for inst in instances:
            live = found.get(str(plain(inst.state.get("name"))))
            if live is None:
                out[inst.address] = None
                continue
            state = {**inst.state, "character_set": live[0]}
            if state.get("collation") is not None:  # compared only when configured
                state["collation"] = live[1]
            out[inst.address] = state
        return out

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        name = ident(str(plain(planned["name"])))
        t.run(
            Batch(
                f"CREATE DATABASE IF NOT EXISTS {name} {_options(planned)};\n"
                f"ALTER DATABASE {name} {_options(planned)};",
                f"creating database {plain(planned['name'])}",
            )
        )
        return ApplyResponse(dict(planned))

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self.create_at(t, planned)

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(prior["name"]))
        t.run(Batch(f"DROP DATABASE IF EXISTS {ident(name)};", f"dropping database {name}"))
        return ApplyResponse(None)
