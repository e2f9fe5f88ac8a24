"""The base of every keystone type: refresh per login, adoption, PATCH, idempotent delete.

A type names its API collection (``projects``) and member (``project``) and
says how a planned state becomes a request body (:meth:`KeystoneType.body`),
how an object of that name is found (:meth:`KeystoneType.lookup`) and how a
listed object refreshes a state (:meth:`KeystoneType.refreshed`). The base
does the rest:

- read: instances grouped by ``auth``; per group one token (shared by every
  type) and one ``GET /v3/COLLECTION``, matched by the recorded ``id``;
- create: an object with the same identity already there (a previous apply
  died after the POST) is adopted and brought to the plan; otherwise POST;
- update: PATCH by id (an object deleted since the refresh is created again);
- delete: DELETE by id; an object already gone is no error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_api import (
    ApplyRequest,
    ApplyResponse,
    Attribute,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ReadResponse,
    default_plan,
)
from kplan.provider_sdk import Failed, ResourceType, States, is_known, plain

from ._client import AUTH_CODE, Auth, Client, Clients, check_auth, mask_auth

__all__ = ["AUTH", "ID", "KeystoneType", "Where", "with_auth"]

AUTH = Attribute(
    "map",
    required=True,
    connection=True,
    description="the admin login: auth_url, username, password, project_name, "
    "user_domain_name, project_domain_name, region_name (optional)",
)
ID = Attribute("string", computed=True, description="keystone's id of the object")


def with_auth(attributes: Mapping[str, Attribute]) -> dict[str, Attribute]:
    """A type's attributes plus ``auth`` and the computed ``id``."""
    return {**attributes, "auth": AUTH, "id": ID}


@dataclass(frozen=True, slots=True)
class Where:
    """Where one apply step happens: the address and the session of its login."""

    address: str
    client: Client


def _names(instances: Sequence[ReadInstance]) -> str:
    first = ", ".join(i.address for i in instances[:2])
    more = len(instances) - 2
    return f"{first} and {more} more" if more > 0 else first


