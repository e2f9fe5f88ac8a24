"""A small in-process Keystone v3 API on 127.0.0.1, for the keystone provider's unit tests.

Just enough of the real API's shapes (keystone's api-ref): password tokens
(``POST /v3/auth/tokens`` answering 201 with ``X-Subject-Token``), domains,
projects, roles, users, role assignments (``PUT/DELETE
/v3/projects/P/users/U/roles/R``, ``GET /v3/role_assignments``), services,
regions and endpoints; collections take the usual equality filters. Every
request is counted in ``calls`` as ``(method, path)``; objects may be changed
"by hand" through ``db``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

COLLECTIONS = {"projects": "project", "roles": "role", "users": "user"} | {
    "services": "service",
    "endpoints": "endpoint",
    "domains": "domain",
}
# Names unique per (collection, these fields): keystone answers 409 to a second one.
UNIQUE = {"projects": ("name", "domain_id"), "roles": ("name",), "users": ("name", "domain_id")}


@dataclass
class Db:
    admin_password: str = "admin-secret-pw"
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    assignments: set[tuple[str, str, str]] = field(default_factory=set)
    regions: set[str] = field(default_factory=lambda: {"RegionOne"})
    tokens: set[str] = field(default_factory=set)
    calls: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    # Seconds a token request takes (keystone hashing the password), and the most
    # token requests seen in flight at once.
    token_seconds: float = 0.0
    tokens_in_flight: int = 0
    tokens_peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for c in COLLECTIONS:
            self.objects.setdefault(c, {})
        self.objects["domains"]["default"] = {"id": "default", "name": "Default", "enabled": True}
        admin = self.add("users", name="admin", domain_id="default", enabled=True)
        self.passwords[admin["id"]] = self.admin_password
        self.add("projects", name="admin", domain_id="default", enabled=True, description="")

    def add(self, collection: str, **fields: Any) -> dict[str, Any]:
        obj = {"id": uuid.uuid4().hex, **fields}
        self.objects[collection][obj["id"]] = obj
        return obj

    def find(self, collection: str, **match: Any) -> dict[str, Any] | None:
        for obj in self.objects[collection].values():
            if all(obj.get(k) == v for k, v in match.items()):
                return obj
        return None

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.calls if m == method and p.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    db: Db

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"code": status, "message": message, "title": "Error"}})

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode() if n else ""
        self.db.bodies.append(raw)
        return json.loads(raw) if raw else {}

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        self.db.calls.append((method, url.path))
        body = self._body()
        if parts[:1] != ["v3"]:
            return self._error(404, "not found")
        parts = parts[1:]
        if parts == ["auth", "tokens"] and method == "POST":
            return self._token(body)
        if self.headers.get("X-Auth-Token") not in self.db.tokens:
            return self._error(401, "The request you have made requires authentication.")
        if parts[:1] == ["role_assignments"]:
            return self._send(200, {"role_assignments": self._assignments(), "links": {}})
        if parts[:1] == ["regions"] and len(parts) == 2:
            return self._region(method, parts[1])
        if len(parts) == 6 and parts[0] == "projects" and parts[2] == "users":
            return self._grant(method, parts[1], parts[3], parts[5])
        if parts and parts[0] in COLLECTIONS:
            return self._collection(method, parts[0], parts[1:], dict(parse_qsl(url.query)), body)
        return self._error(404, "not found")

    def _token(self, body: Any) -> None:
        db = self.db
        with db.lock:
            db.tokens_in_flight += 1
            db.tokens_peak = max(db.tokens_peak, db.tokens_in_flight)
        try:
            time.sleep(db.token_seconds)
            self._answer_token(body)
        finally:
            with db.lock:
                db.tokens_in_flight -= 1

    def _answer_token(self, body: Any) -> None:
        user = body["auth"]["identity"]["password"]["user"]
        if "id" in user:
            found = self.db.objects["users"].get(user["id"])
        else:
            domain = user.get("domain", {})
            d = self.db.find("domains", name=domain.get("name")) or self.db.objects["domains"].get(
                domain.get("id", "")
            )
            found = d and self.db.find("users", name=user["name"], domain_id=d["id"])
        if (
            not found
            or not found.get("enabled", True)
            or self.db.passwords.get(found["id"]) != user["password"]
        ):
            return self._error(401, "The request you have made requires authentication.")
        token = uuid.uuid4().hex
        self.db.tokens.add(token)
        out = {
            "methods": ["password"],
            "user": {"id": found["id"], "name": found["name"], "domain": {"id": "default"}},
            "expires_at": "2999-01-01T00:00:00.000000Z",
            "issued_at": "2024-01-01T00:00:00.000000Z",
            "audit_ids": [uuid.uuid4().hex],
        }
        if "scope" in body["auth"]:
            out["project"] = {"id": "x", "name": "admin", "domain": {"id": "default"}}
            out["catalog"] = []
            out["roles"] = [{"id": "r", "name": "admin"}]
        self._send(201, {"token": out}, {"X-Subject-Token": token})

    def _collection(
        self, method: str, name: str, rest: list[str], query: dict[str, str], body: Any
    ) -> None:
        objs = self.db.objects[name]
        member = COLLECTIONS[name]
        if method == "GET" and not rest:
            listed = [o for o in objs.values() if all(o.get(k) == v for k, v in query.items())]
            return self._send(200, {name: listed, "links": {"self": self.path}})
        if method == "POST" and not rest:
            fields = dict(body[member])
            password = fields.pop("password", None)
            keys = UNIQUE.get(name, ())
            if keys and self.db.find(name, **{k: fields.get(k) for k in keys}):
                return self._error(409, f"Conflict occurred attempting to store {member}")
            obj = self.db.add(name, **fields)
            if password is not None:
                self.db.passwords[obj["id"]] = password
            return self._send(201, {member: obj})
        obj = objs.get(rest[0]) if rest else None
        if obj is None:
            return self._error(404, f"Could not find {member}: {rest[:1]}.")
        if method == "PATCH":
            fields = dict(body[member])
            if "password" in fields:
                self.db.passwords[obj["id"]] = fields.pop("password")
            obj.update(fields)
            return self._send(200, {member: obj})
        if method == "DELETE":
            del objs[obj["id"]]
            return self._send(204)
        return self._send(200, {member: obj})

    def _region(self, method: str, region: str) -> None:
        if method == "PUT":
            if region in self.db.regions:
                return self._error(409, "Conflict")
            self.db.regions.add(region)
            return self._send(201, {"region": {"id": region}})
        if region not in self.db.regions:
            return self._error(404, "Could not find region")
        return self._send(200, {"region": {"id": region}})

    def _grant(self, method: str, project: str, user: str, role: str) -> None:
        key = (project, user, role)
        if method == "PUT":
            for c, i in (("projects", project), ("users", user), ("roles", role)):
                if i not in self.db.objects[c]:
                    return self._error(404, f"Could not find {c}")
            self.db.assignments.add(key)
            return self._send(204)
        if key not in self.db.assignments:
            return self._error(404, "Could not find role assignment")
        self.db.assignments.discard(key)
        return self._send(204)

    def _assignments(self) -> list[dict[str, Any]]:
        return [
            {
                "role": {"id": r},
                "user": {"id": u},
                "scope": {"project": {"id": p}},
                "links": {"assignment": f"/v3/projects/{p}/users/{u}/roles/{r}"},
            }
            for p, u, r in sorted(self.db.assignments)
        ]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


@contextmanager
def fake_keystone() -> Iterator[tuple[str, Db]]:
    """(auth URL, database) of a Keystone that lives for the ``with`` block."""
    db = Db()
    handler = type("Handler", (_Handler,), {"db": db})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v3", db
    finally:
        server.shutdown()
        server.server_close()
