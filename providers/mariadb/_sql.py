"""SQL text for the mariadb provider: quoting, names, privileges, password hashes, batch output.

Everything that ends up inside an SQL statement passes through here:
identifiers are quoted with backticks (a backtick doubled), strings with
single quotes (a quote doubled, a backslash doubled: every batch sets a
``sql_mode`` without NO_BACKSLASH_ESCAPES, see :data:`SESSION_MODE`).
Privileges are never quoted, so they are checked against a closed list.
Names that MariaDB cannot store are refused by :func:`check_name` before
any SQL is written.

Never here: a password in a value that is printed; the only way a password
leaves this module is :func:`native_hash` (MariaDB's ``mysql_native_password``
hash, ``*`` + upper-case hex of SHA1(SHA1(password))).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from kplan.diagnostics import Diagnostic, did_you_mean
from kplan.provider_sdk import attr_error, plain

__all__ = [
    "ALL",
    "GRANT_OPTION",
    "SESSION_MODE",
    "check_name",
    "check_privileges",
    "grant_object",
    "ident",
    "literal",
    "native_hash",
    "normal_charset",
    "normal_privileges",
    "parse_grant_line",
    "rows",
    "unescape",
]

#: Every batch starts with this, so that string quoting is the same on every server.
SESSION_MODE = (
    "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION';"
)

ALL = "ALL PRIVILEGES"
GRANT_OPTION = "GRANT OPTION"
USAGE = "USAGE"

#: Privileges MariaDB 10.11 knows (GRANT's words), and the old spellings it still takes.
PRIVILEGES = frozenset(
    {
        ALL,
        GRANT_OPTION,
        "ALTER",
        "ALTER ROUTINE",
        "BINLOG ADMIN",
        "BINLOG MONITOR",
        "BINLOG REPLAY",
        "CONNECTION ADMIN",
        "CREATE",
        "CREATE ROUTINE",
        "CREATE TABLESPACE",
        "CREATE TEMPORARY TABLES",
        "CREATE USER",
        "CREATE VIEW",
        "DELETE",
        "DELETE HISTORY",
        "DROP",
        "EVENT",
        "EXECUTE",
        "FEDERATED ADMIN",
        "FILE",
        "INDEX",
        "INSERT",
        "LOCK TABLES",
        "PROCESS",
        "READ_ONLY ADMIN",
        "REFERENCES",
        "RELOAD",
        "REPLICATION MASTER ADMIN",
        "REPLICATION SLAVE",
        "REPLICATION SLAVE ADMIN",
        "SELECT",
        "SET USER",
        "SHOW DATABASES",
        "SHOW VIEW",
        "SHUTDOWN",
        "SLAVE MONITOR",
        "SUPER",
        "TRIGGER",
        "UPDATE",
    }
)
#: Other spellings, as the server shows them (SHOW GRANTS) or as users write them.
ALIASES = {
    "ALL": ALL,
    "REPLICATION CLIENT": "BINLOG MONITOR",
    "REPLICA MONITOR": "SLAVE MONITOR",
    "REPLICATION REPLICA": "REPLICATION SLAVE",
    "REPLICATION REPLICA ADMIN": "REPLICATION SLAVE ADMIN",
}

# What MariaDB cannot store in a name: NUL and control characters; a trailing space.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Lengths MariaDB 10.11 allows.
MAX_LENGTH = {"database": 64, "table": 64, "user": 128, "host": 255}


def ident(name: str) -> str:
    """A quoted identifier: ```name```, a backtick doubled."""
    return "`" + name.replace("`", "``") + "`"


def literal(text: str) -> str:
    """A quoted string: ``'text'``, a quote and a backslash doubled (see SESSION_MODE)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def account(user: str, host: str) -> str:
    """``'user'@'host'``."""
    return f"{literal(user)}@{literal(host)}"


def grant_object(database: str, table: str) -> str:
    """``*.*``, ```db`.*`` or ```db`.`table```."""
    if database == "*":
        return "*.*"
    return f"{ident(database)}.{'*' if table == '*' else ident(table)}"


def native_hash(password: str) -> str:
    """MariaDB's mysql_native_password hash; the empty password is stored as ''."""
    if password == "":
        return ""
    inner = hashlib.sha1(password.encode("utf-8")).digest()
    return "*" + hashlib.sha1(inner).hexdigest().upper()


