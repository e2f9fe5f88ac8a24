"""What a refresh reads: ``rabbitmqctl export_definitions -`` parsed, and password hashes checked.

``export_definitions`` prints every user (with its salted password hash and
tags), vhost and permission of the broker as JSON, in one call. A password
is checked here against its hash with RabbitMQ's own scheme (base64 of a
4-byte salt followed by H(salt + password)), so a refresh sends nothing
secret and logs in as nobody. Never here: a password in a value that is
printed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Definitions", "password_matches"]


@dataclass(frozen=True, slots=True)
class Definitions:
    """What ``export_definitions`` says of users, vhosts and permissions."""

    #: name → (hashing algorithm, password hash, sorted tags)
    users: dict[str, tuple[str, str, list[str]]]
    vhosts: set[str]
    #: (user, vhost) → (configure, write, read)
    permissions: dict[tuple[str, str], tuple[str, str, str]]

    @classmethod
    def parse(cls, text: str) -> Definitions:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        users = {}
        for u in doc.get("users") or []:
            tags = u.get("tags") or []
            if isinstance(tags, str):  # before 3.9: "a,b"
                tags = [t for t in tags.split(",") if t]
            users[str(u["name"])] = (
                str(u.get("hashing_algorithm") or ""),
                str(u.get("password_hash") or ""),
                sorted({str(t) for t in tags}),
            )
        vhosts = {str(v["name"]) for v in doc.get("vhosts") or []}
        perms = {
            (str(p["user"]), str(p["vhost"])): (
                str(p["configure"]),
                str(p["write"]),
                str(p["read"]),
            )
            for p in doc.get("permissions") or []
        }
        return cls(users, vhosts, perms)


_HASHES: dict[str, Callable[[bytes], Any]] = {
    "rabbit_password_hashing_sha256": hashlib.sha256,
    "rabbit_password_hashing_sha512": hashlib.sha512,
    "rabbit_password_hashing_md5": hashlib.md5,
}


def password_matches(password: str, algorithm: str, stored: str) -> bool:
    """Whether ``stored`` (base64 of a 4-byte salt + H(salt + password)) is ``password``'s.

    RabbitMQ's own scheme; an unknown algorithm or a malformed hash is no match.
    """
    h = _HASHES.get(algorithm)
    try:
        raw = base64.b64decode(stored, validate=True)
    except ValueError:
        return False
    if h is None or len(raw) <= 4:
        return False
    salt = raw[:4]
    return bool(h(salt + password.encode()).digest() == raw[4:])