class KeystoneType(ResourceType[Where]):
    """One keystone resource type; see the module docstring for what the base does."""

    collection: str = ""
    member: str = ""
    #: Body keys sent on create only (keystone refuses to change them).
    create_only: tuple[str, ...] = ()
    known_at_apply = ("auth",)
    error_attribute = "auth"

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    # ---- what a type says -----------------------------------------------------------

    def body(self, t: Where, planned: Mapping[str, Any]) -> dict[str, Any]:
        """The API body of the planned object (names resolved to ids)."""
        raise NotImplementedError

    def lookup(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The fields that find an existing object of the same identity."""
        return {"name": str(body["name"])}

    def refreshed(self, state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
        """The recorded state updated with what Keystone lists now."""
        raise NotImplementedError

    def computed(self, body: Mapping[str, Any], obj: Mapping[str, Any]) -> dict[str, Any]:
        """The computed attributes of the state after a create or an update."""
        return {"id": str(obj["id"])}

    def check_more(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        return []

    # ---- validate and plan -----------------------------------------------------------

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        problem = check_auth(config.get("auth"))
        return ([problem] if problem else []) + self.check_more(config)

    def plan(self, req: PlanRequest) -> PlanResponse:
        """The default plan with auth's password kept Secret. A resource whose recorded
        auth Keystone refused at refresh (a rotated admin password) and whose configured
        auth differs is planned as an update that records the configured one."""
        resp = default_plan(self.schema, req)
        planned = dict(resp.planned)
        planned["auth"] = mask_auth(planned.get("auth"))
        reasons: list[str] = []
        prior_auth = req.prior.get("auth") if req.prior is not None else None
        if (
            prior_auth is not None
            and is_known(planned["auth"])
            and plain(planned["auth"]) != plain(prior_auth)
            and self.clients.was_refused(prior_auth)
        ):
            reasons.append("keystone refused the recorded auth at refresh: recording the new one")
        return PlanResponse(planned, resp.requires_replace, resp.diagnostics, reasons)

    # ---- read -----------------------------------------------------------------------

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        groups: dict[Auth, list[ReadInstance]] = defaultdict(list)
        diags: list[Diagnostic] = []
        for inst in instances:
            try:
                groups[Auth.parse(inst.state.get("auth"))].append(inst)
            except Failed as exc:
                diags.extend(exc.diagnostics)
        states: States = {}
        for auth, group in groups.items():
            what = f"refreshing {_names(group)}"
            try:
                states.update(self.read_group(self.clients.get(auth), group, what))
            except Failed as exc:
                if exc.status != 401 or exc.diagnostics[0].code != AUTH_CODE:
                    diags.extend(exc.diagnostics)
                    continue
                self.clients.refused(auth)
                d = exc.diagnostics[0]
                detail = (
                    "they keep their recorded state; the plan records the configured auth "
                    "(a rotated admin password) with an update"
                )
                diags.append(Diagnostic(Severity.WARNING, d.summary, detail, None, d.code))
        return ReadResponse(states, diags)

    def read_group(self, client: Client, instances: list[ReadInstance], what: str) -> States:
        """One list of the collection for every instance of one login."""
        by_id = {str(o.get("id")): o for o in client.listed(self.collection, what)}
        out: States = {}
        for inst in instances:
            live = by_id.get(str(plain(inst.state.get("id"))))
            out[inst.address] = None if live is None else self.refreshed(inst.state, live)
        return out

    # ---- apply ----------------------------------------------------------------------

    def target(self, req: ApplyRequest) -> Where:
        state = req.planned if req.planned is not None else req.prior
        auth = Auth.parse((state or {}).get("auth"))
        return Where(req.address, self.clients.get(auth))

    def find(self, t: Where, body: Mapping[str, Any], what: str) -> dict[str, Any] | None:
        """The object with the same identity as ``body``, or None."""
        match = self.lookup(body)
        for obj in t.client.listed(self.collection, what, "?" + urlencode(match)):
            if all(str(obj.get(k)) == v for k, v in match.items()):
                return obj
        return None

    def secrets(self, planned: Mapping[str, Any]) -> tuple[str, ...]:
        """Texts a request body holds that must never be logged or shown."""
        return ()

    def create_at(self, t: Where, planned: Mapping[str, Any]) -> ApplyResponse:
        what = f"{t.address}: creating {self.member}"
        body = self.body(t, planned)
        found = self.find(t, body, what)
        patch = self.adopt_patch(body, found) if found is not None else {}
        if found is not None and patch:  # made by an apply that died before recording it
            obj = self.patch(t, str(found["id"]), patch, what, planned)
        elif found is not None:
            obj = found
        else:
            _, data = t.client.call(
                "POST", f"/{self.collection}", what, {self.member: body}, (), self.secrets(planned)
            )
            obj = data[self.member]
        return ApplyResponse({**planned, **self.computed(body, obj)})

    def adopt_patch(self, body: Mapping[str, Any], found: Mapping[str, Any]) -> dict[str, Any]:
        """What adopting an existing object sends: what differs from the plan."""
        return {k: v for k, v in body.items() if k not in self.create_only and found.get(k) != v}

    def patch(
        self,
        t: Where,
        obj_id: str,
        patch: Mapping[str, Any],
        what: str,
        planned: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        _, data = t.client.call(
            "PATCH",
            f"/{self.collection}/{obj_id}",
            what,
            {self.member: dict(patch)},
            (),
            self.secrets(planned),
        )
        return dict(data[self.member])

    def update_body(
        self, prior: Mapping[str, Any], planned: Mapping[str, Any], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What an update sends: the body without what keystone sets on create only."""
        return {k: v for k, v in body.items() if k not in self.create_only}

    def update_at(
        self, t: Where, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        what = f"{t.address}: updating {self.member}"
        body = self.body(t, planned)
        patch = self.update_body(prior, planned, body)
        try:
            obj = self.patch(t, str(plain(prior.get("id"))), patch, what, planned)
        except Failed as exc:
            if exc.status != 404:
                raise
            return self.create_at(t, planned)  # deleted since the refresh
        return ApplyResponse({**planned, **self.computed(body, obj)})

    def delete_at(self, t: Where, prior: Mapping[str, Any]) -> ApplyResponse:
        what = f"{t.address}: deleting {self.member}"
        path = f"/{self.collection}/{plain(prior.get('id'))}"
        t.client.call("DELETE", path, what, allow=(404,))
        return ApplyResponse(None)
