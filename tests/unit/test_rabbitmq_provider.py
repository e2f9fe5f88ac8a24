"""Unit tests of the rabbitmq provider through the provider protocol, against a fake broker.

The Docker API is a fake (:class:`FakeAPI`) whose exec interprets the very
command the provider sends — ``rabbitmqctl -q ARGS``, or ``sh -c 'printf …
"$KPLAN_SECRET" | exec rabbitmqctl "$@"' sh -q ARGS`` with the password in
the environment — against :class:`FakeBroker`, which answers with the exit
codes and messages RabbitMQ 3.10.8 (Debian bookworm) gives, measured on a lab
container, and keeps password hashes in RabbitMQ's scheme. A real
rabbitmq-server is too heavy for a unit test: the capability on a real
broker, in a cluster of three lab hosts, is shown in
tests/integration/test_rabbitmq_cluster.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import pytest

from kplan.provider_api import ValidateRequest
from kplan.values import Secret
from kplan_providers.rabbitmq import RabbitMQProvider
from kplan_providers.rabbitmq._definitions import password_matches
from kplan_providers.rabbitmq.user import DRIFTED
from tests.unit.container_exec_fakes import FakeExecAPI, ProviderDriver

HOST = "mq1"
NOT_READY = (
    "Error: unable to perform an operation on node 'rabbit@mq1'. Please see diagnostics "
    "information and suggestions below."
)


def _hash(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class FakeBroker:
    """The state of a broker and rabbitmqctl's answers, as 3.10.8 gives them."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {
            "guest": {"hash": _hash("guest"), "tags": ["administrator"]}
        }
        self.vhosts: set[str] = {"/"}
        self.permissions: dict[tuple[str, str], tuple[str, str, str]] = {
            ("guest", "/"): (".*", ".*", ".*")
        }

    def definitions(self) -> str:
        return json.dumps(
            {
                "rabbit_version": "3.10.8",
                "users": [
                    {
                        "name": n,
                        "password_hash": u["hash"],
                        "hashing_algorithm": "rabbit_password_hashing_sha256",
                        "tags": u["tags"],
                        "limits": {},
                    }
                    for n, u in sorted(self.users.items())
                ],
                "vhosts": [{"name": v, "limits": [], "metadata": {}} for v in sorted(self.vhosts)],
                "permissions": [
                    {"user": u, "vhost": v, "configure": c, "write": w, "read": r}
                    for (u, v), (c, w, r) in sorted(self.permissions.items())
                ],
            }
        )

    def run(self, args: list[str], stdin: str | None) -> tuple[int, str, str]:
        cmd, rest = args[0], args[1:]
        if cmd == "export_definitions" and rest == ["-"]:
            return 0, self.definitions(), ""
        if cmd in ("add_user", "change_password"):
            (name,) = rest
            if stdin is None:
                return 64, "", "Error:\nPassword is not provided via argument or stdin"
            if cmd == "add_user" and name in self.users:
                return 70, "", f'Error:\nUser "{name}" already exists'
            if cmd == "change_password" and name not in self.users:
                return 67, "", f'Error:\nUser "{name}" does not exist'
            self.users.setdefault(name, {"tags": []})["hash"] = _hash(stdin)
            return 0, "", ""
        if cmd == "set_user_tags":
            if rest[0] not in self.users:
                return 67, "", f'Error:\nUser "{rest[0]}" does not exist'
            self.users[rest[0]]["tags"] = rest[1:]
            return 0, "", ""
        if cmd == "delete_user":
            if self.users.pop(rest[0], None) is None:
                return 67, "", f'Error:\nUser "{rest[0]}" does not exist'
            self.permissions = {k: v for k, v in self.permissions.items() if k[0] != rest[0]}
            return 0, "", ""
        if cmd == "add_vhost":
            self.vhosts.add(rest[0])
            return 0, "", ""
        if cmd == "delete_vhost":
            if rest[0] not in self.vhosts:
                return 65, "", f"Virtual host '{rest[0]}' does not exist"
            self.vhosts.discard(rest[0])
            self.permissions = {k: v for k, v in self.permissions.items() if k[1] != rest[0]}
            return 0, "", ""
        if cmd in ("set_permissions", "clear_permissions"):
            assert rest[0] == "-p"
            vhost, user = rest[1], rest[2]
            if vhost not in self.vhosts:
                return 69, "", f"Error:\nVirtual host {vhost} does not exist"
            if user not in self.users:
                return 67, "", f"Error:\nUser {user} does not exist"
            if cmd == "clear_permissions":
                self.permissions.pop((user, vhost), None)
            else:
                c, w, r = rest[3:]
                self.permissions[(user, vhost)] = (c, w, r)
            return 0, "", ""
        return 64, "", f"Error: unknown command {cmd}\n\n\x1b[1mUsage\x1b[0m\n\nrabbitmqctl ..."


