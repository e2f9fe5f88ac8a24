"""``local_file``: a text file on the machine that runs kplan.

Attributes: ``path`` (replace on change), ``content`` (text, may be a
Secret), ``mode`` (octal string, default ``"0644"``, normalised to four
digits), computed ``sha256`` of the content. Content or mode changes are made
in place; every write is atomic (a temporary file in the same directory,
fsync, ``os.replace``), so a reader never sees half a file and a kill leaves
either the old or the new file behind.

Secrets: content that arrives as a Secret is revealed only to write it; the
state keeps it Secret, and its sha256 too (a digest of a short password can be
brute-forced). A read keeps content Secret when the prior state had it so.

A file whose bytes are not valid UTF-8 reads back with ``content`` = None (and
a warning): it differs from any configured text, so the next apply rewrites it.
Relative paths are resolved against kplan's working directory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.fileio import sync_dir
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ReadResponse,
    ResourceSchema,
)
from kplan.provider_sdk import (
    CREATE_BEFORE_DESTROY,
    MODE_RE,
    ResourceType,
    Target,
    attr_error,
    attr_warning,
    check_mode,
    keep_secret,
    plain,
)
from kplan.values import UNKNOWN, Path

__all__ = ["LocalFile", "normalize_mode", "sha256_of"]

DEFAULT_MODE = "0644"
TEMP_SUFFIX = ".kplan-tmp"

SCHEMA = ResourceSchema(
    type_name="local_file",
    description="A text file on the machine that runs kplan, written atomically.",
    # The new file is written before the old one is removed.
    replace_order=CREATE_BEFORE_DESTROY,
    attributes={
        "path": Attribute(
            "string", required=True, force_new=True, description="where the file lives"
        ),
        "content": Attribute("string", required=True, description="the file's text (UTF-8)"),
        "mode": Attribute(
            "string",
            optional=True,
            default=DEFAULT_MODE,
            normalized=True,  # "644" is planned as "0644"
            description='permission bits as an octal string, e.g. "0640"',
        ),
        "sha256": Attribute(
            "string", computed=True, description="hex SHA-256 of the content's UTF-8 bytes"
        ),
    },
)


def normalize_mode(mode: str) -> str:
    """``"644"`` → ``"0644"``; a valid octal string of three or four digits."""
    return mode.rjust(4, "0")


def sha256_of(content: Any) -> Any:
    """Digest of ``content`` (Secret in, Secret out; UNKNOWN in, UNKNOWN out)."""
    raw = plain(content)
    if raw is UNKNOWN or raw is None:
        return UNKNOWN if raw is UNKNOWN else None
    digest = hashlib.sha256(str(raw).encode("utf-8")).hexdigest()
    return keep_secret(digest, content)


def _check_path(path: Any) -> Diagnostic | None:
    if not isinstance(path, str):
        return None
    if not path or "\0" in path:
        return attr_error("path", "path must be a non-empty file name", code="invalid-path")
    if path.endswith(("/", os.sep)):
        return attr_error(
            "path", f'path "{path}" names a directory', "give a file name", code="invalid-path"
        )
    return None


class LocalFile(ResourceType[Target]):
    schema = SCHEMA

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags = [check_mode(plain(config.get("mode"))), _check_path(plain(config.get("path")))]
        return [d for d in diags if d is not None]

    # ---- read ---------------------------------------------------------------------

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        states: dict[str, Mapping[str, Any] | None] = {}
        diags: list[Diagnostic] = []
        for inst in instances:
            state, inst_diags = self._read_one(inst)
            states[inst.address] = state
            diags.extend(inst_diags)
        return ReadResponse(states=states, diagnostics=diags)

    def _read_one(self, inst: ReadInstance) -> tuple[Mapping[str, Any] | None, list[Diagnostic]]:
        path = str(plain(inst.state.get("path", "")))
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return None, []
        except OSError as e:
            return dict(inst.state), [
                attr_error("path", f"cannot read {path}: {e.strerror}", code="read-failed")
            ]
        diags: list[Diagnostic] = []
        content: str | None
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            content = None
            diags.append(
                attr_warning(
                    "content",
                    f"{path} is not valid UTF-8 text",
                    "its content reads as null; the next apply rewrites it",
                    code="not-utf8",
                )
            )
        prior_content = inst.state.get("content")
        digest = hashlib.sha256(data).hexdigest()
        state = {
            "path": inst.state.get("path"),
            "content": keep_secret(content, prior_content),
            "mode": f"{stat.S_IMODE(st.st_mode):04o}",
            "sha256": keep_secret(digest, prior_content),
        }
        return state, diags

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        """sha256 is planned from the content, so dependents know it at plan time."""
        content = req.config.get("content")
        mode = req.config.get("mode")
        if mode is None:
            mode = DEFAULT_MODE
        elif isinstance(mode, str) and MODE_RE.fullmatch(mode):
            mode = normalize_mode(mode)
        planned = {
            "path": req.config.get("path"),
            "content": content,
            "mode": mode,
            "sha256": sha256_of(content),
        }
        replace: list[Path] = []
        if req.prior is not None and req.prior.get("path") != planned["path"]:
            replace.append(("path",))
        return PlanResponse(planned=planned, requires_replace=replace)

    # ---- apply --------------------------------------------------------------------

    def create_at(self, t: Target, planned: Mapping[str, Any]) -> ApplyResponse:
        return self._write(planned, fallback=None)

    def update_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        return self._write(planned, fallback=prior)

    def replace_at(
        self, t: Target, prior: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> ApplyResponse:
        """Write the new file first, then remove the old one: never a moment with neither."""
        written = self._write(planned, fallback=prior)
        if any(d.is_error for d in written.diagnostics):
            return written
        if plain(prior.get("path")) == plain(planned.get("path")):
            return written
        removed = self.delete_at(t, prior)
        return ApplyResponse(written.new_state, [*written.diagnostics, *removed.diagnostics])

    def delete_at(self, t: Target, prior: Mapping[str, Any]) -> ApplyResponse:
        path = str(plain(prior.get("path", "")))
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            return ApplyResponse(
                prior,
                [attr_error("path", f"cannot delete {path}: {_reason(e)}", code="delete-failed")],
            )
        return ApplyResponse(None)

    def _write(
        self, planned: Mapping[str, Any], fallback: Mapping[str, Any] | None
    ) -> ApplyResponse:
        path, content, mode = (plain(planned.get(k)) for k in ("path", "content", "mode"))
        mode = DEFAULT_MODE if mode is None else mode
        problem = check_mode(mode) or _check_path(path)
        if problem is None and not isinstance(path, str):
            problem = attr_error(
                "path", "path is not a known string at apply", code="unknown-value"
            )
        if problem is None and not isinstance(content, str):
            problem = attr_error(
                "content", "content is not known text at apply", code="unknown-value"
            )
        if problem is not None:
            return ApplyResponse(fallback, [problem])
        mode = normalize_mode(mode)
        try:
            atomic_write(path, str(content).encode("utf-8"), int(mode, 8))
        except OSError as e:
            return ApplyResponse(
                fallback,
                [attr_error("path", f"cannot write {path}: {_reason(e)}", code="write-failed")],
            )
        state = {
            "path": planned.get("path"),
            "content": planned.get("content"),
            "mode": mode,
            "sha256": sha256_of(planned.get("content")),
        }
        return ApplyResponse(state)


def _reason(e: OSError) -> str:
    if isinstance(e, IsADirectoryError):
        return "it is a directory"
    if isinstance(e, NotADirectoryError):
        return "a parent of the path is not a directory"
    if isinstance(e, PermissionError):
        return "permission denied"
    return e.strerror or str(e)


def atomic_write(path: str, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a mix.

    Creates missing parent directories. The temporary file lives beside the
    target (same file system, so ``os.replace`` is atomic) and is removed on
    any failure.
    """
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise IsADirectoryError(21, "Is a directory", path)
    parent = os.path.dirname(target)
    try:
        os.makedirs(parent, exist_ok=True)
    except FileExistsError:  # a component of the parent is a file
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", parent) from None
    fd, tmp = tempfile.mkstemp(
        dir=parent, prefix=f".{os.path.basename(target)}.", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_dir(parent)
