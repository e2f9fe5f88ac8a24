"""``docker_image``: an image pulled on one host from a registry.

Attributes: ``name`` (repository, replace on change), ``tag`` (default
``latest``) or ``digest`` (``sha256:…``, pins it; the tag is then ignored),
``registry_auth`` (``{username, password}``, sensitive; the password is
revealed only to the Docker API, never logged), ``keep_locally`` (a delete
leaves the image on the host). Computed: ``image_id``, ``repo_digest``
(``NAME@sha256:…`` of what was pulled: give it to a container's ``image``
so that the container follows a new pull) and ``registry_digest`` (what the
registry served for the tag at the last refresh).

A refresh costs one image list per host plus one registry lookup per image
that follows a tag (``inspect_distribution``). A tag that moved in the
registry plans an update (a new pull) whose reason names both digests; a
registry that cannot be asked gives a warning and keeps what state says.
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
    default_plan,
)
from kplan.provider_sdk import CREATE_BEFORE_DESTROY, attr_error, attr_warning, is_known, plain
from kplan.values import UNKNOWN

from ._base import API_CODE, DockerType, Failed, Target, guard

__all__ = ["DockerImage"]

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
PULL_CODE = "image-pull"
# How registries and dockerd say that a login is missing or was refused.
_AUTH_WORDS = ("no basic auth credentials", "unauthorized", "authentication required")

SCHEMA = ResourceSchema(
    type_name="docker_image",
    description="An image pulled on a host from a registry.",
    # The new image is pulled before the old one is removed: a container may use it.
    replace_order=CREATE_BEFORE_DESTROY,
    attributes={
        "name": Attribute(
            "string",
            required=True,
            force_new=True,
            description="repository, e.g. registry.example:5000/kolla/keystone",
        ),
        "tag": Attribute("string", optional=True, default="latest", description="tag to pull"),
        "digest": Attribute(
            "string", optional=True, description="sha256:… to pin; the tag is then ignored"
        ),
        "registry_auth": Attribute(
            "map", optional=True, sensitive=True, description="{username, password}"
        ),
        "keep_locally": Attribute(
            "bool", optional=True, default=False, description="a delete leaves the image"
        ),
        "image_id": Attribute("string", computed=True, description="the image's id on the host"),
        "repo_digest": Attribute(
            "string", computed=True, description="NAME@sha256:… of what was pulled"
        ),
        "registry_digest": Attribute(
            "string",
            computed=True,
            description="the digest the registry served for the tag at the last refresh",
        ),
    },
)


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _reference(state: Mapping[str, Any]) -> str:
    name, digest = plain(state.get("name")), plain(state.get("digest"))
    return f"{name}@{digest}" if digest else f"{name}:{plain(state.get('tag')) or 'latest'}"


def _auth(state: Mapping[str, Any]) -> dict[str, str] | None:
    auth = plain(state.get("registry_auth"))
    if not auth:
        return None
    return {"username": str(auth["username"]), "password": str(auth["password"])}


def _pull_hint(detail: str, with_auth: bool) -> str:
    """A next step for a refused login (the password itself is never shown)."""
    if not any(w in detail.lower() for w in _AUTH_WORDS):
        return ""
    if with_auth:
        return "\nthe registry refused the login: check registry_auth's username and password"
    return "\nthe registry requires a login: set registry_auth {username, password}"


def _digest_of(repo_digest: Any) -> str | None:
    text = plain(repo_digest)
    return text.rsplit("@", 1)[1] if isinstance(text, str) and "@" in text else None


def _repo_digest(name: str, repo_digests: Sequence[str]) -> str | None:
    for rd in repo_digests or ():
        if rd.rsplit("@", 1)[0] == name:
            return rd
    return None


class DockerImage(DockerType):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        digest = plain(config.get("digest"))
        if isinstance(digest, str) and not _DIGEST_RE.match(digest):
            out.append(
                attr_error(
                    "digest",
                    f'digest "{digest}" is not sha256:<64 hex digits>',
                    code="invalid-digest",
                )
            )
        tag = plain(config.get("tag"))
        if isinstance(tag, str) and not _TAG_RE.match(tag):
            out.append(attr_error("tag", f'tag "{tag}" is not a valid tag', code="invalid-tag"))
        name = plain(config.get("name"))
        if isinstance(name, str) and (":" in name.rsplit("/", 1)[-1] or "@" in name):
            out.append(
                attr_error(
                    "name",
                    f'name "{name}" carries a tag or digest',
                    "give the repository in name, and the tag or digest in tag or digest",
                    "invalid-image-name",
                )
            )
        auth = plain(config.get("registry_auth"))
        if isinstance(auth, dict) and not {"username", "password"} <= set(auth):
            out.append(
                attr_error(
                    "registry_auth",
                    "registry_auth needs username and password",
                    code="invalid-registry-auth",
                )
            )
        return out

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        resp = default_plan(self.schema, req)
        prior = req.prior
        if prior is None or resp.requires_replace or not is_known(resp.planned.get("image_id")):
            return resp
        have = _digest_of(prior.get("repo_digest"))
        latest = plain(prior.get("registry_digest"))
        if prior.get("digest") or not latest or not have or latest == have:
            return resp
        planned = {**resp.planned, "image_id": UNKNOWN, "repo_digest": UNKNOWN}
        planned["registry_digest"] = latest
        reason = (
            f"tag {plain(prior.get('tag'))} of {plain(prior.get('name'))} moved in the registry: "
            f"{_short(have)} → {_short(latest)}"
        )
        return PlanResponse(planned, [], list(resp.diagnostics), [reason])

    # ---- read ---------------------------------------------------------------------

    def read_host(
        self, host: str, api: Any, instances: Sequence[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
        """One image list for the host, then one registry lookup per tag followed."""
        with guard(host, "listing images"):
            images = api.images()
        by_tag: dict[str, Mapping[str, Any]] = {}
        by_id: dict[str, Mapping[str, Any]] = {}
        for img in images:
            by_id[img.get("Id", "")] = img
            for ref in [*(img.get("RepoTags") or []), *(img.get("RepoDigests") or [])]:
                by_tag[ref] = img
        out: dict[str, Mapping[str, Any] | None] = {}
        diags: list[Diagnostic] = []
        asked: dict[str, str | None] = {}
        for inst in instances:
            ref = _reference(inst.state)
            live = by_tag.get(ref) or by_id.get(str(inst.state.get("image_id")))
            if live is None:
                out[inst.address] = None
                continue
            state = dict(inst.state)
            name = str(plain(state.get("name")))
            state["image_id"] = live.get("Id")
            state["repo_digest"] = _repo_digest(name, live.get("RepoDigests") or []) or state.get(
                "repo_digest"
            )
            if not state.get("digest"):
                if ref not in asked:
                    asked[ref] = self._registry_digest(host, api, ref, state, inst.address, diags)
                if asked[ref] is not None:
                    state["registry_digest"] = asked[ref]
            out[inst.address] = state
        return out, diags

    @staticmethod
    def _registry_digest(
        host: str,
        api: Any,
        ref: str,
        state: Mapping[str, Any],
        address: str,
        diags: list[Diagnostic],
    ) -> str | None:
        try:
            with guard(host, f"asking the registry for {ref}"):
                dist = api.inspect_distribution(ref, auth_config=_auth(state))
        except Failed as exc:
            d = exc.diagnostics[0]
            if d.code == "host-unreachable":
                raise
            diags.append(
                attr_warning(
                    "tag",
                    f"{address}: could not ask the registry whether {ref} moved",
                    d.detail,
                    "registry-unreachable",
                )
            )
            return None
        digest = (dist.get("Descriptor") or {}).get("digest")
        return str(digest) if digest else None

    # ---- apply --------------------------------------------------------------------

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        return ApplyResponse(self._pull(t, planned))

    def update_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return ApplyResponse(self._pull(t, planned))

    def replace_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Pull the new image first: a container may still use the old one."""
        new_state = self._pull(t, planned)
        deleted = self.delete_at(t, prior)
        return ApplyResponse(new_state, [d for d in deleted.diagnostics if not d.is_error])

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        if prior.get("keep_locally"):
            return ApplyResponse(None)
        ref = _reference(prior)
        try:
            with t.guard(f"removing image {ref}"):
                t.api.remove_image(ref)
        except Failed as exc:
            d = exc.diagnostics[0]
            if exc.status == 404:
                return ApplyResponse(None)
            if exc.status == 409:
                hint = d.detail + "\na container still uses it; set keep_locally to leave it"
                raise Failed(Diagnostic.error(d.summary, hint, code=d.code)) from None
            raise
        return ApplyResponse(None)

    def _pull(self, t: Target, planned: Mapping[str, Any]) -> dict[str, Any]:
        name = str(plain(planned.get("name")))
        digest = plain(planned.get("digest"))
        tag = str(digest or plain(planned.get("tag")) or "latest")
        ref = _reference(planned)
        attribute = "digest" if digest else "tag"
        auth = _auth(planned)

        def refused(detail: str) -> Failed:
            return Failed(
                attr_error(
                    attribute,
                    f"host {t.host}: pulling {ref} failed",
                    detail + _pull_hint(detail, auth is not None),
                    PULL_CODE,
                )
            )

        try:
            with t.guard(f"pulling {ref}", attribute):
                for msg in t.api.pull(name, tag=tag, stream=True, decode=True, auth_config=auth):
                    if isinstance(msg, dict) and msg.get("error"):
                        raise refused(str(msg["error"]))
        except Failed as exc:
            # dockerd answers a refusal it meets before the first progress line (no
            # login, a wrong password, an unknown tag) with an HTTP error, not in
            # the stream: it is still the registry refusing the pull.
            d = exc.diagnostics[0]
            if exc.status is None or d.code != API_CODE:
                raise
            raise refused(d.detail) from None
        with t.guard(f"inspecting image {ref}"):
            info = t.api.inspect_image(ref)
        repo_digest = _repo_digest(name, info.get("RepoDigests") or [])
        state = dict(planned)
        state["image_id"] = info.get("Id")
        state["repo_digest"] = repo_digest
        state["registry_digest"] = _digest_of(repo_digest)
        return state