class FakeAPI(FakeExecAPI):
    """An exec runs its rabbitmqctl command against the broker.

    A container is "running", "exited" or "starting" (the node does not answer yet).
    """

    def __init__(self, broker: FakeBroker) -> None:
        super().__init__("rabbitmq")
        self.broker = broker
        self.argv: list[list[str]] = []  # every process's arguments, as `ps` would show them

    def check_exec(self, kw: Mapping[str, Any]) -> None:
        assert kw["user"] == "rabbitmq"

    def _args(self, ex: dict[str, Any]) -> tuple[list[str], str | None]:
        cmd = ex["cmd"]
        self.argv.append(list(cmd))
        if cmd[0] == "sh":
            # sh -c 'printf "%s" "$KPLAN_SECRET" | exec rabbitmqctl "$@"' sh ARGS...
            assert cmd[1] == "-c" and '"$KPLAN_SECRET"' in cmd[2] and cmd[3] == "sh"
            args, stdin = cmd[4:], (ex["environment"] or {})["KPLAN_SECRET"]
            self.argv.append(["rabbitmqctl", *args])
        else:
            assert cmd[0] == "rabbitmqctl"
            args, stdin = cmd[1:], None
        assert args[0] == "-q"
        return args[1:], stdin

    def answer(self, ex: dict[str, Any], state: str) -> tuple[bytes | None, bytes | None]:
        args, stdin = self._args(ex)
        if state != "running":
            ex["exit"] = 69
            return b"", NOT_READY.encode()
        code, out, err = self.broker.run(args, stdin)
        ex["exit"] = code
        return out.encode() or None, err.encode() or None


class Driver(ProviderDriver):
    """The provider, configured with one host whose Docker API is a FakeAPI."""

    api: FakeAPI

    def __init__(self) -> None:
        self.broker = FakeBroker()
        super().__init__(RabbitMQProvider(), "rabbitmq", FakeAPI(self.broker), HOST)

    def validate(self, type_name: str, config: Mapping[str, Any]) -> dict[str, str]:
        diags = self.p.validate(ValidateRequest(type_name, config)).diagnostics
        return {d.attribute[0]: d.code for d in diags}


@pytest.fixture
def d() -> Driver:
    return Driver()


# ---- validate and plan ---------------------------------------------------------------


def test_bad_names_regexes_and_passwords_are_refused_naming_the_attribute(d: Driver) -> None:
    assert d.validate("rabbitmq_vhost", {"name": "-p"}) == {"name": "invalid-name"}
    assert d.validate("rabbitmq_vhost", {"name": "a\nb", "container": "-x", "wait": -1}) == {
        "name": "invalid-name",
        "container": "invalid-container",
        "wait": "invalid-wait",
    }
    assert d.validate(
        "rabbitmq_user", {"name": "", "password": Secret(""), "tags": ["ok", "two words"]}
    ) == {"name": "invalid-name", "password": "empty-password", "tags": "invalid-tag"}
    assert d.validate(
        "rabbitmq_permissions", {"user": "u", "vhost": "/", "configure": "(", "read": "^amq"}
    ) == {"configure": "invalid-regex"}
    assert d.validate("rabbitmq_user", {"name": "nova", "password": Secret("x")}) == {}
    # Names with quotes, spaces and dollars are arguments, not shell: they pass.
    assert d.validate("rabbitmq_vhost", {"name": "we'ird $HOME `x`"}) == {}


def test_plan_fills_defaults_and_compares_tags_as_a_set(d: Driver) -> None:
    planned = d.plan("rabbitmq_user", {"name": "u", "password": Secret("p"), "tags": ["b", "a"]})
    assert planned["tags"] == ["a", "b"]
    assert (planned["container"], planned["wait"]) == ("rabbitmq", 60)
    again = d.plan(
        "rabbitmq_user", {"name": "u", "password": Secret("p"), "tags": ["a", "b", "a"]}, planned
    )
    assert again == planned
    perms = d.plan("rabbitmq_permissions", {"user": "u", "vhost": "/"})
    assert (perms["configure"], perms["write"], perms["read"]) == (".*", ".*", ".*")


