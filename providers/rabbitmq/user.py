"""``rabbitmq_user``: a user of a RabbitMQ broker (of its cluster), with a password and tags.

Attributes: ``name`` (replaces), ``password`` (sensitive) and ``tags``
(e.g. ``["administrator"]``; compared as a set, default none). The password
reaches ``rabbitmqctl`` only on its standard input (``add_user NAME`` /
``change_password NAME``), never as an argument. A refresh reads the
broker's definitions once per host (``export_definitions``: every user with
its salted password hash and tags) and checks the recorded password against
the hash here, with RabbitMQ's own scheme (base64 of a 4-byte salt and
SHA-256 of salt + password): no login attempt per user. A password changed
by hand is drift: the refreshed password becomes a placeholder and the plan
shows ``~ password = (sensitive value)`` — never a value. A user deleted by
hand is planned again.

Create adopts a user that is already there (``add_user`` says it exists:
``change_password`` instead), then sets the tags: an apply that died
half-way is simply run again. Delete of a user already gone is no error.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, attr_error, plain
from kplan.values import Secret

from ._client import (
    COMMON_ATTRIBUTES,
    Ctl,
    Definitions,
    RabbitMQType,
    Result,
    Where,
    check_common,
    check_name,
    normalised_plan,
)
from ._definitions import password_matches

__all__ = ["DRIFTED", "RabbitMQUser"]

#: The refreshed password of a user whose hash no longer matches (never a real one).
DRIFTED = "(changed outside kplan)"

SCHEMA = ResourceSchema(
    type_name="rabbitmq_user",
    description="A user of a RabbitMQ broker (password, tags), reached through its container.",
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "name": Attribute("string", required=True, force_new=True, description="user name"),
        "password": Attribute(
            "string", required=True, sensitive=True, description="the user's password"
        ),
        "tags": Attribute(
            "list",
            optional=True,
            default=[],
            normalized=True,
            description='e.g. ["administrator"] or ["monitoring"]; compared as a set',
        ),
        **COMMON_ATTRIBUTES,
    },
)


def _tags(value: Any) -> Any:
    """A known list of strings as a sorted set; anything else as is."""
    if isinstance(value, list | tuple) and all(isinstance(t, str) for t in value):
        return sorted(set(value))
    return value


def _exists(result: Result) -> bool:
    return "already exists" in result.stderr


def _gone(result: Result) -> bool:
    return "does not exist" in result.stderr


class RabbitMQUser(RabbitMQType):
    schema = SCHEMA
    error_attribute = "name"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        out = check_common(config, check_name("name", config.get("name"), "user"))
        if plain(config.get("password")) == "":
            out.append(
                attr_error(
                    "password",
                    "password is empty",
                    "a user without a password lets anyone in: generate one "
                    "(secret_password) and pass its value",
                    code="empty-password",
                )
            )
        tags = plain(config.get("tags"))
        if isinstance(tags, list):
            for tag in tags:
                if isinstance(tag, str) and (not tag or tag.startswith("-") or " " in tag):
                    out.append(
                        attr_error(
                            "tags",
                            f"the tag {tag!r} is not a RabbitMQ user tag",
                            "a tag is one word, e.g. administrator, monitoring, management",
                            code="invalid-tag",
                        )
                    )
                    break
        return out

    def plan(self, req: PlanRequest) -> PlanResponse:
        return normalised_plan(self.schema, req, tags=_tags)

    def parse(self, inst: ReadInstance, defs: Definitions) -> Mapping[str, Any] | None:
        live = defs.users.get(str(plain(inst.state.get("name"))))
        if live is None:
            return None
        algorithm, stored, tags = live
        recorded = plain(inst.state.get("password"))
        same = isinstance(recorded, str) and password_matches(recorded, algorithm, stored)
        state = {**inst.state, "tags": tags}
        if not same:
            state["password"] = Secret(DRIFTED)
        return state

    def _set_password(self, t: Where, name: str, password: str) -> None:
        added = t.run(
            Ctl(("add_user", name), f"adding user {name}", secret=password), allowed=_exists
        )
        if added.exit_code != 0:
            t.run(Ctl(("change_password", name), f"setting the password of {name}", password))

    def _set_tags(self, t: Where, name: str, tags: list[str]) -> None:
        t.run(Ctl(("set_user_tags", name, *tags), f"setting the tags of {name}"))

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(planned["name"]))
        self._set_password(t, name, str(plain(planned["password"])))
        self._set_tags(t, name, list(plain(planned.get("tags")) or []))
        return ApplyResponse(dict(planned))

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        name = str(plain(planned["name"]))
        password = str(plain(planned["password"]))
        if plain(prior.get("password")) != password:
            self._set_password(t, name, password)
        tags = list(plain(planned.get("tags")) or [])
        if _tags(list(plain(prior.get("tags")) or [])) != tags:
            self._set_tags(t, name, tags)
        return ApplyResponse(dict(planned))

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(prior["name"]))
        t.run(Ctl(("delete_user", name), f"deleting user {name}"), allowed=_gone)
        return ApplyResponse(None)
