"""``rabbitmq_permissions``: what one user may do in one vhost.

Attributes: ``user`` and ``vhost`` (they name the permissions and replace
them), ``configure``, ``write`` and ``read``: regular expressions of the
resource names (queues, exchanges) the user may configure, write to and
read from; default ``.*`` (everything), ``""`` for nothing. A refresh reads
the broker's definitions once per host (``export_definitions``); a change of
a regex by hand is drift, permissions cleared by hand (or their user or
vhost deleted) are planned again. Create and update are the same
``set_permissions``; delete is ``clear_permissions``, and permissions
already gone are no error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ApplyResponse, Attribute, ReadInstance, ResourceSchema
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, Failed, attr_error, plain

from ._client import (
    COMMON_ATTRIBUTES,
    Ctl,
    Definitions,
    RabbitMQType,
    Result,
    Where,
    check_common,
    check_name,
)

__all__ = ["RabbitMQPermissions"]

_REGEX = ("configure", "write", "read")

SCHEMA = ResourceSchema(
    type_name="rabbitmq_permissions",
    description="A RabbitMQ user's permissions in a vhost, reached through the broker's container.",
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "user": Attribute("string", required=True, force_new=True, description="the user's name"),
        "vhost": Attribute("string", required=True, force_new=True, description="the vhost"),
        **{
            kind: Attribute(
                "string",
                optional=True,
                default=".*",
                description=f"regex of the resource names the user may {kind}"
                + (" to" if kind == "write" else " from" if kind == "read" else ""),
            )
            for kind in _REGEX
        },
        **COMMON_ATTRIBUTES,
    },
)


def _regex(state: Mapping[str, Any], kind: str) -> str:
    value = plain(state.get(kind))
    return ".*" if value is None else str(value)


def _gone(result: Result) -> bool:
    return "does not exist" in result.stderr


class RabbitMQPermissions(RabbitMQType):
    schema = SCHEMA
    error_attribute = "user"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        out = check_common(
            config,
            check_name("user", config.get("user"), "user"),
            check_name("vhost", config.get("vhost"), "vhost"),
        )
        for kind in _REGEX:
            value = plain(config.get(kind))
            if not isinstance(value, str):
                continue
            try:
                re.compile(value)
            except re.error as exc:
                out.append(
                    attr_error(
                        kind,
                        f"{kind} {value!r} is not a regular expression: {exc}",
                        '".*" allows everything, "" nothing',
                        code="invalid-regex",
                    )
                )
        return out

    @staticmethod
    def _key(state: Mapping[str, Any]) -> tuple[str, str]:
        return str(plain(state.get("user"))), str(plain(state.get("vhost")))

    def parse(self, inst: ReadInstance, defs: Definitions) -> Mapping[str, Any] | None:
        live = defs.permissions.get(self._key(inst.state))
        if live is None:
            return None
        return {**inst.state, **dict(zip(_REGEX, live, strict=True))}

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        user, vhost = self._key(planned)
        regexes = [_regex(planned, k) for k in _REGEX]
        try:
            t.run(
                Ctl(
                    ("set_permissions", "-p", vhost, user, *regexes),
                    f"setting the permissions of {user} in vhost {vhost}",
                )
            )
        except Failed as exc:
            d = exc.diagnostics[0]
            if "does not exist" in d.detail:
                hint = (
                    "\nthe user and the vhost must exist first: refer to them "
                    "(user: ${rabbitmq_user.NAME.name}, vhost: ${rabbitmq_vhost.NAME.name})"
                )
                raise Failed(replace(d, detail=d.detail + hint)) from None
            raise
        return ApplyResponse(dict(planned))

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self.create_at(t, planned)

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        user, vhost = self._key(prior)
        t.run(
            Ctl(
                ("clear_permissions", "-p", vhost, user),
                f"clearing the permissions of {user} in vhost {vhost}",
            ),
            allowed=_gone,
        )
        return ApplyResponse(None)
