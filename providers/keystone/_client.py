"""The keystone provider's one way to Keystone: auth, sessions and error translation.

:class:`Auth` is the ``auth`` attribute every type takes, parsed and checked.
:class:`Clients` keeps one keystoneauth1 session per distinct ``auth`` for
the run (one token, reused by every type and every call). :func:`guard` is
the one place foreign exceptions become kplan diagnostics:

    keystoneauth1 Unauthorized (the admin login)  → code ``keystone-auth`` (status 401)
    keystoneauth1 ConnectionError (refused, DNS,
      TLS, timeout)                               → code ``keystone-unreachable``
    keystoneauth1 HttpError, ClientException      → code ``keystone-api``
    an API answer >= 400 not expected by a caller → code ``keystone-api`` (its status)

Every message names the auth URL and what was being done (the resource);
passwords are replaced by ``(sensitive)`` in any text taken from an exception
or an answer, and request bodies holding a password are never logged.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kplan.diagnostics import Diagnostic
from kplan.provider_sdk import Failed, attr_error, plain
from kplan.values import UNKNOWN, Secret, contains_unknown

__all__ = [
    "API_CODE",
    "AUTH_CODE",
    "UNREACHABLE_CODE",
    "Auth",
    "Client",
    "Clients",
    "check_auth",
    "guard",
    "mask_auth",
]

UNREACHABLE_CODE = "keystone-unreachable"
AUTH_CODE = "keystone-auth"
API_CODE = "keystone-api"
#: Seconds to wait for Keystone to connect or answer. A small keystone (one
#: worker, one thread) on a loaded host has taken over 30 s to answer a create;
#: giving up then fails the apply, and a create cannot be resent blindly.
TIMEOUT = 120.0
# Keystone behind a load balancer answers 502/503/504, or not at all, for a
# few seconds after it starts (the balancer has not seen it healthy yet), and
# so does a keystone restarting: retried for this long before giving up.
UNAVAILABLE_FOR = 60.0
_UNAVAILABLE_STATUS = (502, 503, 504)


def _ksa() -> tuple[Any, Any, Any]:
    """keystoneauth1's exceptions, session and v3 modules, imported on first use:
    every plan loads every provider, and one without keystone resources should not
    pay for keystoneauth1 (and what it imports)."""
    from keystoneauth1 import exceptions, session
    from keystoneauth1.identity import v3

    return exceptions, session, v3


_KSA_NAMES = ("ksa_exc", "ksa_session", "v3")


def __getattr__(name: str) -> Any:
    """``ksa_exc``, ``ksa_session``, ``v3``: the modules, for callers (and tests)."""
    if name in _KSA_NAMES:
        return _ksa()[_KSA_NAMES.index(name)]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _unavailable_errors() -> tuple[type[Exception], ...]:
    ksa_exc = _ksa()[0]
    return (
        ksa_exc.ServiceUnavailable,
        ksa_exc.BadGateway,
        ksa_exc.GatewayTimeout,
        ksa_exc.ConnectFailure,
        ksa_exc.ConnectTimeout,
    )


# A POST is not idempotent: sent twice, it makes two objects (two services of
# one name, which no later plan can tell apart). It is retried only when the
# request surely never reached keystone: the balancer had no server to give
# it to (503), or no connection opened. keystoneauth reports a read timeout
# as ConnectTimeout and a connection dropped mid-answer as ConnectFailure, so
# for those only urllib3's own "never connected" words are proof.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH"})
#: Calls in flight to one keystone API at once, whatever the logins. A lab or
#: small keystone runs one worker with one thread per host: more calls only
#: wait in its queue, where the wait counts against TIMEOUT.
MAX_IN_FLIGHT = 4
_in_flight: dict[str, threading.BoundedSemaphore] = {}
_in_flight_lock = threading.Lock()


def _slots(api: str) -> threading.BoundedSemaphore:
    with _in_flight_lock:
        slots = _in_flight.get(api)
        if slots is None:
            slots = _in_flight[api] = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        return slots


_NEVER_SENT_STATUS = (503,)
_NEVER_CONNECTED = ("Failed to establish a new connection", "Connection refused")


def _may_retry(method: str, status: int | None, error: Exception | None) -> bool:
    """Whether an unavailable answer (STATUS) or failure (ERROR) may be retried for METHOD."""
    if method.upper() in _IDEMPOTENT:
        return True
    if status is not None:
        return status in _NEVER_SENT_STATUS
    if isinstance(error, _ksa()[0].ServiceUnavailable):
        return True
    return any(words in str(error) for words in _NEVER_CONNECTED)


REQUIRED_AUTH_KEYS = (
    "auth_url",
    "username",
    "password",
    "project_name",
    "user_domain_name",
    "project_domain_name",
)
OPTIONAL_AUTH_KEYS = ("region_name",)


@dataclass(frozen=True)
class Auth:
    """The admin login a resource is managed with; its repr never shows the password."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str
    user_domain_name: str
    project_domain_name: str
    region_name: str | None = None

    @property
    def api(self) -> str:
        """The identity v3 API's root: the auth URL without a trailing ``/`` or ``/v3``."""
        url = self.auth_url.rstrip("/")
        return (url.removesuffix("/v3") if url.endswith("/v3") else url) + "/v3"

    @classmethod
    def parse(cls, value: Any) -> Auth:
        """The auth in a state or a plan; :class:`Failed` when it is not usable."""
        problem = check_auth(value)
        if problem is not None:
            raise Failed(problem)
        if contains_unknown(value):
            raise Failed(attr_error("auth", "auth is not known yet", code="invalid-auth"))
        v = plain(value)
        region = v.get("region_name")
        return cls(
            auth_url=str(v["auth_url"]),
            username=str(v["username"]),
            password=str(v["password"]),
            project_name=str(v["project_name"]),
            user_domain_name=str(v["user_domain_name"]),
            project_domain_name=str(v["project_domain_name"]),
            region_name=None if region is None else str(region),
        )


