"""Batched refresh of files and directories: a constant number of commands per host.

:class:`StatReader` groups the instances of one read by host (the SDK's
:func:`~kplan.provider_sdk.read_per_host`) and, on each host (hosts in
parallel), runs one :func:`~kplan_providers.host._shell.stat_script` over
every path (again as :func:`~kplan_providers.host._shell.stat_each_script`
in the rare case its reply cannot be matched to the paths), then — only when
some file's digest differs from the recorded one — one
:func:`~kplan_providers.host._shell.fetch_script` over just those files, for
the plan's diff. An unreachable host yields one
``host-unreachable`` diagnostic and leaves its instances out of the
response (the engine keeps what state says); other hosts proceed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_api import ReadInstance, ReadResponse
from kplan.provider_sdk import States, attr_error, plain, read_per_host
from kplan.transport.base import CommandFailed, Connection, TransportError

from . import _shell
from ._common import HostContext, transport_diag

__all__ = [
    "StatReader",
    "checked_command",
    "read_failed",
]

FromStat = Callable[
    [Mapping[str, Any], _shell.Stat, bytes | None], tuple[dict[str, Any], list[Diagnostic]]
]


class StatReader:
    """Refresh file or directory instances from one stat pass per host."""

    def __init__(self, ctx: HostContext, type_name: str, kind: str, from_stat: FromStat) -> None:
        self.ctx = ctx
        self.type_name = type_name
        self.kind = kind
        self.from_stat = from_stat

    def read(self, instances: Sequence[ReadInstance]) -> ReadResponse:
        return read_per_host(self.type_name, instances, self._host)

    def _host(self, host: str, insts: list[ReadInstance]) -> tuple[States, list[Diagnostic]]:
        paths = [str(plain(i.state.get("path", ""))) for i in insts]
        try:
            conn = self.ctx.connect(host)
            result = _shell.run_script(conn, _shell.stat_script(paths))
            stats = _shell.parse_stat(result.text(), len(paths))
            if stats is None:
                # A path changed between the script's passes, or busybox split a
                # name over two lines: no guessing which line is whose. Ask
                # again, path by path.
                result = _shell.run_script(conn, _shell.stat_each_script(paths))
                stats = _shell.parse_stat_each(result.text(), len(paths))
            drifted = [
                n
                for n, st in enumerate(stats)
                if self.kind == "file"
                and st is not None
                and st.kind == "file"
                and st.sha256 != plain(insts[n].state.get("sha256"))
            ]
            contents: dict[int, bytes | None] = {}
            if drifted:
                fetched = _shell.run_script(conn, _shell.fetch_script([paths[n] for n in drifted]))
                for n, f in zip(
                    drifted, _shell.parse_fetch(fetched.text(), len(drifted)), strict=True
                ):
                    contents[n] = f.data if f is not None else None
        except CommandFailed as exc:
            noun = "directory" if self.kind == "dir" else "file"
            return {}, [read_failed(host, len(paths), exc, noun)]
        except TransportError as exc:
            return {}, [transport_diag(exc)]
        except ValueError as exc:
            return {}, [
                Diagnostic.error(
                    f"host {host}: cannot read the state of {len(paths)} {self.type_name}s",
                    str(exc),
                    code="read-failed",
                )
            ]
        states: States = {}
        diags: list[Diagnostic] = []
        for n, (inst, st) in enumerate(zip(insts, stats, strict=True)):
            if st is None:
                states[inst.address] = None
                continue
            state, d = self.from_stat(inst.state, st, contents.get(n))
            states[inst.address] = state
            diags.extend(d)
        return states, diags


def read_failed(host: str, count: int, exc: CommandFailed, noun: str = "file") -> Diagnostic:
    """A batched read script that exited non-zero: how many paths, and the shell's last words.

    Not the command: it is the whole script (every path), no help to anyone.
    """
    tail = exc.result.stderr_text().strip().splitlines()[-10:]
    detail = "\n".join(tail) or "(nothing on standard error)"
    detail = f"the read script exited {exc.result.exit_code}:\n{detail}"
    return Diagnostic.error(
        _shell.read_failed_summary(host, count, noun), detail, code="read-failed"
    )


def fetch_all(
    conn: Connection, host: str, paths: list[str]
) -> tuple[list[_shell.Fetched | None] | None, list[Diagnostic]]:
    """The content of every path on the host in one command (None: missing), or why not."""
    try:
        result = _shell.run_script(conn, _shell.fetch_script(paths))
        return _shell.parse_fetch(result.text(), len(paths)), []
    except CommandFailed as exc:
        return None, [read_failed(host, len(paths), exc)]
    except TransportError as exc:
        return None, [transport_diag(exc)]
    except ValueError as exc:
        return None, [Diagnostic.error(f"host {host}: cannot read {paths[0]}", str(exc))]


def checked_command(
    conn: Connection,
    owner: str | None,
    group: str | None,
    lines: Sequence[str],
    failed: str,
) -> Diagnostic | None:
    """One command: check that owner and group exist on the host, then run ``lines``.

    No command at all when there is nothing to check (no names, numeric ids) and
    nothing to run. A failure is returned as a diagnostic naming the attribute:
    ``failed`` says what ``lines`` could not do. Raises TransportError only for
    an unreachable host.
    """
    script = "\n".join(s for s in (_shell.principals_script(owner, group), *lines) if s)
    if not script:
        return None
    result = conn.run(script, check=False)
    if result.exit_code == _shell.UNKNOWN_OWNER_EXIT:
        return attr_error(
            "owner",
            f'owner "{owner}" is not a user on host {conn.host}',
            "create the user first, or give a numeric uid",
            code="unknown-owner",
        )
    if result.exit_code == _shell.UNKNOWN_GROUP_EXIT:
        return attr_error(
            "group",
            f'group "{group}" is not a group on host {conn.host}',
            "create the group first, or give a numeric gid",
            code="unknown-group",
        )
    if not result.ok:
        return attr_error("path", failed, result.stderr_text().strip(), code="mkdir-failed")
    return None
