"""Operator config overrides, read the way kolla-ansible reads /etc/kolla/config.

``config_overrides(dir, paths)`` is the expression function: of ``paths``
(relative to ``dir``, in merge order) the files that exist, each as
``{"path": "config/keystone.conf", "template": TEXT}`` — what ``host_file``'s
``ini_overrides`` merges. ``dir`` is taken from where kplan runs (the root
module's folder), not from the calling module's folder: it is the operator's
folder, handed down to catalog modules as a string. A ``dir`` of null, or a
folder that does not exist, gives no overrides.

Unlike kolla-ansible, a file under the folder that nothing reads is reported:
while a plan evaluates, :class:`OverrideReads` collects every folder looked in
and every name looked for; :meth:`OverrideReads.unused` then gives a warning
for each file that no config asked for, with the nearest expected name.

Nothing here writes, and nothing is read but the named files and the
folders' listings.
"""

from __future__ import annotations

import difflib
import os
import threading
from typing import Any

from kplan.config.functions_base import FunctionError, want_list, want_str
from kplan.config.functions_io import MAX_FILE_BYTES
from kplan.diagnostics import Diagnostic

__all__ = ["READS_KEY", "OverrideReads", "fn_config_overrides"]

#: Where the evaluator keeps its :class:`OverrideReads` in a scope; not a name an
#: expression can write (``:`` is no identifier character).
READS_KEY = "kplan:override-reads"


class OverrideReads:
    """The override folders a run looked in, and the names it looked for in each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # By the folder's real path (one folder may be named two ways): the name it
        # was first given by, and the names looked for in it.
        self._wanted: dict[str, tuple[str, set[str]]] = {}
        # A call whose folder or names were not known yet: what it will look for
        # is not known either, so no file can be called unread.
        self._incomplete = False

    def not_known_yet(self) -> None:
        with self._lock:
            self._incomplete = True

    def record(self, folder: str, names: list[str]) -> None:
        with self._lock:
            entry = self._wanted.setdefault(os.path.realpath(folder), (folder, set()))
            entry[1].update(names)

    def unused(self) -> list[Diagnostic]:
        """A warning for each file under a folder looked in that no config looked for."""
        with self._lock:
            if self._incomplete:
                return []
            wanted = {shown: sorted(names) for shown, names in self._wanted.values()}
        out: list[Diagnostic] = []
        for folder in sorted(wanted):
            expected = wanted[folder]
            for name in _files(folder):
                if name in expected:
                    continue
                close = difflib.get_close_matches(name, expected, n=1, cutoff=0.75)
                hint = f"; did you mean {_shown(folder, close[0])}?" if close else "."
                out.append(
                    Diagnostic.warning(
                        f"override file {_shown(folder, name)} is not read by any config",
                        "No config that kplan renders merges it (kolla-ansible would ignore "
                        f"it silently){hint} Each module's README lists the files it merges.",
                        code="unused-override",
                    )
                )
        return out


def _files(folder: str) -> list[str]:
    """Regular files under ``folder``, as sorted relative paths; hidden ones left out."""
    out: list[str] = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(top, folder)
        for f in files:
            if not f.startswith("."):
                out.append(f if rel == "." else os.path.join(rel, f).replace(os.sep, "/"))
    return sorted(out)


def _shown(folder: str, name: str) -> str:
    return os.path.normpath(os.path.join(folder, name))


def _check_name(name: Any, n: int) -> str:
    text = want_str("config_overrides", f"paths[{n}]", name)
    parts = text.split("/")
    if not text or text.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise FunctionError(
            f"config_overrides(): paths[{n}] must be a relative path inside the folder "
            "(no leading /, no . or .. parts), e.g. keystone/keystone.conf"
        )
    return text


def _read(full: str) -> str:
    try:
        if os.path.getsize(full) > MAX_FILE_BYTES:
            raise FunctionError(f"config_overrides(): {full} is larger than 16 MiB")
        with open(full, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise FunctionError(f"config_overrides(): cannot read {full}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise FunctionError(f"config_overrides(): {full} is not UTF-8 text") from None


def fn_config_overrides(
    dir: Any, paths: Any, *, reads: OverrideReads | None = None
) -> list[dict[str, str]]:
    """config_overrides(dir, paths): the override files among paths (relative to dir,
    in merge order) that exist, as [{path, template}] for host_file's ini_overrides.

    dir is relative to the root module; null, or a folder that does not exist,
    gives []. A file under dir that no call asks for is a warning in the plan.
    """
    names = [_check_name(p, n) for n, p in enumerate(want_list("config_overrides", "paths", paths))]
    if dir is None:
        return []
    folder = os.path.normpath(want_str("config_overrides", "dir", dir))
    if not os.path.exists(folder):
        return []
    if not os.path.isdir(folder):
        raise FunctionError(f"config_overrides(): {folder} is not a folder")
    if reads is not None:
        reads.record(folder, names)
    out = []
    for name in names:
        full = os.path.join(folder, name)
        if os.path.isfile(full):
            out.append({"path": _shown(folder, name), "template": _read(full)})
    return out
