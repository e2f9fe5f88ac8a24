"""``docker_volume``: a named volume on one host.

Attributes: ``name``, ``driver`` (default ``local``), ``driver_opts`` and
``labels``; all fixed at create, so any change replaces the volume — and a
replace, like a delete, loses its data (use ``prevent_destroy``). Computed:
``mountpoint``. kplan labels it ``kplan.managed=true`` and
``kplan.address=ADDRESS``; a refresh lists the managed volumes once per host.
A volume of the same name that kplan does not manage is never taken over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ApplyResponse, Attribute, ReadInstance, ResourceSchema
from kplan.provider_sdk import DESTROY_BEFORE_CREATE, attr_error, plain

from ._base import ADDRESS_LABEL, MANAGED_FILTER, MANAGED_LABEL, DockerType, Failed, Target, guard
from ._spec import check_labels, check_name

__all__ = ["DockerVolume"]

SCHEMA = ResourceSchema(
    type_name="docker_volume",
    description="A named Docker volume on a host.",
    # A volume's name is its identity: the old one goes first (and its data with it).
    replace_order=DESTROY_BEFORE_CREATE,
    attributes={
        "name": Attribute("string", required=True, force_new=True, description="volume name"),
        "driver": Attribute(
            "string", optional=True, force_new=True, default="local", description="volume driver"
        ),
        "driver_opts": Attribute(
            "map", optional=True, force_new=True, description="options for the driver"
        ),
        "labels": Attribute(
            "map", optional=True, force_new=True, description="labels besides kplan's own"
        ),
        "mountpoint": Attribute("string", computed=True, description="where its data lives"),
    },
)


class DockerVolume(DockerType):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = [check_name("name", config.get("name")), check_labels(config.get("labels"))]
        return [d for d in diags if d is not None]

    def read_host(
        self, host: str, api: Any, instances: Sequence[ReadInstance]
    ) -> tuple[dict[str, Mapping[str, Any] | None], list[Diagnostic]]:
        """One label-filtered volume list for the host, mapped by name."""
        with guard(host, "listing volumes"):
            listed = api.volumes(filters={"label": MANAGED_FILTER})
        by_name = {v.get("Name"): v for v in (listed or {}).get("Volumes") or []}
        out: dict[str, Mapping[str, Any] | None] = {}
        for inst in instances:
            live = by_name.get(plain(inst.state.get("name")))
            if live is None or (live.get("Labels") or {}).get(ADDRESS_LABEL) != inst.address:
                out[inst.address] = None
            else:
                out[inst.address] = {**inst.state, "mountpoint": live.get("Mountpoint")}
        return out, []

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(planned.get("name")))
        labels = {str(k): str(v) for k, v in (plain(planned.get("labels")) or {}).items()}
        labels.update({MANAGED_LABEL: "true", ADDRESS_LABEL: t.address})
        existing: Mapping[str, Any] | None
        try:
            with t.guard(f'inspecting volume "{name}"'):
                existing = t.api.inspect_volume(name)
        except Failed as exc:
            if exc.status != 404:
                raise
            existing = None
        if existing is not None:
            owner = (existing.get("Labels") or {}).get(ADDRESS_LABEL)
            if owner != t.address:
                why = f"kplan manages it as {owner}" if owner else "kplan does not manage it"
                raise Failed(
                    attr_error(
                        "name",
                        f'host {t.host}: a volume named "{name}" already exists',
                        f"{why}; kplan never takes over a volume (its data)",
                        "volume-exists",
                    )
                )
            created = existing  # left by an earlier run whose record was lost
        else:
            with t.guard(f'creating volume "{name}"', "driver"):
                created = t.api.create_volume(
                    name,
                    driver=plain(planned.get("driver")) or "local",
                    driver_opts=plain(planned.get("driver_opts")) or None,
                    labels=labels,
                )
        return ApplyResponse({**planned, "mountpoint": created.get("Mountpoint")})

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(prior.get("name")))
        try:
            with t.guard(f'removing volume "{name}"'):
                t.api.remove_volume(name)
        except Failed as exc:
            d = exc.diagnostics[0]
            if exc.status == 404:
                return ApplyResponse(None)
            if exc.status == 409:
                raise Failed(
                    Diagnostic.error(
                        d.summary,
                        d.detail + "\nremove the containers that use it first",
                        code=d.code,
                    )
                ) from None
            raise
        return ApplyResponse(None)