def check_name(attribute: str, value: Any, kind: str, *, star: bool = False) -> Diagnostic | None:
    """An error on ``attribute`` unless ``value`` is a name of this ``kind`` (a key of
    MAX_LENGTH) that MariaDB can store; ``*`` too when ``star``."""
    value = plain(value)
    if not isinstance(value, str) or (star and value == "*"):
        return None
    limit = MAX_LENGTH[kind]
    why = ""
    if kind != "host" and value == "":
        why = "it is empty"
    elif _CONTROL.search(value):
        why = "it holds a control character (a newline, a tab or NUL)"
    elif value != value.rstrip(" "):
        why = "it ends with a space"
    elif len(value) > limit:
        why = f"it is {len(value)} characters long; MariaDB allows {limit}"
    if not why:
        return None
    return attr_error(
        attribute,
        f"{attribute} {value!r} cannot be a MariaDB {kind} name",
        why,
        code="invalid-name",
    )


def _canon(privilege: str) -> str:
    words = " ".join(privilege.upper().split())
    return ALIASES.get(words, words)


def normal_privileges(privileges: Iterable[Any]) -> list[str]:
    """Upper case, one spelling each (ALL → ALL PRIVILEGES), sorted, no repeats; ALL PRIVILEGES
    stands for every other privilege but GRANT OPTION; USAGE (no privilege) is left out."""
    found = {_canon(str(p)) for p in privileges} - {USAGE}
    if ALL in found:
        found = {p for p in found if p in (ALL, GRANT_OPTION)}
    return sorted(found)


def check_privileges(value: Any) -> Diagnostic | None:
    """An error unless ``value`` is a non-empty list of privileges MariaDB knows."""
    value = plain(value)
    if not isinstance(value, list | tuple):
        return None
    words = [p for p in value if isinstance(p, str)]
    unknown = [p for p in words if _canon(p) not in PRIVILEGES]
    if unknown:
        first = unknown[0]
        return attr_error(
            "privileges",
            f"privilege {first!r} is not a MariaDB privilege",
            did_you_mean(first.upper(), sorted(PRIVILEGES))
            + 'write them as GRANT does, e.g. ["SELECT", "INSERT"] or ["ALL"]',
            code="invalid-privilege",
        )
    if len(words) != len(value):
        return attr_error(
            "privileges", "every privilege must be a string", code="invalid-privilege"
        )
    if not normal_privileges(words):
        return attr_error(
            "privileges",
            "privileges is empty",
            "a grant needs at least one privilege; remove the resource to revoke them all",
            code="invalid-privilege",
        )
    return None


def normal_charset(name: Any) -> Any:
    """A character set or collation as the server reports it (lower case, utf8 → utf8mb3)."""
    name = plain(name)
    if not isinstance(name, str):
        return name
    name = name.lower()
    if name == "utf8" or name.startswith("utf8_"):
        return "utf8mb3" + name[4:]
    return name


# ---- the client's batch output ------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\", "b": "\b", "r": "\r", "Z": "\x1a"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def unescape(field: str) -> str:
    """A field of ``mariadb --batch`` output as stored (it escapes tab, newline, backslash)."""
    return _ESCAPED.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), field)


def rows(text: str) -> list[list[str]]:
    """The rows of ``mariadb --batch --skip-column-names`` output, fields unescaped."""
    return [[unescape(f) for f in line.split("\t")] for line in text.splitlines() if line]


_QUOTED = r"`(?:[^`]|``)*`"
_ACCOUNT = rf"(?:{_QUOTED}|'(?:[^']|'')*')"
_GRANT = re.compile(
    rf"^GRANT (?P<privs>.+?) ON (?P<db>\*|{_QUOTED})\.(?P<table>\*|{_QUOTED}) TO "
    rf"{_ACCOUNT}@{_ACCOUNT}(?P<rest>.*)$"
)


def _unquote(token: str) -> str:
    return token if token == "*" else token[1:-1].replace("``", "`")


def parse_grant_line(line: str) -> tuple[tuple[str, str], list[str]] | None:
    """``((database, table), privileges)`` of one SHOW GRANTS line on a database or table;
    None for other lines (roles, proxies, routines). Column privileges are left out."""
    m = _GRANT.match(line)
    if m is None:
        return None
    privs, depth, word = [], 0, ""
    for ch in m.group("privs") + ",":
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            if "(" not in word:
                privs.append(word.strip())
            word = ""
        else:
            word += ch
    if "WITH GRANT OPTION" in m.group("rest"):
        privs.append(GRANT_OPTION)
    return (_unquote(m.group("db")), _unquote(m.group("table"))), normal_privileges(privs)
