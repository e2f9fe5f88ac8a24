"""``host_file``: a text file on a host, from ``content`` or a Jinja2 ``template``.

Attributes: ``path`` (absolute; a change replaces the file), exactly one of
``content`` and ``template`` (with ``vars``), ``owner`` and ``group`` (names
or numeric ids, resolved on the host; unset: left as the write makes them),
``mode`` (default ``"0644"``); computed ``sha256`` and ``content_masked``.
A template is rendered at plan time and the result kept in ``content``, so
the plan shows a line diff of the file. ``template`` and ``vars`` are inputs
compared through ``content``: when they change but the rendered text does
not, the file is no change (and restarts nothing). ``ini_overrides`` (a list of
``{path, template}``) are INI snippets rendered with the same vars and merged
over the rendered template key by key (``merged``, ``ini``); the plan notes the
snippet each changed key comes from. Writes are atomic (a temporary file
beside the target, then a rename); missing parent directories are created.

Refresh costs one command per host for every file (kind, owner, group, mode,
SHA-256) and, only when some file's digest differs from the recorded one, a
second command that reads those files back for the diff.

Secrets: content that is (or was rendered from) a Secret stays Secret in
plan and state, its digest too; ``content_masked`` then holds the rendering
with each secret replaced by ``(sensitive)`` — what the plan can show. A file
that drifted is read back and masked the same way (``template.mask_like``),
so the plan shows a line diff of its drift too.
"""

from __future__ import annotations

import hashlib
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
from kplan.provider_sdk import CREATE_BEFORE_DESTROY, attr_error, attr_warning, keep_secret, plain
from kplan.transport.base import CommandFailed, Connection
from kplan.values import UNKNOWN, Path, Secret, contains_unknown, iter_paths

from . import _shell, merged, template
from ._common import (
    HostResourceType,
    check_abs_path,
    check_mode,
    check_principal,
    normalize_mode,
    principal,
)
from ._reader import StatReader, checked_command

__all__ = ["HostFile"]

DEFAULT_MODE = "0644"

SCHEMA = ResourceSchema(
    type_name="host_file",
    description="A text file on a host, from content or a Jinja2 template, written atomically.",
    replace_order=CREATE_BEFORE_DESTROY,
    attributes={
        "path": Attribute(
            "string", required=True, force_new=True, description="absolute path on the host"
        ),
        "content": Attribute(
            "string", optional=True, description="the file's text; or give template instead"
        ),
        # Template and vars are inputs: the file is compared by the text they render, so
        # a variable this template does not use (or a reworded template that renders
        # the same text) changes nothing on the host and restarts nothing.
        "template": Attribute(
            "string",
            optional=True,
            description='Jinja2 source rendered with vars, e.g. ${file("keystone.conf.j2")}',
            compared_via=("content",),
        ),
        "vars": Attribute(
            "map", optional=True, description="the template's variables", compared_via=("content",)
        ),
        # INI snippets merged over the rendered template, key by key, in order.
        "ini_overrides": Attribute(
            "list",
            optional=True,
            description="INI snippets {path, template} merged over the rendered template, "
            "in order, e.g. ${config_overrides(var.config_overrides, [...])}",
            compared_via=("content",),
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
            description='permission bits as an octal string, e.g. "0640"',
        ),
        "sha256": Attribute("string", computed=True, description="hex SHA-256 of the content"),
        "content_masked": Attribute(
            "string",
            computed=True,
            description="the rendered text with every secret shown as (sensitive)",
        ),
    },
)


def sha256_of(content: Any) -> Any:
    raw = plain(content)
    if raw is UNKNOWN or raw is None:
        return raw
    return keep_secret(hashlib.sha256(str(raw).encode("utf-8")).hexdigest(), content)


