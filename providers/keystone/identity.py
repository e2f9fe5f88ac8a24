"""``keystone_project``, ``keystone_role`` and ``keystone_user``.

A project and a user live in a domain, given by id or name (``default``:
keystone's own domain); a move to another domain replaces the object. A
refresh lists the collection once per login (``GET /v3/projects``, ``/roles``,
``/users``). A user's refresh then asks, for each enabled user, for an
unscoped token with the recorded password (``POST /v3/auth/tokens``, one
request per user): a 401 means the password was changed outside kplan, and the
refreshed state holds a Secret that differs from the recorded one, so the plan
shows ``password`` as a (sensitive) update that sets it again. A disabled user
cannot log in at all: its password is not checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from kplan.provider_api import Attribute, ReadInstance, ResourceSchema
from kplan.provider_sdk import Failed, States, attr_error, plain
from kplan.values import Secret

from ._client import MAX_IN_FLIGHT, Client
from ._type import KeystoneType, Where, with_auth

__all__ = ["PASSWORD_REFUSED", "KeystoneProject", "KeystoneRole", "KeystoneUser"]

#: What a refreshed user's password reads as when keystone refused the recorded one
#: (always wrapped in Secret: the plan shows "(sensitive)" before and after).
PASSWORD_REFUSED = "(refused by keystone)"

DOMAIN = Attribute(
    "string",
    optional=True,
    default="default",
    force_new=True,
    description="the domain's id or name",
)

PROJECT = ResourceSchema(
    type_name="keystone_project",
    description="A Keystone project.",
    attributes=with_auth(
        {
            "name": Attribute("string", required=True, description="the project's name"),
            "domain": DOMAIN,
            "description": Attribute("string", optional=True, default=""),
            "enabled": Attribute("bool", optional=True, default=True),
            "domain_id": Attribute("string", computed=True),
        }
    ),
)

ROLE = ResourceSchema(
    type_name="keystone_role",
    description="A global Keystone role.",
    attributes=with_auth({"name": Attribute("string", required=True)}),
)

USER = ResourceSchema(
    type_name="keystone_user",
    description="A Keystone user with a password.",
    attributes=with_auth(
        {
            "name": Attribute("string", required=True),
            "domain": DOMAIN,
            "password": Attribute("string", required=True, sensitive=True),
            "default_project": Attribute(
                "string", optional=True, description="a project's name, in the user's domain"
            ),
            "enabled": Attribute("bool", optional=True, default=True),
            "domain_id": Attribute("string", computed=True),
            "default_project_id": Attribute("string", computed=True),
        }
    ),
)


class KeystoneProject(KeystoneType):
    schema = PROJECT
    collection, member = "projects", "project"
    create_only = ("domain_id",)

    def body(self, t: Where, planned: Mapping[str, Any]) -> dict[str, Any]:
        what = f"{t.address}: resolving the domain"
        return {
            "name": str(plain(planned["name"])),
            "domain_id": t.client.domain_id(str(plain(planned.get("domain"))), what),
            "description": str(plain(planned.get("description")) or ""),
            "enabled": bool(plain(planned.get("enabled"))),
        }

    def lookup(self, body: Mapping[str, Any]) -> dict[str, str]:
        return {"name": str(body["name"]), "domain_id": str(body["domain_id"])}

    def computed(self, body: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": str(obj["id"]), "domain_id": str(obj.get("domain_id"))}

    def refreshed(self, state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        return {
            **state,
            "name": live.get("name"),
            "description": live.get("description") or "",
            "enabled": bool(live.get("enabled", True)),
        }


class KeystoneRole(KeystoneType):
    schema = ROLE
    collection, member = "roles", "role"

    def body(self, t: Where, planned: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": str(plain(planned["name"]))}

    def refreshed(self, state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        return {**state, "name": live.get("name")}


class KeystoneUser(KeystoneType):
    schema = USER
    collection, member = "users", "user"
    create_only = ("domain_id",)

    def body(self, t: Where, planned: Mapping[str, Any]) -> dict[str, Any]:
        domain_id = t.client.domain_id(
            str(plain(planned.get("domain"))), f"{t.address}: resolving the domain"
        )
        project = plain(planned.get("default_project"))
        project_id = None
        if project is not None:
            what = f'{t.address}: finding the default project "{project}"'
            query = "?" + urlencode({"name": project, "domain_id": domain_id})
            found = [
                p for p in t.client.listed("projects", what, query) if p.get("name") == project
            ]
            if not found:
                raise Failed(
                    attr_error(
                        "default_project",
                        f'{what}: keystone has no project "{project}" in the user\'s domain',
                        code="keystone-not-found",
                    )
                )
            project_id = str(found[0]["id"])
        return {
            "name": str(plain(planned["name"])),
            "domain_id": domain_id,
            "enabled": bool(plain(planned.get("enabled"))),
            "default_project_id": project_id,
            "password": str(plain(planned["password"])),
        }

    def lookup(self, body: Mapping[str, Any]) -> dict[str, str]:
        return {"name": str(body["name"]), "domain_id": str(body["domain_id"])}

    def computed(self, body: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": str(obj["id"]),
            "domain_id": str(obj.get("domain_id")),
            "default_project_id": body.get("default_project_id"),
        }

    def secrets(self, planned: Mapping[str, Any]) -> tuple[str, ...]:
        return (str(plain(planned["password"])),)

    def adopt_patch(self, body: Mapping[str, Any], found: Mapping[str, Any]) -> dict[str, Any]:
        # Its password cannot be read: set it, with whatever else differs.
        return {**super().adopt_patch(body, found), "password": body["password"]}

    def update_body(
        self, prior: Mapping[str, Any], planned: Mapping[str, Any], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        patch = super().update_body(prior, planned, body)
        if plain(prior.get("password")) == plain(planned.get("password")):
            del patch["password"]  # not set again (keystone may keep a password history)
        return patch

    def refreshed(self, state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        return {**state, "name": live.get("name"), "enabled": bool(live.get("enabled", True))}

    def read_group(self, client: Client, instances: list[ReadInstance], what: str) -> States:
        """The user list, then one token request per enabled user with its recorded password.

        The token requests go out together (as many at once as the client lets
        through to one keystone): each costs keystone a password hash, and a cloud
        has a service user per service.
        """
        states = super().read_group(client, instances, what)
        checks: list[tuple[str, Mapping[str, Any], str]] = []
        for inst in instances:
            state = states.get(inst.address)
            password = plain(inst.state.get("password"))
            if state is None or not state.get("enabled") or not isinstance(password, str):
                continue
            checks.append((inst.address, state, password))
        if not checks:
            return states

        def works(check: tuple[str, Mapping[str, Any], str]) -> bool:
            address, state, password = check
            return self._password_works(client, str(state["id"]), password, address)

        with ThreadPoolExecutor(max_workers=min(MAX_IN_FLIGHT, len(checks))) as pool:
            answers = list(pool.map(works, checks))
        for (address, state, _), ok in zip(checks, answers, strict=True):
            if not ok:
                states[address] = {**state, "password": Secret(PASSWORD_REFUSED)}
        return states

    def _password_works(self, client: Client, user_id: str, password: str, address: str) -> bool:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"id": user_id, "password": password}},
                }
            }
        }
        what = f"{address}: checking the recorded password"
        status, _ = client.call(
            "POST", "/auth/tokens", what, body, (401,), (password,), authenticated=False
        )
        return status != 401
