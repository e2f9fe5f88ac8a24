"""``host_directory``: a directory on a host, created with its parents.

Attributes: ``path`` (absolute; a change replaces it), ``owner``, ``group``
(names or numeric ids; unset: not managed), ``mode`` (default ``"0755"``).
Only the directory itself gets the owner, group and mode; parents that
``mkdir -p`` creates get the host's defaults.

Destroying removes the directory only when it is empty. One that still
holds files (written by a service, or by something kplan does not manage)
is left in place with a warning and forgotten: kplan never deletes data it
did not write.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ReadResponse,
    ResourceSchema,
)
from kplan.provider_sdk import CREATE_BEFORE_DESTROY, attr_error, attr_warning, plain
from kplan.transport.base import Connection
from kplan.values import Path

from . import _shell
from ._common import (
    HostResourceType,
    check_abs_path,
    check_mode,
    check_principal,
    normalize_mode,
    principal,
)
from ._reader import StatReader, checked_command
from .file import _as_recorded, _principal_value

__all__ = ["HostDirectory"]

DEFAULT_MODE = "0755"
_NOT_EMPTY_EXIT = 73

SCHEMA = ResourceSchema(
    type_name="host_directory",
    description="A directory on a host, created with its parents; removed only when empty.",
    replace_order=CREATE_BEFORE_DESTROY,
    attributes={
        "path": Attribute(
            "string", required=True, force_new=True, description="absolute path on the host"
        ),
        "owner": Attribute(
            "any", optional=True, normalized=True, description="user name or uid on the host"
        ),
        "group": Attribute(
            "any", optional=True, normalized=True, description="group name or gid on the host"
        ),
        "mode": Attribute(
            "string",
            optional=True,
            default=DEFAULT_MODE,
            normalized=True,  # "640" is planned as "0640"
            description='permission bits as an octal string, e.g. "0750"',
        ),
    },
)


class HostDirectory(HostResourceType):
    schema = SCHEMA
    known_at_apply = ("path", "mode", "owner", "group")

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = [
            check_abs_path(config.get("path"), "directory"),
            check_mode(config.get("mode")),
            check_principal("owner", config.get("owner")),
            check_principal("group", config.get("group")),
        ]
        if plain(config.get("path")) == "/":
            diags.append(attr_error("path", "kplan does not manage /", code="invalid-path"))
        return [d for d in diags if d is not None]

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        return StatReader(self.ctx, self.type_name, "dir", self._from_stat).read(instances)

    def _from_stat(
        self, state: Mapping[str, Any], found: _shell.Stat, _content: bytes | None
    ) -> tuple[dict[str, Any], list[Diagnostic]]:
        new = dict(state)
        if found.kind != "dir":
            new["mode"] = None
            return new, [
                attr_warning(
                    "path",
                    f"{plain(state.get('path'))} is not a directory on the host",
                    "the next apply fails until it is moved out of the way",
                    code="not-a-directory",
                )
            ]
        new["mode"] = found.mode
        new["owner"] = _as_recorded(state.get("owner"), found.owner, found.uid)
        new["group"] = _as_recorded(state.get("group"), found.group, found.gid)
        return new, []

    def plan(self, req: PlanRequest) -> PlanResponse:
        cfg = req.config
        mode = cfg.get("mode")
        if mode is None:
            mode = DEFAULT_MODE
        elif isinstance(mode, str) and check_mode(mode) is None:
            mode = normalize_mode(mode)
        planned = {
            "path": cfg.get("path"),
            "owner": _principal_value(cfg.get("owner")),
            "group": _principal_value(cfg.get("group")),
            "mode": mode,
        }
        replace: list[Path] = []
        if req.prior is not None and req.prior.get("path") != planned["path"]:
            replace.append(("path",))
        return PlanResponse(planned=planned, requires_replace=replace)

    def write_on(
        self, conn: Connection, prior: Mapping[str, Any] | None, planned: Mapping[str, Any]
    ) -> ApplyResponse:
        path = str(plain(planned["path"]))
        owner, group = principal(planned.get("owner")), principal(planned.get("group"))
        mode = normalize_mode(str(plain(planned.get("mode")) or DEFAULT_MODE))
        q = shlex.quote(path)
        # Five digits: GNU chmod keeps a directory's setgid bit unless told explicitly.
        steps = [f"mkdir -p -- {q}", f"chmod 0{mode} -- {q}"]
        if owner or group:
            spec = (owner or "") + (f":{group}" if group else "")
            steps.append(f"chown -- {shlex.quote(spec)} {q}")
        # The owner and group checked and the directory made in one command.
        problem = checked_command(
            conn, owner, group, [" && ".join(steps)], f"cannot create {path} on host {conn.host}"
        )
        if problem is not None:
            return ApplyResponse(prior, [problem])
        return ApplyResponse({**planned, "mode": mode})

    def delete_on(self, conn: Connection, prior: Mapping[str, Any]) -> ApplyResponse:
        path = str(plain(prior.get("path")))
        q = shlex.quote(path)
        script = (
            f"[ -d {q} ] || exit 0\n"
            f'[ -z "$(ls -A -- {q})" ] || exit {_NOT_EMPTY_EXIT}\n'
            f"rmdir -- {q}"
        )
        result = conn.run(script, check=False)
        if result.exit_code == _NOT_EMPTY_EXIT:
            return ApplyResponse(
                None,
                [
                    attr_warning(
                        "path",
                        f"{path} on host {conn.host} is not empty: left in place",
                        "kplan removes a directory only when it is empty; it no longer "
                        "manages this one",
                        code="directory-not-empty",
                    )
                ],
            )
        if not result.ok:
            return ApplyResponse(
                prior,
                [
                    attr_error(
                        "path",
                        f"cannot remove {path} on host {conn.host}",
                        result.stderr_text().strip(),
                        code="delete-failed",
                    )
                ],
            )
        return ApplyResponse(None)