class HostFile(HostResourceType):
    schema = SCHEMA
    known_at_apply = ("path", "content", "mode", "owner", "group")

    # ---- validate -----------------------------------------------------------------

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = [
            check_abs_path(config.get("path")),
            check_mode(config.get("mode")),
            check_principal("owner", config.get("owner")),
            check_principal("group", config.get("group")),
        ]
        has_content = config.get("content") is not None
        has_template = config.get("template") is not None
        if has_content and has_template:
            diags.append(
                attr_error(
                    "template",
                    "host_file takes content or template, not both",
                    "remove one of them",
                    code="conflicting-attributes",
                )
            )
        elif not has_content and not has_template:
            diags.append(
                attr_error(
                    "content",
                    "host_file needs content or template",
                    'e.g. content: "key = value\\n" or template: ${file("app.conf.j2")}',
                    code="missing-attribute",
                )
            )
        if config.get("vars") is not None and has_content:
            diags.append(
                attr_error("vars", "vars is used only with template", code="conflicting-attributes")
            )
        overrides = config.get("ini_overrides")
        if overrides is not None and not has_template:
            diags.append(
                attr_error(
                    "ini_overrides",
                    "ini_overrides is used only with template",
                    code="conflicting-attributes",
                )
            )
        elif overrides is not None and not contains_unknown(overrides):
            for problem in merged.check(overrides):
                diags.append(attr_error("ini_overrides", problem, code="template-error"))
        source = plain(config.get("template"))
        variables = config.get("vars") or {}
        if isinstance(source, str):
            err = template.syntax_error(source)
            if err is None and isinstance(variables, Mapping) and contains_unknown(variables):
                # plan renders a template whose vars are all known; until then, a name
                # that no value can bring is found by a dry rendering.
                err = template.undefined_name(source, variables)
            if err is not None:
                diags.append(
                    attr_error("template", f"template {err.text()}", code="template-error")
                )
        return [d for d in diags if d is not None]

    # ---- read ---------------------------------------------------------------------

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        return StatReader(self.ctx, self.type_name, "file", self._from_stat).read(instances)

    def _from_stat(
        self,
        state: Mapping[str, Any],
        found: _shell.Stat,
        content: bytes | None,
    ) -> tuple[dict[str, Any], list[Diagnostic]]:
        """The refreshed state from the host's facts (content: only when it was read back)."""
        new = dict(state)
        diags: list[Diagnostic] = []
        path = plain(state.get("path"))
        if found.kind != "file":
            new.update(content=None, sha256=None, mode=None)
            diags.append(
                attr_warning(
                    "path",
                    f"{path} is not a regular file on the host",
                    "the next apply replaces it with the file",
                    code="not-a-file",
                )
            )
            return new, diags
        prior_content = state.get("content")
        recorded = plain(state.get("sha256"))
        if found.sha256 != recorded:
            text: str | None = None
            if content is not None:
                try:
                    text = content.decode("utf-8")
                except UnicodeDecodeError:
                    diags.append(
                        attr_warning(
                            "content",
                            f"{path} is not valid UTF-8 text",
                            "its content reads as null; the next apply rewrites it",
                            code="not-utf8",
                        )
                    )
            new["content"] = keep_secret(text, prior_content)
            new["sha256"] = keep_secret(found.sha256, prior_content)
            new["content_masked"] = _masked_drift(
                text, prior_content, state.get("content_masked"), state.get("vars")
            )
        new["mode"] = found.mode
        new["owner"] = _as_recorded(state.get("owner"), found.owner, found.uid)
        new["group"] = _as_recorded(state.get("group"), found.group, found.gid)
        return new, diags

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        cfg = req.config
        mode = cfg.get("mode")
        if mode is None:
            mode = DEFAULT_MODE
        elif isinstance(mode, str) and check_mode(mode) is None:
            mode = normalize_mode(mode)
        planned: dict[str, Any] = {
            "path": cfg.get("path"),
            "content": cfg.get("content"),
            "template": cfg.get("template"),
            "vars": cfg.get("vars"),
            "ini_overrides": cfg.get("ini_overrides"),
            "owner": _principal_value(cfg.get("owner")),
            "group": _principal_value(cfg.get("group")),
            "mode": mode,
            "content_masked": None,
        }
        diags: list[Diagnostic] = []
        notes: list[tuple[Path, str]] = []
        if planned["template"] is not None:
            notes = self._render(planned, req.prior, diags)
        planned["sha256"] = sha256_of(planned["content"])
        replace: list[Path] = []
        if req.prior is not None and req.prior.get("path") != planned["path"]:
            replace.append(("path",))
        return PlanResponse(
            planned=planned, requires_replace=replace, diagnostics=diags, notes=notes
        )

    def _render(
        self, planned: dict[str, Any], prior: Mapping[str, Any] | None, diags: list[Diagnostic]
    ) -> list[tuple[Path, str]]:
        """Render the template (and merge its overrides) into planned; the plan's notes."""
        source, variables = planned["template"], planned["vars"] or {}
        raw_overrides = planned["ini_overrides"]
        overrides = merged.overrides_of(raw_overrides) if raw_overrides is not None else []
        if isinstance(overrides, str):
            diags.append(attr_error("ini_overrides", overrides, code="template-error"))
            return []
        if contains_unknown([source, variables, raw_overrides]):
            planned["content"] = planned["content_masked"] = UNKNOWN
            return [] if contains_unknown(raw_overrides) else merged.dry_notes(overrides, variables)
        try:
            rendered = template.render(source, variables)
        except template.RenderError as err:
            diags.append(attr_error("template", f"template {err.text()}", code="template-error"))
            return []
        if not overrides:
            planned["content"], planned["content_masked"] = rendered.content, rendered.masked
            return []
        try:
            rendered, sources = merged.merge_rendered(rendered, overrides, variables)
        except merged.MergeError as err:
            diags.append(attr_error("ini_overrides", err.message, code="template-error"))
            return []
        planned["content"], planned["content_masked"] = rendered.content, rendered.masked
        prior_content = prior.get("content") if prior is not None else None
        return merged.notes_for(sources, plain(rendered.content), prior_content)

    # ---- apply --------------------------------------------------------------------

    def write_on(
        self, conn: Connection, prior: Mapping[str, Any] | None, planned: Mapping[str, Any]
    ) -> ApplyResponse:
        path = str(plain(planned["path"]))
        content = plain(planned.get("content"))
        if not isinstance(content, str):
            return ApplyResponse(
                prior, [attr_error("content", "content is not known text at apply")]
            )
        owner, group = principal(planned.get("owner")), principal(planned.get("group"))
        mode = normalize_mode(str(plain(planned.get("mode")) or DEFAULT_MODE))
        # A command only for owner or group names to look up: the directory is made
        # by the write itself, and only when it is missing.
        problem = checked_command(
            conn, owner, group, [], f"cannot look up the owner of {path} on host {conn.host}"
        )
        if problem is not None:
            return ApplyResponse(prior, [problem])
        try:
            conn.write_file(
                path,
                content.encode("utf-8"),
                mode=int(mode, 8),
                owner=owner,
                group=group,
                atomic=True,
                parents=True,
            )
        except CommandFailed as exc:
            return ApplyResponse(prior, [_write_failed(path, exc.diagnostics[0].detail)])
        except (OSError, KeyError) as exc:  # a local connection raises these directly
            return ApplyResponse(prior, [_write_failed(path, str(exc))])
        state = dict(planned)
        state["mode"] = mode
        state["sha256"] = sha256_of(planned.get("content"))
        return ApplyResponse(state)

    def delete_on(self, conn: Connection, prior: Mapping[str, Any]) -> ApplyResponse:
        path = str(plain(prior.get("path")))
        result = conn.run(["rm", "-f", "--", path], check=False)
        if not result.ok:
            return ApplyResponse(
                prior,
                [
                    attr_error(
                        "path",
                        f"cannot delete {path}",
                        result.stderr_text().strip(),
                        code="delete-failed",
                    )
                ],
            )
        return ApplyResponse(None)