def check_auth(value: Any) -> Diagnostic | None:
    """An error on ``auth`` unless it is a map with the keys a login needs."""
    value = plain(value)
    if value is None or value is UNKNOWN:
        return None  # the generic check says what is missing; unknown is known later
    if not isinstance(value, Mapping):
        return attr_error(
            "auth",
            "auth must be a map",
            "keys: " + ", ".join(REQUIRED_AUTH_KEYS + OPTIONAL_AUTH_KEYS),
            code="invalid-auth",
        )
    missing = [k for k in REQUIRED_AUTH_KEYS if value.get(k) is None]
    unknown = sorted(str(k) for k in value if k not in REQUIRED_AUTH_KEYS + OPTIONAL_AUTH_KEYS)
    if missing or unknown:
        parts = [f"missing: {', '.join(missing)}"] if missing else []
        parts += [f"not an auth key: {', '.join(unknown)}"] if unknown else []
        return attr_error(
            "auth",
            "auth is not a complete keystone login",
            "; ".join(parts) + "\nkeys: " + ", ".join(REQUIRED_AUTH_KEYS + OPTIONAL_AUTH_KEYS),
            code="invalid-auth",
        )
    return None


def mask_auth(value: Any) -> Any:
    """``auth`` with its password wrapped in Secret (plans and state never show it)."""
    if not isinstance(value, Mapping):
        return value
    password = value.get("password")
    if password is None or password is UNKNOWN or isinstance(password, Secret):
        return dict(value)
    return {**value, "password": Secret(password)}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``(sensitive)``; one line."""
    for s in secrets:
        if s:
            text = text.replace(s, "(sensitive)")
    return " ".join(text.split())


@contextlib.contextmanager
def guard(auth: Auth, what: str, secrets: Iterable[str] = ()) -> Iterator[None]:
    """Turn what keystoneauth1 raises into :class:`Failed` with one clear diagnostic.

    ``what`` names the resource and the step ("keystone_project.demo: creating
    project demo"); ``secrets`` are further texts to mask besides the admin password.
    """
    hidden = [auth.password, *secrets]
    ksa_exc = _ksa()[0]
    try:
        yield
    except Failed:
        raise
    except ksa_exc.Unauthorized:
        raise Failed(
            Diagnostic.error(
                f"{what}: keystone at {auth.auth_url} refused the login in auth "
                f'(user "{auth.username}", project "{auth.project_name}")',
                "check auth's username, password, project_name and domain names",
                code=AUTH_CODE,
            ),
            status=401,
        ) from None
    except ksa_exc.ConnectionError as exc:
        raise Failed(
            Diagnostic.error(
                f"{what}: keystone at {auth.auth_url} is not reachable",
                scrub(f"{type(exc).__name__}: {exc}", hidden),
                code=UNREACHABLE_CODE,
            )
        ) from None
    except ksa_exc.ClientException as exc:  # HttpError and the rest
        status = getattr(exc, "http_status", None)
        raise Failed(
            Diagnostic.error(
                f"{what}: keystone at {auth.auth_url} failed",
                scrub(f"{type(exc).__name__}: {exc}", hidden),
                code=API_CODE,
            ),
            status=status,
        ) from None


class Client:
    """One keystoneauth1 session for one login: the token is fetched once and reused."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth
        _, ksa_session, v3 = _ksa()
        plugin = v3.Password(
            auth_url=auth.api,
            username=auth.username,
            password=auth.password,
            user_domain_name=auth.user_domain_name,
            project_name=auth.project_name,
            project_domain_name=auth.project_domain_name,
        )
        self.session = ksa_session.Session(auth=plugin, timeout=TIMEOUT)
        self.unavailable_for = UNAVAILABLE_FOR
        self._domains: dict[str, str] = {}
        self._lock = threading.Lock()

    def call(
        self,
        method: str,
        path: str,
        what: str,
        body: Mapping[str, Any] | None = None,
        allow: tuple[int, ...] = (),
        secrets: tuple[str, ...] = (),
        authenticated: bool = True,
    ) -> tuple[int, Any]:
        """One request to ``API + path``: (status, decoded JSON or None).

        A status >= 400 not in ``allow`` raises :class:`Failed` (``keystone-api``). A
        body that holds a password is given in ``secrets``: it is then never logged.
        """
        deadline = time.monotonic() + self.unavailable_for
        while True:
            with guard(self.auth, what, secrets), _slots(self.auth.api):
                try:
                    resp = self.session.request(
                        self.auth.api + path,
                        method,
                        json=body,
                        raise_exc=False,
                        authenticated=authenticated,
                        log=not secrets,
                    )
                except _unavailable_errors() as exc:
                    if time.monotonic() > deadline or not _may_retry(method, None, exc):
                        raise
                    resp = None
            if resp is not None and (
                resp.status_code not in _UNAVAILABLE_STATUS
                or time.monotonic() > deadline
                or not _may_retry(method, resp.status_code, None)
            ):
                break
            time.sleep(1.0)
        data: Any = None
        if resp.content:
            try:
                data = resp.json()
            except ValueError:
                data = None
        if resp.status_code >= 400 and resp.status_code not in allow:
            message = ""
            if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
                message = str(data["error"].get("message", ""))
            raise Failed(
                Diagnostic.error(
                    f"{what}: keystone at {self.auth.auth_url} answered {resp.status_code}",
                    scrub(message or resp.reason or "", [self.auth.password, *secrets]),
                    code=API_CODE,
                ),
                status=resp.status_code,
            )
        return resp.status_code, data

    def listed(self, collection: str, what: str, query: str = "") -> list[dict[str, Any]]:
        """``GET /COLLECTION[?query]``: the objects under the collection's key."""
        _, data = self.call("GET", f"/{collection}{query}", what)
        items = data.get(collection) if isinstance(data, Mapping) else None
        return [dict(i) for i in items or [] if isinstance(i, Mapping)]

    def domain_id(self, domain: str, what: str) -> str:
        """The id of a domain given by id or name (one list, remembered for the run)."""
        with self._lock:
            if not self._domains:
                for d in self.listed("domains", what):
                    self._domains.setdefault(str(d.get("name")), str(d.get("id")))
                    self._domains[str(d.get("id"))] = str(d.get("id"))
            found = self._domains.get(domain)
        if found is None:
            raise Failed(
                Diagnostic.error(
                    f'{what}: keystone at {self.auth.auth_url} has no domain "{domain}"',
                    "give a domain's id or name (keystone's own is id default, name Default)",
                    code="keystone-not-found",
                )
            )
        return found


class Clients:
    """The sessions of a run, one per distinct login, shared by the provider's types.

    It also remembers the logins Keystone refused during refresh: a resource whose
    recorded ``auth`` was refused is planned with its configured one (see
    :meth:`KeystoneType.plan <kplan_providers.keystone._type.KeystoneType.plan>`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Auth, Client] = {}
        self._refused: set[Auth] = set()

    def reset(self) -> None:
        with self._lock:
            self._clients.clear()
            self._refused.clear()

    def get(self, auth: Auth) -> Client:
        with self._lock:
            client = self._clients.get(auth)
            if client is None:
                client = self._clients[auth] = Client(auth)
            return client

    def refused(self, auth: Auth) -> None:
        with self._lock:
            self._refused.add(auth)

    def was_refused(self, value: Any) -> bool:
        try:
            auth = Auth.parse(value)
        except Failed:
            return False
        with self._lock:
            return auth in self._refused