def test_password_hashes_are_checked_with_rabbitmqs_scheme() -> None:
    # A hash made by RabbitMQ 3.10.8 (rabbitmqctl add_user alice, password s3cret).
    stored = "A1fpSx4KodRxeopkl484iN10RTbMubDkNLq0ayhAaKq1dyiS"
    assert password_matches("s3cret", "rabbit_password_hashing_sha256", stored)
    assert not password_matches("s3cret!", "rabbit_password_hashing_sha256", stored)
    assert not password_matches("s3cret", "rabbit_password_hashing_md5", stored)
    assert not password_matches("s3cret", "no_such_algorithm", stored)
    assert not password_matches("s3cret", "rabbit_password_hashing_sha256", "not base64!")


# ---- rabbitmq_vhost ------------------------------------------------------------------


def test_vhost_create_read_delete_twice(d: Driver) -> None:
    planned = d.plan("rabbitmq_vhost", {"name": "openstack"})
    for _ in range(2):  # idempotent: a second create adopts it
        state = d.ok("rabbitmq_vhost", "create", planned)
        assert "openstack" in d.broker.vhosts
        assert d.read_one("rabbitmq_vhost", state) == state
    d.broker.vhosts.discard("openstack")  # deleted by hand
    assert d.read_one("rabbitmq_vhost", state) is None
    for _ in range(2):  # a delete of a vhost already gone is no error
        assert d.ok("rabbitmq_vhost", "delete", None, state) is None


# ---- rabbitmq_user -------------------------------------------------------------------


def test_user_create_read_drift_update_delete(d: Driver) -> None:
    planned = d.plan(
        "rabbitmq_user", {"name": "nova", "password": Secret("pw-1"), "tags": ["monitoring"]}
    )
    state = d.ok("rabbitmq_user", "create", planned)
    assert password_matches(
        "pw-1", "rabbit_password_hashing_sha256", d.broker.users["nova"]["hash"]
    )
    assert d.broker.users["nova"]["tags"] == ["monitoring"]
    assert d.read_one("rabbitmq_user", state) == state
    # Created again (an apply that died half-way): it is adopted and its password set.
    d.broker.users["nova"]["hash"] = _hash("other")
    assert d.ok("rabbitmq_user", "create", planned) == state
    assert d.read_one("rabbitmq_user", state) == state
    # Drift: a password and the tags changed by hand.
    d.broker.users["nova"]["hash"] = _hash("by-hand")
    d.broker.users["nova"]["tags"] = ["administrator"]
    drifted = d.read_one("rabbitmq_user", state)
    assert isinstance(drifted["password"], Secret) and drifted["password"].reveal() == DRIFTED
    assert drifted["tags"] == ["administrator"]
    assert "by-hand" not in repr(drifted)
    # The update restores both.
    assert d.ok("rabbitmq_user", "update", planned, drifted) == state
    assert d.read_one("rabbitmq_user", state) == state
    # Deleted by hand: gone; created again.
    del d.broker.users["nova"]
    assert d.read_one("rabbitmq_user", state) is None
    d.ok("rabbitmq_user", "create", planned)
    for _ in range(2):
        assert d.ok("rabbitmq_user", "delete", None, state) is None
    assert "nova" not in d.broker.users


def test_a_password_is_never_in_a_process_argument(d: Driver) -> None:
    password = "Never-In-Argv-42"
    planned = d.plan("rabbitmq_user", {"name": "glance", "password": Secret(password)})
    state = d.ok("rabbitmq_user", "create", planned)
    new = d.plan("rabbitmq_user", {"name": "glance", "password": Secret(password + "x")}, state)
    d.ok("rabbitmq_user", "update", new, state)
    assert d.api.argv, "the provider ran nothing"
    assert all(password not in arg for argv in d.api.argv for arg in argv)
    assert any("add_user" in argv for argv in d.api.argv)
    assert any("change_password" in argv for argv in d.api.argv)


def test_one_exec_per_host_refreshes_every_instance(d: Driver) -> None:
    states = {}
    for i in range(20):
        planned = d.plan("rabbitmq_user", {"name": f"u{i}", "password": Secret(f"p{i}")})
        states[f"rabbitmq_user.u[{i}]"] = d.ok("rabbitmq_user", "create", planned)
    before = d.api.exec_count()
    resp = d.read("rabbitmq_user", states)
    assert not resp.diagnostics
    assert d.api.exec_count() - before == 1
    assert resp.states == states