def _masked_drift(text: str | None, prior: Any, prior_masked: Any, variables: Any) -> str | None:
    """The drifted text with the recorded content's secrets masked, for the plan's line diff.

    The secrets the template was given (the Secret values among ``vars``) are masked
    wherever they appear, besides what ``mask_like`` infers from the masked rendering:
    two secrets side by side cannot be told apart from the rendering alone."""
    real = plain(prior)
    if text is None or not isinstance(real, str) or not isinstance(prior_masked, str):
        return None
    given = {
        str(raw)
        for _, leaf in iter_paths(variables or {})
        if isinstance(leaf, Secret)
        for _, raw in iter_paths(leaf.reveal())
        if str(raw)
    }
    return template.mask_like(text, real, prior_masked, given)


def _write_failed(path: str, detail: str) -> Diagnostic:
    return attr_error("path", f"cannot write {path}", detail, code="write-failed")


def _principal_value(value: Any) -> Any:
    """Owner and group are kept as strings; a number in YAML (42401) becomes "42401"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Secret):
        return _principal_value(value.reveal())
    return value


def _as_recorded(recorded: Any, name: str, number: str) -> str | None:
    """The host's owner in the form the configuration used (name or number); None if unmanaged."""
    rec = plain(recorded)
    if rec is None:
        return None
    return number if str(rec).isdigit() else name
