"""``docker_container``: a long-running container on one host, started and waited on until healthy.

Everything Docker fixes at create (image, command, environment, mounts, …) is
``force_new``: a change replaces the container. The replacement is created
first, beside the old one, under the temporary name ``NAME.kplan-new`` (and
the label ``kplan.staged_as``); only when Docker accepted it is the old one
stopped and removed, the new one renamed to NAME, started and waited on. A
create that fails (a bad capability, an unknown image) leaves the old
container running. A refresh ignores a container still under its temporary
name, and the next apply removes one an interrupted replace left behind.
In place: ``running`` (start or stop), ``health_timeout`` and ``stop_timeout``.
The type is restartable: ``restart_on`` triggers restart it and wait healthy.

kplan labels each container ``kplan.managed=true``, ``kplan.address=ADDRESS``
and ``kplan.spec=SHA256`` (of the normalized spec). A refresh lists the
managed containers once per host and maps them by address: a container
stopped outside kplan reads as ``running: false`` (the plan starts it again),
one removed reads as gone (the plan creates it), one whose spec label differs
was changed outside kplan (the plan replaces it). Environment values that are
Secrets stay Secrets in state and plan; the spec hash is then secret too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    AttrType,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ResourceSchema,
    default_plan,
)
from kplan.provider_sdk import CREATE_BEFORE_DESTROY, attr_error, is_known, plain
from kplan.values import UNKNOWN, Path

from . import _run
from ._base import (
    ADDRESS_LABEL,
    MANAGED_FILTER,
    SPEC_LABEL,
    DockerType,
    Failed,
    Target,
)
from ._spec import (
    NS,
    check_binds,
    check_command,
    check_healthcheck,
    check_labels,
    check_name,
    check_restart_policy,
    check_ulimits,
    check_volumes,
    normalized,
    normalized_health,
    spec_hash,
)

__all__ = ["SPEC_KEYS", "DockerContainer"]

DEFAULT_HEALTH_TIMEOUT = 120
DEFAULT_STOP_TIMEOUT = 10


def _spec(t: AttrType, description: str, **kw: Any) -> Attribute:
    return Attribute(t, optional=True, force_new=True, description=description, **kw)


SCHEMA = ResourceSchema(
    type_name="docker_container",
    description="A long-running container; apply waits until it is healthy.",
    # The new container is made beside the old one, then swapped in (replace_at).
    replace_order=CREATE_BEFORE_DESTROY,
    restartable=True,
    attributes={
        "name": Attribute(
            "string", required=True, force_new=True, description="the container's name"
        ),
        "image": Attribute(
            "string",
            required=True,
            force_new=True,
            description="image reference; use ${docker_image.X.repo_digest} to follow a pull",
        ),
        "command": _spec("any", "a string (run by /bin/sh -c) or a list of arguments"),
        "entrypoint": _spec("any", "a string or a list; replaces the image's entrypoint"),
        "environment": _spec("map", "variables; values may be secrets"),
        "binds": _spec("list", 'host paths, "SRC:DST[:ro]"'),
        "volumes": _spec("list", 'named volumes, "VOLUME:DST[:ro]"'),
        "network_mode": _spec("string", "Docker network mode", default="host"),
        "privileged": _spec("bool", "run privileged", default=False),
        "cap_add": _spec("list", "capabilities to add"),
        "cap_drop": _spec("list", "capabilities to drop"),
        "ulimits": _spec("map", 'name → N, "SOFT:HARD" or {soft, hard}'),
        "restart_policy": _spec(
            "string", "no, always, unless-stopped, on-failure[:N]", default="unless-stopped"
        ),
        "healthcheck": _spec("map", "test, interval, timeout, retries, start_period"),
        "labels": _spec("map", "labels besides kplan's own kplan.*"),
        "running": Attribute(
            "bool",
            optional=True,
            default=True,
            description="keep it running; a container stopped outside kplan is started again",
        ),
        "health_timeout": Attribute(
            "number",
            optional=True,
            default=DEFAULT_HEALTH_TIMEOUT,
            description="seconds apply waits for healthy (or running, without a healthcheck)",
        ),
        "stop_timeout": Attribute(
            "number",
            optional=True,
            default=DEFAULT_STOP_TIMEOUT,
            description="seconds a stop waits before it kills",
        ),
        "container_id": Attribute("string", computed=True, description="Docker's id"),
        "spec_hash": Attribute(
            "string", computed=True, description="sha256 of the spec; the kplan.spec label"
        ),
    },
)

SPEC_KEYS: tuple[str, ...] = tuple(n for n, a in SCHEMA.attributes.items() if a.force_new)


def _positive(name: str, value: Any) -> Diagnostic | None:
    value = plain(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
        return attr_error(name, f"{name} must be more than 0 seconds", code="invalid-timeout")
    return None


class DockerContainer(DockerType):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = [
            check_name("name", config.get("name")),
            check_command("command", config.get("command")),
            check_command("entrypoint", config.get("entrypoint")),
            check_binds(config.get("binds")),
            check_volumes(config.get("volumes")),
            check_labels(config.get("labels")),
            check_restart_policy(config.get("restart_policy")),
            check_healthcheck(config.get("healthcheck")),
            check_ulimits(config.get("ulimits")),
            _positive("health_timeout", config.get("health_timeout")),
            _positive("stop_timeout", config.get("stop_timeout")),
        ]
        return [d for d in diags if d is not None]

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        resp = default_plan(self.schema, req)
        planned = dict(resp.planned)
        planned["spec_hash"] = want = spec_hash(planned, SPEC_KEYS)
        replace: list[Path] = list(resp.requires_replace)
        reasons: list[str] = []
        prior = req.prior
        if prior is None or replace:
            planned["container_id"] = UNKNOWN
            return PlanResponse(planned, list(replace), list(resp.diagnostics))
        planned["container_id"] = prior.get("container_id")
        have = plain(prior.get("spec_hash"))
        if is_known(want) and have is not None and plain(want) != have:
            # Nothing configured changed, yet the container's spec label differs:
            # it was recreated or changed outside kplan.
            replace.append(("spec_hash",))
            reasons.append("container changed outside kplan (its kplan.spec label differs)")
        elif prior.get("running") is False and planned.get("running") is True:
            reasons.append("container stopped outside kplan")
        return PlanResponse(planned, list(replace), list(resp.diagnostics), list(reasons))

    # ---- read ---------------------------------------------------------------------

    def read_host(
        self, host: str, api: Any, instances: Sequence[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
        """One label-filtered list of the host's managed containers, mapped by address."""
        from ._base import guard

        with guard(host, "listing containers"):
            found = api.containers(all=True, filters={"label": MANAGED_FILTER})
        by_addr: dict[str, list[Mapping[str, Any]]] = {}
        for c in found:
            addr = (c.get("Labels") or {}).get(ADDRESS_LABEL)
            # A replacement not yet renamed into place is not the address's container.
            if addr and not _run.is_staged(c):
                by_addr.setdefault(addr, []).append(c)
        out: dict[str, Mapping[str, Any] | None] = {}
        for inst in instances:
            live = _pick(by_addr.get(inst.address, []), inst.state)
            out[inst.address] = None if live is None else _refreshed(inst.state, live)
        return out, []

    # ---- apply --------------------------------------------------------------------

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        spec, digest, stop_timeout = _prepared(planned)
        name = spec["name"]
        # The name, and the temporary name a replace that died may have left.
        found = _run.find_by_names(t, name, _run.staged_name(name))
        _run.refuse_foreign(t, found, [name])
        _run.remove_ours(t, found, found, stop_timeout)
        cid = _run.create_container(t, spec, str(plain(digest)))
        return self._start(t, cid, planned, digest)

    def replace_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Create the new container beside the old one, then swap them.

        1. create it (not started) as NAME.kplan-new; on failure nothing else happens;
        2. stop and remove the old container;
        3. rename the new one to NAME, start it and wait until it is healthy.
        """
        spec, digest, stop_timeout = _prepared(planned)
        name = spec["name"]
        staged = _run.staged_name(name)
        old_id = str(plain(prior.get("container_id")) or "")
        old_name = str(plain(prior.get("name")))
        old_stop = int(plain(prior.get("stop_timeout")) or DEFAULT_STOP_TIMEOUT)
        found = _run.find_by_names(t, name, staged, old_name)
        _run.refuse_foreign(t, found, [name, staged])
        _run.remove_ours(t, found, [staged], stop_timeout)  # left by a replace that died
        try:
            cid = _run.create_container(t, spec, str(plain(digest)), staged=staged)
        except Failed as exc:
            running = prior.get("running") is not False
            note = f'nothing was replaced: the old container "{old_name}" is left as it was'
            note += " and keeps running" if running else ""
            raise Failed(*(_noted(d, note) for d in exc.diagnostics), status=exc.status) from None
        try:
            if old_id:
                _run.remove_container(t, old_id, old_name, old_stop)
            # Twins kplan left for this address under the old or the new name.
            _run.remove_ours(t, found, dict.fromkeys([old_name, name]), old_stop, keep=old_id)
        except Failed as exc:
            _run.remove_quietly(t, cid, staged)
            raise Failed(*exc.diagnostics, status=exc.status) from None
        try:
            _run.rename(t, cid, staged, name)
        except Failed as exc:
            note = (
                f'the old container "{old_name}" was removed; the new one is left, not started, '
                f'as "{staged}"; the next apply creates "{name}" again'
            )
            raise Failed(*(_noted(d, note) for d in exc.diagnostics), status=exc.status) from None
        return self._start(t, cid, planned, digest)

    def _start(self, t: Target, cid: str, planned: Mapping[str, Any], digest: Any) -> ApplyResponse:
        state = {**planned, "container_id": cid, "spec_hash": digest}
        if planned.get("running") is False:
            return ApplyResponse(state)
        _run.start(t, cid, str(plain(planned.get("name"))))
        self._wait(t, cid, planned)
        return ApplyResponse(state)

    def update_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        state = {**planned, "container_id": prior.get("container_id")}
        state["spec_hash"] = prior.get("spec_hash")
        cid = str(prior.get("container_id"))
        name = str(plain(planned.get("name")))
        if planned.get("running") is not False and prior.get("running") is False:
            _run.start(t, cid, name)
            self._wait(t, cid, planned)
        elif planned.get("running") is False and prior.get("running") is not False:
            with t.guard(f'stopping container "{name}"'):
                t.api.stop(cid, timeout=int(plain(planned.get("stop_timeout")) or 10))
        return ApplyResponse(state)

    def restart_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        cid = str(prior.get("container_id"))
        name = str(plain(prior.get("name")))
        stop_timeout = int(plain(planned.get("stop_timeout")) or DEFAULT_STOP_TIMEOUT)
        with t.guard(f'restarting container "{name}"'):
            t.api.restart(cid, timeout=stop_timeout)
        self._wait(t, cid, planned)
        return ApplyResponse({**planned, "container_id": cid, "spec_hash": prior.get("spec_hash")})

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        cid = prior.get("container_id")
        name = str(plain(prior.get("name")))
        stop_timeout = int(plain(prior.get("stop_timeout")) or DEFAULT_STOP_TIMEOUT)
        if isinstance(cid, str) and cid:
            _run.remove_container(t, cid, name, stop_timeout)
        # A twin left by a failed create, a replacement left by a replace that died.
        found = _run.find_by_names(t, name, _run.staged_name(name))
        _run.refuse_foreign(t, found, [name])
        _run.remove_ours(t, found, found, stop_timeout)
        return ApplyResponse(None)

    @staticmethod
    def _wait(t: Target, cid: str, planned: Mapping[str, Any]) -> None:
        timeout = float(plain(planned.get("health_timeout")) or DEFAULT_HEALTH_TIMEOUT)
        health = plain(planned.get("healthcheck"))
        spec = normalized_health(health) or {}
        # Docker's defaults (also for 0): a check every 30 s, given 30 s.
        interval = (spec.get("interval") or 30 * NS) / NS
        slow = interval > _run.PROBE_ABOVE_INTERVAL
        _run.wait_healthy(
            t,
            cid,
            str(plain(planned.get("name"))),
            timeout,
            bool(health),
            probe=_run.probe_command(spec) if slow else None,
            probe_limit=(spec.get("timeout") or 30 * NS) / NS,
        )


def _prepared(planned: Mapping[str, Any]) -> tuple[dict[str, Any], Any, int]:
    """The normalized spec, the spec hash (as planned: maybe a Secret) and the stop timeout."""
    spec = normalized({k: planned.get(k) for k in SPEC_KEYS})
    digest = planned.get("spec_hash")
    if not is_known(digest) or digest is None:
        digest = spec_hash(planned, SPEC_KEYS)
    stop_timeout = int(plain(planned.get("stop_timeout")) or DEFAULT_STOP_TIMEOUT)
    return spec, digest, stop_timeout


def _noted(d: Diagnostic, note: str) -> Diagnostic:
    detail = f"{d.detail}\n{note}" if d.detail else note
    return Diagnostic(d.severity, d.summary, detail, d.pos, d.code, d.attribute)


def _pick(
    candidates: list[Mapping[str, Any]], state: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """The live container for a recorded one: same id, else same name, else the first."""
    if not candidates:
        return None
    for c in candidates:
        if c.get("Id") == state.get("container_id"):
            return c
    name = f"/{plain(state.get('name'))}"
    for c in candidates:
        if name in (c.get("Names") or []):
            return c
    return candidates[0]


def _refreshed(state: Mapping[str, Any], live: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(state)
    out["container_id"] = live.get("Id")
    out["running"] = live.get("State") in ("running", "restarting")
    label = (live.get("Labels") or {}).get(SPEC_LABEL)
    if plain(state.get("spec_hash")) != label:
        out["spec_hash"] = label
    return out