def test_one_export_answers_every_type_of_one_refresh(d: Driver) -> None:
    """users, vhosts and permissions come from the same export_definitions: one refresh
    (one snapshot) runs it once; another refresh, or a read on its own, runs it again."""
    vhost = d.ok("rabbitmq_vhost", "create", d.plan("rabbitmq_vhost", {"name": "v"}))
    user = d.ok(
        "rabbitmq_user", "create", d.plan("rabbitmq_user", {"name": "u", "password": Secret("p")})
    )
    perms = d.ok(
        "rabbitmq_permissions",
        "create",
        d.plan("rabbitmq_permissions", {"user": "u", "vhost": "v"}),
    )
    reads = {"rabbitmq_vhost": vhost, "rabbitmq_user": user, "rabbitmq_permissions": perms}
    for snapshot, execs in (("refresh-1", 1), ("refresh-2", 1), (None, 3)):
        before = d.api.exec_count()
        for type_name, state in reads.items():
            resp = d.read(type_name, {"r.x": state}, snapshot)
            assert not resp.diagnostics and resp.states["r.x"] == state
        assert d.api.exec_count() - before == execs, snapshot
    # What one refresh read is not what the next one sees.
    d.broker.vhosts.discard("v")
    assert d.read("rabbitmq_vhost", {"r.x": vhost}, "refresh-3").states["r.x"] is None


# ---- rabbitmq_permissions ------------------------------------------------------------


def test_permissions_create_drift_update_delete(d: Driver) -> None:
    d.ok("rabbitmq_vhost", "create", d.plan("rabbitmq_vhost", {"name": "openstack"}))
    d.ok("rabbitmq_user", "create", d.plan("rabbitmq_user", {"name": "nova", "password": "p"}))
    planned = d.plan(
        "rabbitmq_permissions", {"user": "nova", "vhost": "openstack", "write": "^amq\\."}
    )
    state = d.ok("rabbitmq_permissions", "create", planned)
    assert d.broker.permissions[("nova", "openstack")] == (".*", "^amq\\.", ".*")
    assert d.read_one("rabbitmq_permissions", state) == state
    d.broker.permissions[("nova", "openstack")] = ("", "", "")  # changed by hand
    drifted = d.read_one("rabbitmq_permissions", state)
    assert (drifted["configure"], drifted["write"], drifted["read"]) == ("", "", "")
    assert d.ok("rabbitmq_permissions", "update", planned, drifted) == state
    assert d.read_one("rabbitmq_permissions", state) == state
    for _ in range(2):
        assert d.ok("rabbitmq_permissions", "delete", None, state) is None
    assert d.read_one("rabbitmq_permissions", state) is None


def test_permissions_for_a_missing_user_say_what_to_do(d: Driver) -> None:
    planned = d.plan("rabbitmq_permissions", {"user": "ghost", "vhost": "/"})
    resp = d.apply("rabbitmq_permissions", "create", planned)
    (diag,) = resp.diagnostics
    assert diag.code == "rabbitmq-error"
    assert "User ghost does not exist" in diag.detail and "rabbitmq_user" in diag.detail
    assert resp.new_state is None


# ---- the container and the node ------------------------------------------------------


def test_a_missing_or_stopped_container_is_named(d: Driver) -> None:
    state = {"name": "v", "container": "nope", "wait": 0}
    resp = d.read("rabbitmq_vhost", {"r.x": state})
    assert [x.code for x in resp.diagnostics] == ["rabbitmq-container-missing"]
    assert 'no container "nope"' in resp.diagnostics[0].summary
    d.api.containers["rabbitmq"] = "exited"
    resp = d.apply("rabbitmq_vhost", "create", {**state, "container": "rabbitmq"})
    assert [x.code for x in resp.diagnostics] == ["rabbitmq-container-not-running"]


def test_apply_waits_for_a_starting_node_and_read_does_not(d: Driver) -> None:
    d.api.containers["rabbitmq"] = "starting"
    state = d.plan("rabbitmq_vhost", {"name": "v", "wait": 0})
    resp = d.read("rabbitmq_vhost", {"r.x": state})
    assert [x.code for x in resp.diagnostics] == ["rabbitmq-not-ready"]
    resp = d.apply("rabbitmq_vhost", "create", state)
    assert [x.code for x in resp.diagnostics] == ["rabbitmq-not-ready"]
    d.api.started_after = 1
    assert d.ok("rabbitmq_vhost", "create", {**state, "wait": 10}) is not None
    assert "v" in d.broker.vhosts


def test_rabbitmqctl_errors_carry_its_words_without_the_usage_text(d: Driver) -> None:
    d.broker.run = lambda args, stdin: (  # type: ignore[method-assign]
        64,
        "",
        "Error: boom\n\n\x1b[1mUsage\x1b[0m\n\nrabbitmqctl [--node <node>] add_vhost ...",
    )
    resp = d.apply("rabbitmq_vhost", "create", d.plan("rabbitmq_vhost", {"name": "v"}))
    (diag,) = resp.diagnostics
    assert diag.code == "rabbitmq-error" and "boom" in diag.detail
    assert "Usage" not in diag.detail and "exited 64" in diag.detail
