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

Output is prefixed with the path's index in the request, so that a path
holding spaces or quotes never needs parsing back.

:func:`stat_script` starts ``stat`` once and ``sha256sum`` once for all its
paths. Starting them once per path was most of the time of a no-op plan on a
host: three process starts per file, sixty for twenty services, ~100 ms per
host on lab hosts sharing two cores. Its first pass uses only shell builtins
(``[ -L ]``, ``[ -d ]``...) and prints a kind per path; the two commands then
get every directory and file, and every readable file, in index order. Their
formats hold no file name (``sha256sum``'s name is ignored), so line N is the
Nth path given. The reply::

    INDEX missing | INDEX other | INDEX dir | INDEX file | INDEX file -   (unreadable)
    --stat
    OWNER UID GROUP GID MODE        one per dir and file, in index order
    --sha256
    SHA256  NAME                    one per readable file, in index order

A path changed between the passes (removed, made unreadable) gets no line from
``stat`` or ``sha256sum`` (each prints its error to /dev/null and is guarded
with ``|| :``, so the script still exits 0), and busybox's ``sha256sum``
splits a name holding a newline over two lines (GNU escapes it). Then the
lines cannot be matched to paths: :func:`parse_stat` returns None instead of
guessing and the caller asks again with :func:`stat_each_script`, one record
per path (a second round trip, in that rare case only)::

    stat_each:  INDEX missing | INDEX other | INDEX dir OWNER UID GROUP GID MODE
                | INDEX file OWNER UID GROUP GID MODE SHA256  (SHA256 "-" when unreadable)
    fetch:      INDEX missing | INDEX MODE BASE64-OF-CONTENT

The commands of :func:`stat_script` take every path as an argument: past the
kernel's limit for one command (2 MiB on Linux with the default stack, some
7,000 paths of 300 bytes) they cannot start, and the per-path script answers.
"""

from __future__ import annotations

import base64
import binascii
import re
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
    "parse_stat_each",
    "principals_script",
    "read_failed_summary",
    "run_script",
    "stat_each_script",
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
    # stat and sha256sum read standard input for a "-" operand, even after "--".
    return " ".join(shlex.quote("./-" if p == "-" else p) for p in paths)


def run_script(conn: Connection, script: str) -> CommandResult:
    """Run ``script`` on the host in one round trip, sent on standard input.

    A non-zero exit raises :class:`~kplan.transport.base.CommandFailed` (its
    command is just ``sh -s``).
    """
    return conn.run(SCRIPT_COMMAND, stdin=script.encode("utf-8", "surrogateescape"), check=True)


# The paths are the script's parameters; a dir or file goes to the command
# lines of stat and sha256sum as "${N}", the Nth parameter, which eval expands:
# a path's text is parsed as shell once, from shlex.quote, never by eval.
# Appending the paths themselves (set -- "$@" "$p") would copy the whole list
# each time: 4 s for 2,500 paths in dash.
_STAT_BATCH = r"""{
set -- @PATHS@
i=0 to_stat= to_hash=
for p in "$@"; do
  arg="\"\${$((i+1))}\""
  if [ -L "$p" ]; then echo "$i other"
  elif [ ! -e "$p" ]; then echo "$i missing"
  elif [ -d "$p" ]; then echo "$i dir"; to_stat="$to_stat $arg"
  elif [ ! -f "$p" ]; then echo "$i other"
  elif [ -r "$p" ]; then echo "$i file"; to_stat="$to_stat $arg"; to_hash="$to_hash $arg"
  else echo "$i file -"; to_stat="$to_stat $arg"
  fi
  i=$((i+1))
done
echo --stat
[ -z "$to_stat" ] || eval "stat -c '%U %u %G %g %a' -- $to_stat" 2>/dev/null || :
echo --sha256
[ -z "$to_hash" ] || eval "sha256sum -- $to_hash" 2>/dev/null || :
} </dev/null
"""


def stat_script(paths: Sequence[str]) -> str:
    """One script that reports kind, owner, group, mode and SHA-256 of every path.

    Two process starts in all, whatever the number of paths. A symbolic link
    is reported as ``other``: kplan manages the path itself, and the next
    write replaces the link with a file.
    """
    # Not str.format: the script's own braces would all need doubling.
    return _STAT_BATCH.replace("@PATHS@", _words(paths))


_STAT_EACH_LOOP = """\
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


def stat_each_script(paths: Sequence[str]) -> str:
    """What :func:`stat_script` reports, one complete record per path.

    Three process starts per file: only for a reply of :func:`stat_script`
    that cannot be matched to its paths.
    """
    return _STAT_EACH_LOOP.format(paths=_words(paths))


def _mode(text: str) -> str:
    return text.rjust(4, "0")


def _records(lines: Sequence[str]) -> dict[int, list[str]]:
    """The words after the index of each ``INDEX KIND ...`` line, by index."""
    found: dict[int, list[str]] = {}
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            found[int(parts[0])] = parts[1:]
    return found


_STAT_LINE = re.compile(r"\S+ [0-9]+ \S+ [0-9]+ [0-7]{1,4}")
# GNU sha256sum starts the line with a backslash when it escaped the name.
_HASH_LINE = re.compile(r"\\?([0-9a-f]{64}) ")


def parse_stat(output: str, count: int) -> list[Stat | None] | None:
    """The records of :func:`stat_script`'s output; None in the list for a missing path.

    None for the whole when the lines of ``stat`` or ``sha256sum`` cannot be
    matched to the paths (the host changed between the passes): run
    :func:`stat_each_script` instead. A path the output does not mention, or
    a reply that stops before the end (truncated), raises ValueError.
    """
    # Not splitlines(): it also splits at \f, \x1c... which a name may hold.
    lines = output.split("\n")
    at_stat = lines.index("--stat") if "--stat" in lines else len(lines)
    found = _records(lines[:at_stat])
    missing = [i for i in range(count) if i not in found]
    if missing:
        raise ValueError(f"the host's reply has no record for {len(missing)} of {count} paths")
    if "--sha256" not in lines[at_stat:]:
        raise ValueError("the host's reply stops before the end")
    at_hash = lines.index("--sha256", at_stat)
    stat_lines = lines[at_stat + 1 : at_hash]
    hash_lines = lines[at_hash + 1 :]
    if hash_lines and hash_lines[-1] == "":
        hash_lines.pop()
    kinds = [found[i] for i in range(count)]
    stated = [i for i, k in enumerate(kinds) if k[0] in ("dir", "file")]
    hashed = [i for i, k in enumerate(kinds) if k == ["file"]]
    if len(stat_lines) != len(stated) or len(hash_lines) != len(hashed):
        return None
    if not all(_STAT_LINE.fullmatch(line) for line in stat_lines):
        return None
    digests: dict[int, str] = {}
    for i, line in zip(hashed, hash_lines, strict=True):
        m = _HASH_LINE.match(line)
        if m is None:  # busybox: the rest of a name that held a newline
            return None
        digests[i] = m.group(1)
    stats: list[Stat | None] = [None if k[0] == "missing" else Stat("other") for k in kinds]
    for i, line in zip(stated, stat_lines, strict=True):
        owner, uid, group, gid, mode = line.split(" ")
        stats[i] = Stat(kinds[i][0], owner, uid, group, gid, _mode(mode), digests.get(i))
    return stats


def parse_stat_each(output: str, count: int) -> list[Stat | None]:
    """The records of :func:`stat_each_script`'s output; None for a missing path.

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
