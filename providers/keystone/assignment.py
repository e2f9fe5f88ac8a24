"""``keystone_role_assignment``: a role of a user on a project, all given by name.

The user and the project are looked up in their domains (``user_domain``,
``project_domain``, default ``default``) at create; the ids found are kept
(``user_id``, ``project_id``, ``role_id``) and ``id`` is
``PROJECT_ID:USER_ID:ROLE_ID``. Every attribute replaces the assignment. A
refresh costs one ``GET /v3/role_assignments`` per login; an assignment whose
ids are no longer listed (revoked by hand, or its user, project or role
deleted) reads as gone. Create is ``PUT``, which keystone answers the same
whether the assignment existed or not: adoption comes free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from kplan.provider_api import ApplyResponse, Attribute, ReadInstance, ResourceSchema
from kplan.provider_sdk import Failed, States, attr_error, plain

from ._client import Client
from ._type import KeystoneType, Where, with_auth

__all__ = ["KeystoneRoleAssignment"]


def _name(description: str) -> Attribute:
    return Attribute("string", required=True, force_new=True, description=description)


def _domain(of: str) -> Attribute:
    return Attribute(
        "string",
        optional=True,
        default="default",
        force_new=True,
        description=f"the {of}'s domain (id or name)",
    )


SCHEMA = ResourceSchema(
    type_name="keystone_role_assignment",
    description="A role of a user on a project.",
    attributes=with_auth(
        {
            "user": _name("the user's name"),
            "project": _name("the project's name"),
            "role": _name("the role's name"),
            "user_domain": _domain("user"),
            "project_domain": _domain("project"),
            "user_id": Attribute("string", computed=True),
            "project_id": Attribute("string", computed=True),
            "role_id": Attribute("string", computed=True),
        }
    ),
)


class KeystoneRoleAssignment(KeystoneType):
    schema = SCHEMA

    def read_group(self, client: Client, instances: list[ReadInstance], what: str) -> States:
        _, data = client.call("GET", "/role_assignments", what)
        found = set()
        for a in (data or {}).get("role_assignments") or []:
            user = (a.get("user") or {}).get("id")
            project = ((a.get("scope") or {}).get("project") or {}).get("id")
            role = (a.get("role") or {}).get("id")
            if user and project and role:
                found.add(f"{project}:{user}:{role}")
        return {
            i.address: dict(i.state) if plain(i.state.get("id")) in found else None
            for i in instances
        }

    def _one(self, t: Where, collection: str, query: Mapping[str, str], attribute: str) -> str:
        what = f'{t.address}: finding {attribute} "{query["name"]}"'
        listed = t.client.listed(collection, what, "?" + urlencode(query))
        for obj in listed:
            if all(obj.get(k) == v for k, v in query.items()):
                return str(obj["id"])
        raise Failed(
            attr_error(
                attribute,
                f"{what}: keystone at {t.client.auth.auth_url} has none",
                "create it first (a keystone_* resource this one refers to orders it before)",
                code="keystone-not-found",
            )
        )

    def _ids(self, t: Where, planned: Mapping[str, Any]) -> tuple[str, str, str]:
        def text(name: str) -> str:
            return str(plain(planned.get(name)))

        c = t.client
        user_domain = c.domain_id(text("user_domain"), f"{t.address}: resolving user_domain")
        project_domain = c.domain_id(
            text("project_domain"), f"{t.address}: resolving project_domain"
        )
        user = self._one(t, "users", {"name": text("user"), "domain_id": user_domain}, "user")
        project = self._one(
            t, "projects", {"name": text("project"), "domain_id": project_domain}, "project"
        )
        role = self._one(t, "roles", {"name": text("role")}, "role")
        return project, user, role

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        project, user, role = self._ids(t, planned)
        path = f"/projects/{project}/users/{user}/roles/{role}"
        t.client.call("PUT", path, f"{t.address}: granting the role")
        ids = {"user_id": user, "project_id": project, "role_id": role}
        return ApplyResponse({**planned, **ids, "id": f"{project}:{user}:{role}"})

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        ids = [str(plain(prior.get(k))) for k in ("project_id", "user_id", "role_id")]
        path = "/projects/{}/users/{}/roles/{}".format(*ids)
        t.client.call("DELETE", path, f"{t.address}: revoking the role", allow=(404,))
        return ApplyResponse(None)

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Only a new auth is recorded this way (every other attribute replaces): grant
        again, which changes nothing that is there."""
        return self.create_at(t, planned)
