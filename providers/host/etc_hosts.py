"""``host_etc_hosts``: a block of names kplan keeps in a host's /etc/hosts.

Attributes: ``path`` (default ``/etc/hosts``; a change moves the block),
``entries`` (map of name → IP address; default: every host of the
inventory, its name → its address). The block sits between
``# BEGIN kplan managed hosts`` and ``# END kplan managed hosts``, one
``ADDRESS NAME`` line per entry sorted by name; every line outside it is
left exactly as it is. A missing block is appended at the end of the file.

The file is rewritten in place (same inode), not renamed over: containers
that bind-mount /etc/hosts see the change. Destroying removes the block and
nothing else. Keep one instance per host and file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic, Severity
from kplan.provider_api import (
    ApplyResponse,
    Attribute,
    PlanRequest,
    PlanResponse,
    ReadInstance,
    ResourceSchema,
)
from kplan.provider_sdk import CREATE_BEFORE_DESTROY, States, attr_error, is_known, plain
from kplan.transport.base import CommandFailed, Connection
from kplan.values import UNKNOWN, Path

from . import _shell
from ._common import HostResourceType, check_abs_path
from ._reader import fetch_all, read_failed

__all__ = ["BEGIN", "END", "HostEtcHosts", "parse_block", "replace_block"]

BEGIN = "# BEGIN kplan managed hosts"
END = "# END kplan managed hosts"
DEFAULT_PATH = "/etc/hosts"
_NAME_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]{0,252})")

SCHEMA = ResourceSchema(
    type_name="host_etc_hosts",
    description="A managed block of name → address lines in a host's /etc/hosts, edited in place.",
    replace_order=CREATE_BEFORE_DESTROY,
    attributes={
        "path": Attribute(
            "string",
            optional=True,
            force_new=True,
            default=DEFAULT_PATH,
            description="the hosts file",
        ),
        "entries": Attribute(
            "map",
            optional=True,
            description="name → IP address; default: every host of the inventory",
        ),
    },
)


def render_block(entries: Mapping[str, str]) -> list[str]:
    return [BEGIN, *(f"{entries[n]} {n}" for n in sorted(entries)), END]


def _block_span(lines: Sequence[str]) -> tuple[int, int] | None:
    """Indices of the BEGIN and END lines, or None when there is no whole block."""
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
        end = next(i for i in range(start + 1, len(lines)) if lines[i].strip() == END)
    except StopIteration:
        return None
    return start, end


def parse_block(text: str) -> dict[str, str] | None:
    """The entries of the managed block, or None when the file has none."""
    lines = text.splitlines()
    span = _block_span(lines)
    if span is None:
        return None
    out: dict[str, str] = {}
    for line in lines[span[0] + 1 : span[1]]:
        words = line.split("#", 1)[0].split()
        for name in words[1:]:
            out[name] = words[0]
    return out


def replace_block(text: str, entries: Mapping[str, str] | None) -> str:
    """``text`` with the managed block set to ``entries`` (None: removed); the rest untouched."""
    lines = text.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    span = _block_span(bare)
    block = [] if entries is None else [line + "\n" for line in render_block(entries)]
    if span is not None:
        return "".join([*lines[: span[0]], *block, *lines[span[1] + 1 :]])
    if not block:
        return text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + "".join(block)


class HostEtcHosts(HostResourceType):
    schema = SCHEMA
    known_at_apply = ("path", "entries")

    def check(self, config: Mapping[str, Any]) -> list[Diagnostic]:
        diags: list[Diagnostic | None] = [check_abs_path(config.get("path"))]
        entries = plain(config.get("entries"))
        if isinstance(entries, dict):
            diags.extend(_check_entries(entries))
        return [d for d in diags if d is not None]

    # ---- read ---------------------------------------------------------------------

    def read_batch(self, host: str, insts: list[ReadInstance]) -> tuple[States, list[Diagnostic]]:
        """One fetch of every instance's file on the host."""
        paths = [str(plain(i.state.get("path")) or DEFAULT_PATH) for i in insts]
        fetched, diags = fetch_all(self.ctx.connect(host), host, paths)
        if fetched is None:
            return {}, diags
        states: States = {}
        for inst, f in zip(insts, fetched, strict=True):
            if f is None:
                states[inst.address] = None
                continue
            text = f.data.decode("utf-8", "replace")
            states[inst.address] = {**inst.state, "entries": parse_block(text)}
        return states, []

    # ---- plan ---------------------------------------------------------------------

    def plan(self, req: PlanRequest) -> PlanResponse:
        path = req.config.get("path") or DEFAULT_PATH
        entries = req.config.get("entries")
        diags: list[Diagnostic] = []
        if entries is None:
            if self.ctx.configured:
                entries = {h.name: h.address for h in self.ctx.hosts.values()}
            else:
                entries = UNKNOWN
                diags.append(
                    attr_error(
                        "entries",
                        "host_etc_hosts has no entries and no inventory to take them from",
                        "set entries: {NAME: ADDRESS, ...}",
                        code="missing-attribute",
                    )
                )
        elif is_known(entries) and isinstance(plain(entries), dict):
            entries = {str(k): v for k, v in sorted(plain(entries).items())}
        planned = {"path": path, "entries": entries}
        replace: list[Path] = []
        if req.prior is not None and req.prior.get("path") != path:
            replace.append(("path",))
        return PlanResponse(planned=planned, requires_replace=replace, diagnostics=diags)

    # ---- apply --------------------------------------------------------------------

    def write_on(
        self, conn: Connection, prior: Mapping[str, Any] | None, planned: Mapping[str, Any]
    ) -> ApplyResponse:
        entries = {str(k): str(v) for k, v in plain(planned["entries"]).items()}
        problems = _check_entries(entries)
        if problems:
            return ApplyResponse(prior, problems)
        diag = self._edit(conn, str(plain(planned["path"])), entries)
        if diag is not None:
            return ApplyResponse(prior, [diag])
        return ApplyResponse({"path": planned["path"], "entries": entries})

    def delete_on(self, conn: Connection, prior: Mapping[str, Any]) -> ApplyResponse:
        diag = self._edit(conn, str(plain(prior.get("path")) or DEFAULT_PATH), None)
        return ApplyResponse(prior, [diag]) if diag is not None else ApplyResponse(None)

    def _edit(
        self, conn: Connection, path: str, entries: Mapping[str, str] | None
    ) -> Diagnostic | None:
        """Set (or remove) the block in place; one read and at most one write."""
        try:
            reply = _shell.run_script(conn, _shell.fetch_script([path])).text()
            fetched = _shell.parse_fetch(reply, 1)[0]
        except CommandFailed as exc:
            detail = read_failed(conn.host, 1, exc).detail
            return attr_error("path", f"cannot read {path}", detail, code="read-failed")
        except ValueError as exc:
            return attr_error("path", f"cannot read {path}", str(exc), code="read-failed")
        old = fetched.data.decode("utf-8", "surrogateescape") if fetched else ""
        if fetched is None and entries is None:
            return None
        new = replace_block(old, entries)
        if fetched is not None and new == old:
            return None
        mode = int(fetched.mode, 8) if fetched else 0o644
        try:
            conn.write_file(path, new.encode("utf-8", "surrogateescape"), mode=mode, atomic=False)
        except CommandFailed as exc:
            return attr_error(
                "path", f"cannot write {path}", exc.diagnostics[0].detail, code="write-failed"
            )
        except OSError as exc:  # a local connection raises it directly
            return attr_error("path", f"cannot write {path}", str(exc), code="write-failed")
        return None


def _check_entries(entries: Mapping[Any, Any]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name in sorted(entries, key=str):
        addr = plain(entries[name])
        if not _NAME_RE.fullmatch(str(name)):
            out.append(
                _entry_error(
                    name,
                    f'entries: "{name}" is not a host name',
                    "use letters, digits, dots, dashes and underscores",
                )
            )
            continue
        if addr is UNKNOWN:
            continue
        try:
            ipaddress.ip_address(str(addr))
        except ValueError:
            out.append(
                _entry_error(
                    name,
                    f'entries["{name}"]: {str(addr)!r} is not an IP address',
                    "/etc/hosts maps names to IPv4 or IPv6 addresses",
                )
            )
    return out


def _entry_error(name: Any, summary: str, detail: str) -> Diagnostic:
    return Diagnostic(
        Severity.ERROR, summary, detail, None, "invalid-entry", ("entries", str(name))
    )
