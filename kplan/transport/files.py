"""Small file helpers shared by the transports."""

from __future__ import annotations

import grp
import pwd

__all__ = ["chown_names", "owner_spec"]


def chown_names(owner: str | None, group: str | None) -> tuple[int, int]:
    """uid and gid for ``os.chown`` (-1: leave as is); names or numbers."""
    uid = gid = -1
    if owner:
        uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
    if group:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    return uid, gid


def owner_spec(owner: str | None, group: str | None) -> str:
    """The argument of ``chown``: ``owner``, ``owner:group`` or ``:group``; "" for neither."""
    if owner and group:
        return f"{owner}:{group}"
    if owner:
        return owner
    if group:
        return f":{group}"
    return ""
