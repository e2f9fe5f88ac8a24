"""``rabbitmq_vhost``: a virtual host of a RabbitMQ broker (of its cluster).

Attributes: ``name`` (replaces). A refresh reads the broker's definitions
once per host (``export_definitions``) for every vhost; a vhost deleted by
hand is planned again. Create adopts a vhost that is already there
(``add_vhost`` of an existing vhost succeeds); delete removes the vhost with
its queues and exchanges — guard it with ``prevent_destroy`` — and a vhost
already gone is no error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ApplyResponse, Attribute, ReadInstance, ResourceSchema
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, plain

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

__all__ = ["RabbitMQVhost"]

SCHEMA = ResourceSchema(
    type_name="rabbitmq_vhost",
    description="A virtual host of a RabbitMQ broker, reached through its container.",
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "name": Attribute(
            "string", required=True, force_new=True, description='vhost name, e.g. "/"'
        ),
        **COMMON_ATTRIBUTES,
    },
)


def _gone(result: Result) -> bool:
    return "does not exist" in result.stderr


class RabbitMQVhost(RabbitMQType):
    schema = SCHEMA
    error_attribute = "name"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        return check_common(config, check_name("name", config.get("name"), "vhost"))

    def parse(self, inst: ReadInstance, defs: Definitions) -> Mapping[str, Any] | None:
        return dict(inst.state) if str(plain(inst.state.get("name"))) in defs.vhosts else None

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(planned["name"]))
        t.run(Ctl(("add_vhost", name), f"adding vhost {name}"))
        return ApplyResponse(dict(planned))

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(prior["name"]))
        t.run(Ctl(("delete_vhost", name), f"deleting vhost {name}"), allowed=_gone)
        return ApplyResponse(None)
