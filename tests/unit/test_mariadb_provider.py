"""Unit tests of the mariadb provider through the provider protocol, against a real mariadbd.

The Docker API is a fake (:class:`FakeAPI`), but its ``exec`` runs the very
command the provider sends — ``sh -c '… | mariadb --batch …'`` with the SQL in
the environment — against a real MariaDB server the fixture starts on a unix
socket in a temporary folder (``--skip-networking``; stopped by its pid at the
end). Debian's ``mariadb-server`` package provides it; .ci/run installs it, and
the tests fail, never skip, without it. The capability in a container on a lab
host is shown in tests/integration/test_mariadb_provider_lab.py.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kplan.provider_api import ValidateRequest
from kplan.values import Secret
from kplan_providers.mariadb import MariaDBProvider
from kplan_providers.mariadb._sql import native_hash, parse_grant_line
from kplan_providers.mariadb.user import DRIFTED
from tests.unit.container_exec_fakes import FakeExecAPI, ProviderDriver

HOST = "db1"


# ---- a real server ------------------------------------------------------------------


class Server:
    def __init__(self, top: Path) -> None:
        self.top = top
        self.socket = top / "mysqld.sock"
        self.home = top / "home"  # the client's ~/.my.cnf points at the socket

    def sql(self, text: str, *, user: str | None = None, password: str | None = None) -> str:
        """Run SQL as the admin (or as USER with PASSWORD); return stdout, raise on failure."""
        args = ["mariadb", "--batch", "--skip-column-names", f"--socket={self.socket}"]
        if user is not None:
            args += [f"--user={user}", f"--password={password}"]
        proc = subprocess.run(args, input=text, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise AssertionError(proc.stderr)
        return proc.stdout


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(
            f"{name} not found: install Debian's mariadb-server (.ci/run does). The mariadb "
            "provider's unit tests run against a real server and are never skipped.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    mariadbd, install = _binary("mariadbd"), _binary("mariadb-install-db")
    top = Path(tempfile.mkdtemp(prefix="kplan-mariadb-"))
    run_as = pwd.getpwnam("mysql").pw_name if os.geteuid() == 0 else pwd.getpwuid(os.getuid())[0]
    owner = pwd.getpwnam(run_as)
    os.chown(top, owner.pw_uid, owner.pw_gid)
    srv = Server(top)
    srv.home.mkdir()
    (srv.home / ".my.cnf").write_text(f"[client]\nsocket={srv.socket}\n")
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                install,
                "--no-defaults",
                f"--user={run_as}",
                f"--datadir={top / 'data'}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        with open(top / "mariadbd.log", "wb") as log:
            proc = subprocess.Popen(
                [
                    mariadbd,
                    "--no-defaults",
                    f"--user={run_as}",
                    f"--datadir={top / 'data'}",
                    f"--socket={srv.socket}",
                    "--skip-networking",
                    f"--pid-file={top / 'pid'}",
                    "--innodb-buffer-pool-size=16M",
                    "--skip-log-bin",
                    "--skip-name-resolve",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                srv.sql("SELECT 1;")
                break
            except AssertionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mariadbd did not start:\n" + (top / "mariadbd.log").read_text())
                time.sleep(0.1)
        yield srv
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(top, ignore_errors=True)


# ---- a Docker API whose exec runs the command against that server -------------------


class FakeAPI(FakeExecAPI):
    """An exec runs its command against the server.

    A container is "running", "exited", "starting" (no server on the socket yet) or
    "echo" (a client that prints its SQL in its error, as a syntax error would).
    """

    def __init__(self, server: Server) -> None:
        super().__init__("mariadb")
        self.server = server

    def answer(self, ex: dict[str, Any], state: str) -> tuple[bytes | None, bytes | None]:
        env = dict(ex["environment"])
        if state == "echo":
            ex["exit"] = 1
            err = f"--------------\n{env['KPLAN_SQL']}\n--------------\n\nERROR 1064 (42000) at "
            near = " ".join(env["KPLAN_SQL"].split())
            err += f"line 2: You have an error in your SQL syntax near '{near}'"
            return b"", err.encode()
        home = self.server.home if state == "running" else self.server.top / "nowhere"
        home.mkdir(exist_ok=True)
        if state != "running":
            (home / ".my.cnf").write_text(f"[client]\nsocket={self.server.top / 'none.sock'}\n")
        proc = subprocess.run(
            ex["cmd"],
            env={"PATH": os.environ["PATH"], "HOME": str(home), **env},
            capture_output=True,
            timeout=60,
        )
        ex["exit"] = proc.returncode
        return proc.stdout or None, proc.stderr or None


class Driver(ProviderDriver):
    """The provider, configured with one host whose Docker API is a FakeAPI."""

    api: FakeAPI

    def __init__(self, server: Server) -> None:
        self.server = server
        super().__init__(MariaDBProvider(), "mariadb", FakeAPI(server), HOST)

    def validate(self, type_name: str, config: Mapping[str, Any]) -> list[Any]:
        return list(self.p.validate(ValidateRequest(type_name, config)).diagnostics)


@pytest.fixture
def d(server: Server) -> Driver:
    return Driver(server)


_n = itertools.count(1)


def _name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}_{next(_n)}"


# ---- validate and plan -------------------------------------------------------------


def _attrs(diags: list[Any]) -> dict[str, str]:
    return {d.attribute[0]: d.code for d in diags}


def test_names_that_cannot_be_stored_are_refused_naming_the_attribute(d: Driver) -> None:
    diags = d.validate("mariadb_database", {"name": "bad\nname"})
    assert _attrs(diags) == {"name": "invalid-name"}
    diags = d.validate("mariadb_database", {"name": "x" * 65, "character_set": "utf8; DROP"})
    assert _attrs(diags) == {"name": "invalid-name", "character_set": "invalid-charset"}
    diags = d.validate(
        "mariadb_user",
        {"name": "trailing ", "client_host": "h\x00", "password": Secret(""), "container": "-x"},
    )
    assert _attrs(diags) == {
        "name": "invalid-name",
        "client_host": "invalid-name",
        "password": "empty-password",
        "container": "invalid-container",
    }
    diags = d.validate(
        "mariadb_grant",
        {"user": "u", "database": "*", "table": "t", "privileges": ["SELECT", "DROP TABLE x; --"]},
    )
    assert _attrs(diags) == {"table": "invalid-grant", "privileges": "invalid-privilege"}
    assert d.validate("mariadb_grant", {"user": "u", "database": "d", "privileges": []})
    assert (
        d.validate("mariadb_grant", {"user": "u", "database": "d", "privileges": ["SELECT"]}) == []
    )
    # Quotes and backticks are quoted, not refused.
    assert d.validate("mariadb_database", {"name": "we`ird'db"}) == []


def test_plan_normalises_privileges_hosts_and_character_sets(d: Driver) -> None:
    planned = d.plan(
        "mariadb_grant",
        {"user": "u", "database": "d", "privileges": ["select", "all", " grant  option"]},
    )
    assert planned["privileges"] == ["ALL PRIVILEGES", "GRANT OPTION"]
    planned = d.plan(
        "mariadb_grant",
        {
            "user": "u",
            "client_host": "LOCALHOST",
            "database": "d",
            "privileges": ["insert", "Select", "SELECT"],
        },
    )
    assert planned["privileges"] == ["INSERT", "SELECT"]
    assert planned["client_host"] == "localhost"
    assert planned["table"] == "*" and planned["container"] == "mariadb" and planned["wait"] == 60
    planned = d.plan(
        "mariadb_database", {"name": "x", "character_set": "UTF8", "collation": "utf8_bin"}
    )
    assert (planned["character_set"], planned["collation"]) == ("utf8mb3", "utf8mb3_bin")
    # The same set in another order and spelling is no change.
    prior = d.plan(
        "mariadb_grant", {"user": "u", "database": "d", "privileges": ["SELECT", "INSERT"]}
    )
    again = d.plan(
        "mariadb_grant", {"user": "u", "database": "d", "privileges": ["insert", "select"]}, prior
    )
    assert again == prior


def test_grant_lines_parse_with_quoting() -> None:
    line = (
        "GRANT SELECT, INSERT (`a`, `b`), UPDATE ON `we``ird`.`t``1` TO `o'b`@`%` WITH GRANT OPTION"
    )
    assert parse_grant_line(line) == (("we`ird", "t`1"), ["GRANT OPTION", "SELECT", "UPDATE"])
    line = "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*ABC'"
    assert parse_grant_line(line) == (("*", "*"), [])
    assert parse_grant_line("GRANT `role1` TO `u`@`%`") is None
    assert native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


# ---- mariadb_database --------------------------------------------------------------


def test_database_create_read_update_delete(d: Driver) -> None:
    name = _name("db_")
    planned = d.plan("mariadb_database", {"name": name})
    state = d.ok("mariadb_database", "create", planned)
    assert d.read_one("mariadb_database", state) == state
    row = d.server.sql(
        "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
        f"WHERE SCHEMA_NAME = '{name}'"
    )
    assert row.strip() == "utf8mb3"
    # Idempotent: creating it again adopts it.
    assert d.ok("mariadb_database", "create", planned) == state
    # An update changes the character set and collation.
    new = d.plan(
        "mariadb_database",
        {"name": name, "character_set": "utf8mb4", "collation": "utf8mb4_bin"},
        state,
    )
    state2 = d.ok("mariadb_database", "update", new, state)
    assert d.read_one("mariadb_database", state2) == state2
    # Drift: the character set changed by hand.
    d.server.sql(f"ALTER DATABASE `{name}` CHARACTER SET latin1 COLLATE latin1_swedish_ci;")
    drifted = d.read_one("mariadb_database", state2)
    assert (drifted["character_set"], drifted["collation"]) == ("latin1", "latin1_swedish_ci")
    # Delete drops it; a second delete finds nothing to do.
    assert d.ok("mariadb_database", "delete", None, state2) is None
    assert d.read_one("mariadb_database", state2) is None
    assert d.ok("mariadb_database", "delete", None, state2) is None


def test_identifiers_are_quoted(d: Driver) -> None:
    db = _name("we`ird'db\\")
    user = _name("o'b`r\\")
    db_state = d.ok("mariadb_database", "create", d.plan("mariadb_database", {"name": db}))
    assert db + "\n" in d.server.sql("SHOW DATABASES;").replace("\\\\", "\\")
    user_state = d.ok(
        "mariadb_user",
        "create",
        d.plan("mariadb_user", {"name": user, "password": Secret("p'w\\")}),
    )
    assert d.read_one("mariadb_user", user_state) == user_state
    d.server.sql(f"CREATE TABLE `{db.replace('`', '``')}`.`t``x` (i INT);")
    grant = d.plan(
        "mariadb_grant", {"user": user, "database": db, "table": "t`x", "privileges": ["SELECT"]}
    )
    g_state = d.ok("mariadb_grant", "create", grant)
    assert d.read_one("mariadb_grant", g_state) == g_state
    for type_name, state in (
        ("mariadb_grant", g_state),
        ("mariadb_user", user_state),
        ("mariadb_database", db_state),
    ):
        d.ok(type_name, "delete", None, state)
        assert d.read_one(type_name, state) is None


# ---- mariadb_user ------------------------------------------------------------------


def test_user_create_read_update_delete_and_drift(d: Driver) -> None:
    name = _name("u_")
    planned = d.plan("mariadb_user", {"name": name, "password": Secret("first-pw")})
    state = d.ok("mariadb_user", "create", planned)
    assert (
        d.server.sql("SELECT CURRENT_USER();", user=name, password="first-pw").strip()
        == f"{name}@%"
    )
    assert d.read_one("mariadb_user", state) == state
    # Create again (a previous apply died after the CREATE): adopted, password set.
    d.server.sql(f"ALTER USER '{name}'@'%' IDENTIFIED BY 'other';")
    assert d.ok("mariadb_user", "create", planned) == state
    assert d.read_one("mariadb_user", state) == state

    # The password changed by hand: refresh shows a different (sensitive) password.
    d.server.sql(f"ALTER USER '{name}'@'%' IDENTIFIED BY 'by-hand';")
    drifted = d.read_one("mariadb_user", state)
    assert isinstance(drifted["password"], Secret)
    assert drifted["password"].reveal() == DRIFTED
    assert str(drifted["password"]) == "(sensitive)"
    assert {k: v for k, v in drifted.items() if k != "password"} == {
        k: v for k, v in state.items() if k != "password"
    }
    # The plan restores it: an update of the password; apply sets it again.
    replan = d.plan("mariadb_user", {"name": name, "password": Secret("first-pw")}, drifted)
    assert replan["password"] != drifted["password"]
    state = d.ok("mariadb_user", "update", replan, drifted)
    assert d.read_one("mariadb_user", state) == state
    d.server.sql("SELECT 1;", user=name, password="first-pw")

    # Rotation: an update with a new password.
    rotated = d.plan("mariadb_user", {"name": name, "password": Secret("second-pw")}, state)
    state = d.ok("mariadb_user", "update", rotated, state)
    d.server.sql("SELECT 1;", user=name, password="second-pw")
    assert d.read_one("mariadb_user", state) == state

    # Deleted by hand: refresh says gone.
    d.server.sql(f"DROP USER '{name}'@'%';")
    assert d.read_one("mariadb_user", state) is None
    state = d.ok("mariadb_user", "create", rotated)
    assert d.ok("mariadb_user", "delete", None, state) is None
    assert d.read_one("mariadb_user", state) is None
    assert d.ok("mariadb_user", "delete", None, state) is None


def test_the_password_never_reaches_a_process_argument_or_a_diagnostic(d: Driver) -> None:
    password = "Top-Secret-Pw-" + os.urandom(4).hex()
    digest = native_hash(password)
    name = _name("s_")
    planned = d.plan("mariadb_user", {"name": name, "password": Secret(password)})
    d.ok("mariadb_user", "create", planned)
    for ex in d.api.execs.values():
        assert password not in " ".join(ex["cmd"]) and digest not in " ".join(ex["cmd"])
        # Not even the environment holds the password: the server gets its hash only.
        assert password not in repr(ex["environment"])
    assert any(digest in repr(ex["environment"]) for ex in d.api.execs.values())
    # A client that prints the failing SQL (a syntax error does): the diagnostic masks it.
    d.api.containers["echo"] = "echo"
    resp = d.apply("mariadb_user", "update", {**planned, "container": "echo"}, planned)
    assert [x.code for x in resp.diagnostics] == ["mariadb-error"]
    text = " ".join(f"{x.summary} {x.detail}" for x in resp.diagnostics)
    assert "ERROR 1064" in text and "(sensitive)" in text
    assert password not in text and digest not in text and digest[1:] not in text
    d.ok("mariadb_user", "delete", None, planned)


# ---- mariadb_grant -----------------------------------------------------------------


def test_grant_create_read_update_delete_and_drift(d: Driver) -> None:
    user, db = _name("g_"), _name("gdb_")
    d.ok("mariadb_user", "create", d.plan("mariadb_user", {"name": user, "password": Secret("pw")}))
    planned = d.plan("mariadb_grant", {"user": user, "database": db, "privileges": ["all"]})
    state = d.ok("mariadb_grant", "create", planned)
    assert state["privileges"] == ["ALL PRIVILEGES"]
    assert d.read_one("mariadb_grant", state) == state
    assert d.ok("mariadb_grant", "create", planned) == state  # idempotent

    # A privilege revoked by hand: refresh shows the rest, the plan puts ALL back.
    d.server.sql(f"REVOKE DELETE ON `{db}`.* FROM '{user}'@'%';")
    drifted = d.read_one("mariadb_grant", state)
    assert "DELETE" not in drifted["privileges"] and "SELECT" in drifted["privileges"]
    replan = d.plan("mariadb_grant", {"user": user, "database": db, "privileges": ["ALL"]}, drifted)
    assert replan["privileges"] == ["ALL PRIVILEGES"]
    state = d.ok("mariadb_grant", "update", replan, drifted)
    assert d.read_one("mariadb_grant", state) == state

    # ALL → SELECT, INSERT with GRANT OPTION → SELECT.
    fewer = d.plan(
        "mariadb_grant",
        {"user": user, "database": db, "privileges": ["SELECT", "INSERT", "GRANT OPTION"]},
        state,
    )
    state = d.ok("mariadb_grant", "update", fewer, state)
    assert d.read_one("mariadb_grant", state)["privileges"] == ["GRANT OPTION", "INSERT", "SELECT"]
    one = d.plan("mariadb_grant", {"user": user, "database": db, "privileges": ["SELECT"]}, state)
    state = d.ok("mariadb_grant", "update", one, state)
    assert d.read_one("mariadb_grant", state)["privileges"] == ["SELECT"]

    # Revoked entirely by hand: gone.
    d.server.sql(f"REVOKE SELECT ON `{db}`.* FROM '{user}'@'%';")
    assert d.read_one("mariadb_grant", state) is None
    state = d.ok("mariadb_grant", "create", one)
    assert d.ok("mariadb_grant", "delete", None, state) is None
    assert d.read_one("mariadb_grant", state) is None
    assert d.ok("mariadb_grant", "delete", None, state) is None  # nothing left: no error

    # Its user dropped: the grant is gone too, and its delete is no error.
    state = d.ok("mariadb_grant", "create", one)
    d.server.sql(f"DROP USER '{user}'@'%';")
    assert d.read_one("mariadb_grant", state) is None
    assert d.ok("mariadb_grant", "delete", None, state) is None


def test_a_grant_to_a_missing_user_says_so(d: Driver) -> None:
    planned = d.plan(
        "mariadb_grant", {"user": _name("nobody_"), "database": "x", "privileges": ["SELECT"]}
    )
    resp = d.apply("mariadb_grant", "create", planned)
    assert resp.new_state is None
    assert [x.code for x in resp.diagnostics] == ["mariadb-error"]
    assert "create it first" in resp.diagnostics[0].detail


# ---- the cost of a refresh and the container's state -------------------------------


def test_one_exec_per_host_for_every_instance_of_a_type(d: Driver) -> None:
    users = {f"mariadb_user.u[{i}]": _name("n_") for i in range(6)}
    dbs, user_states, grant_states = {}, {}, {}
    for addr, name in users.items():
        dbs[addr.replace("user", "database")] = d.ok(
            "mariadb_database", "create", d.plan("mariadb_database", {"name": name})
        )
        user_states[addr] = d.ok(
            "mariadb_user",
            "create",
            d.plan("mariadb_user", {"name": name, "password": Secret(name)}),
        )
        grant_states[addr.replace("user", "grant")] = d.ok(
            "mariadb_grant",
            "create",
            d.plan("mariadb_grant", {"user": name, "database": name, "privileges": ["ALL"]}),
        )
    for type_name, states in (
        ("mariadb_database", dbs),
        ("mariadb_user", user_states),
        ("mariadb_grant", grant_states),
    ):
        before = d.api.exec_count()
        resp = d.read(type_name, states)
        assert d.api.exec_count() - before == 1, type_name
        assert not resp.diagnostics
        assert dict(resp.states) == states


def test_container_missing_or_stopped_is_a_diagnostic_naming_host_container_and_resource(
    d: Driver,
) -> None:
    state = d.plan("mariadb_database", {"name": "x", "container": "db_gone"})
    resp = d.read("mariadb_database", {"mariadb_database.keystone": state})
    assert resp.states == {}  # state keeps what it recorded
    [diag] = resp.diagnostics
    assert diag.code == "mariadb-container-missing"
    assert "db1" in diag.summary and '"db_gone"' in diag.summary
    assert "mariadb_database.keystone" in diag.summary

    d.api.containers["db_stopped"] = "exited"
    state = d.plan(
        "mariadb_user",
        {"name": "x", "password": Secret("pw-x"), "container": "db_stopped", "wait": 0},
    )
    [diag] = d.read("mariadb_user", {"mariadb_user.keystone": state}).diagnostics
    assert diag.code == "mariadb-container-not-running"
    assert (
        "db1" in diag.summary
        and "db_stopped" in diag.summary
        and "mariadb_user.keystone" in diag.summary
    )
    resp = d.apply("mariadb_user", "create", state)
    assert resp.new_state is None
    assert [x.code for x in resp.diagnostics] == ["mariadb-container-not-running"]


def test_apply_waits_for_a_starting_server_for_a_bounded_time(d: Driver) -> None:
    d.api.containers["booting"] = "starting"
    name = _name("w_")
    planned = d.plan("mariadb_database", {"name": name, "container": "booting", "wait": 1})
    started = time.monotonic()
    resp = d.apply("mariadb_database", "create", planned)
    assert time.monotonic() - started >= 1
    [diag] = resp.diagnostics
    assert diag.code == "mariadb-not-ready"
    assert "booting" in diag.summary and "waited 1s" in diag.summary
    # The server comes up after two more attempts: the create then succeeds.
    d.api.started_after = 2
    planned = d.plan("mariadb_database", {"name": name, "container": "booting", "wait": 30})
    state = d.ok("mariadb_database", "create", planned)
    assert d.api.containers["booting"] == "running"
    d.ok("mariadb_database", "delete", None, state)
    # A refresh does not wait: it reports at once.
    d.api.containers["booting"] = "starting"
    d.api.started_after = None
    [diag] = d.read("mariadb_database", {"mariadb_database.x": state}).diagnostics
    assert diag.code == "mariadb-not-ready"
