"""``host_sysctl``: one kernel parameter on a host, set now and at every boot.

Attributes: ``name`` (``net.ipv4.ip_nonlocal_bind``; a change replaces it),
``value`` (a string or number; compared with the kernel's with runs of
whitespace as one space, so ``"4096 87380 6291456"`` matches what the kernel
prints with tabs), ``persist`` (default true: also written to
``/etc/sysctl.d/99-kplan-NAME.conf``, so a reboot keeps it).

Refresh reads every parameter of a host in one command (the files under
``/proc/sys``), so a value changed by hand shows in the plan. A network
parameter is the network namespace's: on a lab host, the lab host's own.
Destroy removes the persisted file and leaves the running value as it is:
kplan does not know what it was before.
"""

from __future__ import annotations

import re
import shlex
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
from kplan.provider_sdk import CREATE_BEFORE_DESTROY, States, attr_error, plain
from kplan.transport.base import Connection
from kplan.values import Path

from ._common import HostResourceType
from ._reader import fetch_all

__all__ = ["HostSysctl"]

_NAME_RE = re.compile(r"[a-z0-9_-]+(\.[A-Za-z0-9_-]+)+")
PERSIST_DIR = "/etc/sysctl.d"

SCHEMA = ResourceSchema(
    type_name="host_sysctl",
    description="A kernel parameter on a host, set now and (by default) at every boot.",
    replace_order=CREATE_BEFORE_DESTROY,
    attributes={
        "name": Attribute(
            "string",
            required=True,
            force_new=True,
            description="the parameter, e.g. net.ipv4.ip_nonlocal_bind",
        ),
        "value": Attribute(
            "any",
            required=True,
            normalized=True,  # 1 is planned as "1", tabs as single spaces
            description="the value, as sysctl prints it",
        ),
        "persist": Attribute(
            "bool",
            optional=True,
            default=True,
            description=f"also write {PERSIST_DIR}/99-kplan-NAME.conf for the next boot",
        ),
    },
)


def _normal(value: Any) -> Any:
    value = plain(value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    return " ".join(str(value).split())


class HostSysctl(HostResourceType):
    schema = SCHEMA
    known_at_apply = ("name", "value")
    error_attribute = "name"
    # Where the kernel's parameters and the boot-time files are; a unit test
    # points them into a temporary folder (never at this machine's own kernel).
    proc_sys = "/proc/sys"
    persist_dir = PERSIST_DIR

    def proc_path(self, name: str) -> str:
        return f"{self.proc_sys}/" + name.replace(".", "/")

    def persist_file(self, name: str) -> str:
        return f"{self.persist_dir}/99-kplan-{name}.conf"

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = []
        name = plain(config.get("name"))
        if isinstance(name, str) and not _NAME_RE.fullmatch(name):
            diags.append(
                attr_error(
                    "name",
                    f"{name!r} is not a kernel parameter name",
                    "dotted lowercase words, e.g. net.ipv4.ip_nonlocal_bind",
                    code="invalid-sysctl-name",
                )
            )
        value = plain(config.get("value"))
        if isinstance(value, bool | list | dict):
            diags.append(
                attr_error(
                    "value",
                    "value must be a string or a number",
                    'write a bool as 0 or 1, several numbers as one string ("4096 87380 6291456")',
                    code="invalid-sysctl-value",
                )
            )
        elif isinstance(value, str) and ("\n" in value or not value.strip()):
            diags.append(
                attr_error("value", "value must be one non-empty line", code="invalid-sysctl-value")
            )
        return diags

    def read_batch(self, host: str, insts: list[ReadInstance]) -> tuple[States, list[Diagnostic]]:
        """Every parameter of the host in one command."""
        paths = [self.proc_path(str(plain(i.state.get("name")))) for i in insts]
        fetched, diags = fetch_all(self.ctx.connect(host), host, paths)
        if fetched is None:
            return {}, diags
        states: States = {}
        for inst, f in zip(insts, fetched, strict=True):
            # A parameter the kernel does not have reads as unset: the plan sets it,
            # and the apply says the kernel has no such parameter.
            value = None if f is None else _normal(f.data.decode("utf-8", "replace"))
            states[inst.address] = {**inst.state, "value": value}
        return states, []

    def plan(self, req: PlanRequest) -> PlanResponse:
        cfg = req.config
        planned = {
            "name": cfg.get("name"),
            "value": _normal(cfg.get("value")),
            "persist": True if cfg.get("persist") is None else cfg.get("persist"),
        }
        replace: list[Path] = []
        if req.prior is not None and req.prior.get("name") != planned["name"]:
            replace.append(("name",))
        return PlanResponse(planned=planned, requires_replace=replace)

    def write_on(
        self, conn: Connection, prior: Mapping[str, Any] | None, planned: Mapping[str, Any]
    ) -> ApplyResponse:
        name = str(plain(planned["name"]))
        value = str(_normal(planned["value"]))
        proc = shlex.quote(self.proc_path(name))
        script = [
            f"[ -e {proc} ] || {{ echo 'the kernel has no parameter {name}' >&2; exit 1; }}",
            f"printf '%s\\n' {shlex.quote(value)} > {proc}",
        ]
        persist = shlex.quote(self.persist_file(name))
        if plain(planned.get("persist")) is False:
            script.append(f"rm -f -- {persist}")
        else:
            line = shlex.quote(f"# written by kplan\n{name} = {value}\n")
            script += [
                f"mkdir -p -- {shlex.quote(self.persist_dir)}",
                f"printf '%s' {line} > {persist}.kplan-tmp",
                f"mv -f -- {persist}.kplan-tmp {persist}",
            ]
        result = conn.run(" && ".join(script), check=False)
        if not result.ok:
            return ApplyResponse(
                prior,
                [
                    attr_error(
                        "value",
                        f"cannot set {name} on host {conn.host}",
                        result.stderr_text().strip(),
                        code="sysctl-failed",
                    )
                ],
            )
        return ApplyResponse({**planned, "value": value})

    def delete_on(self, conn: Connection, prior: Mapping[str, Any]) -> ApplyResponse:
        name = str(plain(prior.get("name")))
        result = conn.run(f"rm -f -- {shlex.quote(self.persist_file(name))}", check=False)
        if not result.ok:
            return ApplyResponse(
                prior,
                [
                    attr_error(
                        "name",
                        f"cannot remove {self.persist_file(name)} on host {conn.host}",
                        result.stderr_text().strip(),
                        code="delete-failed",
                    )
                ],
            )
        return ApplyResponse(None)
