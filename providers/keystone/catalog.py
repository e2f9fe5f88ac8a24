"""``keystone_service`` and ``keystone_endpoint``: the service catalog.

A service is identified by its name and type together; an endpoint by its
service, interface and region (keystone gives endpoints no name). An
endpoint's ``service`` is a service's name or, when no service has that name,
its type; two services matching is an error. A missing region is created
(``PUT /v3/regions/ID``) before the endpoint. A refresh costs one
``GET /v3/services`` or ``GET /v3/endpoints`` per login, matched by id: an
endpoint whose URL was changed by hand shows ``url`` drifted, and the plan
sets it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import Attribute, ResourceSchema
from kplan.provider_sdk import Failed, attr_error, plain

from ._type import KeystoneType, Where, with_auth

__all__ = ["INTERFACES", "KeystoneEndpoint", "KeystoneService"]

INTERFACES = ("public", "internal", "admin")

SERVICE = ResourceSchema(
    type_name="keystone_service",
    description="A service in Keystone's catalog.",
    attributes=with_auth(
        {
            "name": Attribute("string", required=True, description="e.g. glance"),
            "type": Attribute("string", required=True, description="e.g. image"),
            "description": Attribute("string", optional=True, default=""),
            "enabled": Attribute("bool", optional=True, default=True),
        }
    ),
)

ENDPOINT = ResourceSchema(
    type_name="keystone_endpoint",
    description="An endpoint of a service in Keystone's catalog.",
    attributes=with_auth(
        {
            "service": Attribute(
                "string",
                required=True,
                force_new=True,
                description="the service's name, or its type",
            ),
            "interface": Attribute("string", required=True, description="public|internal|admin"),
            "url": Attribute("string", required=True),
            "region": Attribute("string", optional=True, default="RegionOne"),
            "service_id": Attribute("string", computed=True),
        }
    ),
)


class KeystoneService(KeystoneType):
    schema = SERVICE
    collection, member = "services", "service"

    def body(self, t: Where, planned: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": str(plain(planned["name"])),
            "type": str(plain(planned["type"])),
            "description": str(plain(planned.get("description")) or ""),
            "enabled": bool(plain(planned.get("enabled"))),
        }

    def lookup(self, body: Mapping[str, Any]) -> dict[str, str]:
        return {"name": str(body["name"]), "type": str(body["type"])}

    def refreshed(self, state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **state,
            "name": live.get("name"),
            "type": live.get("type"),
            "description": live.get("description") or "",
            "enabled": bool(live.get("enabled", True)),
        }


class KeystoneEndpoint(KeystoneType):
    schema = ENDPOINT
    collection, member = "endpoints", "endpoint"
    create_only = ("service_id",)

    def check_more(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        interface = plain(config.get("interface"))
        if isinstance(interface, str) and interface not in INTERFACES:
            return [
                attr_error(
                    "interface",
                    f'interface "{interface}" is not one of {", ".join(INTERFACES)}',
                    code="invalid-interface",
                )
            ]
        return []

    def _service_id(self, t: Where, service: str) -> str:
        what = f'{t.address}: finding service "{service}"'
        listed = t.client.listed("services", what)
        matches = [s for s in listed if s.get("name") == service] or [
            s for s in listed if s.get("type") == service
        ]
        if len(matches) == 1:
            return str(matches[0]["id"])
        why = "no service has that name or type" if not matches else "more than one matches"
        raise Failed(
            attr_error(
                "service",
                f"{what}: {why}",
                "give the service's name (a keystone_service this refers to is created first)",
                code="keystone-not-found" if not matches else "keystone-ambiguous",
            )
        )

    def _ensure_region(self, t: Where, region: str) -> None:
        what = f'{t.address}: ensuring region "{region}"'
        status, _ = t.client.call("GET", f"/regions/{region}", what, allow=(404,))
        if status == 404:
            t.client.call("PUT", f"/regions/{region}", what, {"region": {}}, allow=(409,))

    def body(self, t: Where, planned: Mapping[str, Any]) -> dict[str, Any]:
        region = str(plain(planned.get("region")))
        self._ensure_region(t, region)
        return {
            "service_id": self._service_id(t, str(plain(planned["service"]))),
            "interface": str(plain(planned["interface"])),
            "url": str(plain(planned["url"])),
            "region_id": region,
        }

    def lookup(self, body: Mapping[str, Any]) -> dict[str, str]:
        keys = ("service_id", "interface", "region_id")
        return {k: str(body[k]) for k in keys}

    def computed(self, body: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": str(obj["id"]), "service_id": str(obj.get("service_id"))}

    def refreshed(self, state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **state,
            "interface": live.get("interface"),
            "url": live.get("url"),
            "region": live.get("region_id"),
        }
