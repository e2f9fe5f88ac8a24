"""The shell the host types send: batched reads, and checks run before a write.

Every script is POSIX ``sh`` with coreutils (``stat -c``, ``sha256sum``,
``base64``), so it runs on any Linux host, busybox included. Paths and
names from the configuration reach the shell only through
:func:`shlex.quote`; a script never interpolates unquoted user input.

The batched scripts go to ``sh -s`` on standard input (:func:`run_script`), not
on the command line: one argument is limited to 128 KiB on Linux, a few
thousand paths. Each is one compound command (``{ ...; } </dev/null``): the
shell reads all of it before it runs any of it, so the whole script has been
sent before the first line of output comes back, and nothing it runs can read
the rest of the script as its own input.

Output is one line per path, prefixed with the path's index in the request,
so that a path holding spaces or quotes never needs parsing back:

    stat:   INDEX missing | INDEX other | INDEX dir OWNER UID GROUP GID MODE
            | INDEX file OWNER UID GROUP GID MODE SHA256  (SHA256 "-" when unreadable)
    fetch:  INDEX missing | INDEX MODE BASE64-OF-CONTENT
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from kplan.transport.base import CommandResult, Connection

__all__ = [
    "Fetched",
    "Stat",
    "fetch_script",
    "parse_fetch",
    "parse_stat",
    "principals_script",
    "read_failed_summary",
    "run_script",
    "stat_script",
]

# How a script is run: the shell reads it from standard input.
SCRIPT_COMMAND = "sh -s"

# Exit codes of principals_script, one per attribute.
UNKNOWN_OWNER_EXIT = 71
UNKNOWN_GROUP_EXIT = 72


@dataclass(frozen=True, slots=True)
class Stat:
    kind: str  # "file" | "dir" | "other"
    owner: str = ""
    uid: str = ""
    group: str = ""
    gid: str = ""
    mode: str = ""  # four octal digits
    sha256: str | None = None  # files only; None when unreadable


@dataclass(frozen=True, slots=True)
class Fetched:
    mode: str
    data: bytes


def _words(paths: Sequence[str]) -> str:
    return " ".join(shlex.quote(p) for p in paths)


def run_script(conn: Connection, script: str) -> CommandResult:
    """Run ``script`` on the host in one round trip, sent on standard input.

    A non-zero exit raises :class:`~kplan.transport.base.CommandFailed` (its
    command is just ``sh -s``).
    """
    return conn.run(SCRIPT_COMMAND, stdin=script.encode("utf-8", "surrogateescape"), check=True)


_STAT_LOOP = """\
{{
i=0
for p in {paths}; do
  if [ -L "$p" ] || [ ! -e "$p" ]; then
    if [ -L "$p" ]; then echo "$i other"; else echo "$i missing"; fi
  elif [ -d "$p" ]; then
    s=$(stat -c '%U %u %G %g %a' -- "$p" 2>/dev/null) && echo "$i dir $s" || echo "$i missing"
  elif [ -f "$p" ]; then
    if s=$(stat -c '%U %u %G %g %a' -- "$p" 2>/dev/null); then
      h=$(sha256sum < "$p" 2>/dev/null) || h=-
      echo "$i file $s ${{h%% *}}"
    else
      echo "$i missing"
    fi
  else
    echo "$i other"
  fi
  i=$((i+1))
done
}} </dev/null
"""


def stat_script(paths: Sequence[str]) -> str:
    """One script that reports kind, owner, group, mode and SHA-256 of every path.

    A symbolic link is reported as ``other``: kplan manages the path itself,
    and the next write replaces the link with a file.
    """
    return _STAT_LOOP.format(paths=_words(paths))


def _mode(text: str) -> str:
    return text.rjust(4, "0")


def parse_stat(output: str, count: int) -> list[Stat | None]:
    """The records of :func:`stat_script`'s output; None for a missing path.

    A path the output does not mention (a truncated reply) raises ValueError.
    """
    found: dict[int, Stat | None] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        idx, kind = int(parts[0]), parts[1]
        if kind == "missing":
            found[idx] = None
        elif kind in ("dir", "file") and len(parts) >= 7:
            sha = parts[7] if kind == "file" and len(parts) >= 8 and parts[7] != "-" else None
            found[idx] = Stat(kind, parts[2], parts[3], parts[4], parts[5], _mode(parts[6]), sha)
        else:
            found[idx] = Stat("other")
    missing = [i for i in range(count) if i not in found]
    if missing:
        raise ValueError(f"the host's reply has no record for {len(missing)} of {count} paths")
    return [found[i] for i in range(count)]


_FETCH_LOOP = """\
{{
i=0
for p in {paths}; do
  if [ -f "$p" ] && m=$(stat -c '%a' -- "$p" 2>/dev/null) && d=$(base64 < "$p" | tr -d '\\n'); then
    echo "$i $m $d"
  else
    echo "$i missing"
  fi
  i=$((i+1))
done
}} </dev/null
"""


def fetch_script(paths: Sequence[str]) -> str:
    """One script that prints the mode and content (base64) of every regular file."""
    return _FETCH_LOOP.format(paths=_words(paths))


def parse_fetch(output: str, count: int) -> list[Fetched | None]:
    found: dict[int, Fetched | None] = {}
    for line in output.splitlines():
        parts = line.split(" ")
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        idx = int(parts[0])
        if parts[1] == "missing":
            found[idx] = None
            continue
        try:
            data = base64.b64decode(parts[2] if len(parts) > 2 else "", validate=True)
        except binascii.Error:
            raise ValueError(f"the host's reply for path {idx} is not base64") from None
        found[idx] = Fetched(_mode(parts[1]), data)
    missing = [i for i in range(count) if i not in found]
    if missing:
        raise ValueError(f"the host's reply has no record for {len(missing)} of {count} paths")
    return [found[i] for i in range(count)]


def read_failed_summary(host: str, count: int, noun: str = "file") -> str:
    """``host X: reading N managed files failed``."""
    plural = noun if count == 1 else ("directories" if noun == "directory" else f"{noun}s")
    return f"host {host}: reading {count} managed {plural} failed"


def principals_script(owner: str | None, group: str | None) -> str:
    """Exit 71 when ``owner`` is not a user of the host, 72 when ``group`` is not a group.

    Numeric ids are not looked up (``chown`` takes any number).
    """
    lines = []
    if owner and not owner.isdigit():
        lines.append(f"id -u -- {shlex.quote(owner)} >/dev/null 2>&1 || exit {UNKNOWN_OWNER_EXIT}")
    if group and not group.isdigit():
        g = shlex.quote(group)
        awk = f"awk -F: -v g={g} '$1==g{{f=1}} END{{exit !f}}' /etc/group"
        lines.append(
            f"{{ getent group -- {g} || {awk}; }} >/dev/null 2>&1 || exit {UNKNOWN_GROUP_EXIT}"
        )
    return "\n".join(lines)
