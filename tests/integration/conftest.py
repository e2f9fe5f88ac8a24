"""A real PostgreSQL server for the integration tests, started once per session.

The server is Debian's (``apt-get install postgresql``; binaries under
``/usr/lib/postgresql/<version>/bin``, or the folder in ``KPLAN_PG_BIN``). When
they are missing the tests fail (never skip): CI installs them.

As root (initdb refuses to run as root) the cluster belongs to the
``postgres`` system user: the commands run with that uid. The cluster lives in
a fresh temporary folder, listens on a free port of 127.0.0.1 and on a Unix
socket in that folder, trusts the socket (for the fixture's own admin work)
and asks TCP clients for a password (scram-sha-256), so the password paths of
kplan are exercised. The server is stopped by its pid at the end of the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

ADMIN_USER = "kplan"
_START_TIMEOUT = 30.0


@dataclass
class PgServer:
    """A running PostgreSQL cluster; ``new_database()`` gives each test its own database."""

    host: str
    port: int
    user: str
    password: str
    socket_dir: str
    _count: int = 0

    def url(self, database: str, *, with_password: bool = False) -> str:
        auth = f"{self.user}:{self.password}" if with_password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.socket_dir, port=self.port, user=self.user, dbname=database, autocommit=True
        )

    def new_database(self) -> str:
        """Create an empty database; returns its URL (no password in it)."""
        self._count += 1
        name = f"kplan_test_{os.getpid()}_{self._count}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _pg_bin() -> Path:
    candidates = [os.environ.get("KPLAN_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("initdb")
    if which:
        candidates.append(str(Path(which).parent))
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "postgres").is_file():
            return Path(folder)
    pytest.fail(
        "PostgreSQL server binaries (initdb, postgres) not found: install Debian's "
        "postgresql package (apt-get install postgresql) or set KPLAN_PG_BIN to their folder. "
        "The PostgreSQL integration tests need a real server and are never skipped.",
        pytrace=False,
    )


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to the postgres user (initdb refuses root)."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail(
            "running as root, but there is no 'postgres' system user to own the test cluster "
            "(install Debian's postgresql package, or run the tests as a normal user)",
            pytrace=False,
        )
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], server: PgServer, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"postgres exited with {proc.returncode}:\n{log.read_text()}")
        try:
            server.admin().close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail(f"postgres did not start in {_START_TIMEOUT:.0f}s:\n{log.read_text()}")
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no waiting for clients
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = _pg_bin()
    as_user = _run_as()
    top = Path(tempfile.mkdtemp(prefix="kplan-pg-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if as_user:
            os.chown(top, as_user["user"], as_user["group"])
        password = "pw-" + secrets.token_urlsafe(18)
        pwfile = top / "pwfile"
        pwfile.write_text(password + "\n")
        if as_user:
            os.chown(pwfile, as_user["user"], as_user["group"])
        data, log = top / "data", top / "postgres.log"
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                ADMIN_USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **as_user,
        )
        pwfile.unlink()
        port = _free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-k",
                    str(top),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user,
            )
        server = PgServer("127.0.0.1", port, ADMIN_USER, password, str(top))
        _wait_ready(proc, server, log)
        yield server
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"initdb failed: {exc.stderr.decode(errors='replace')}")
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database of the session's server (URL without the password)."""
    return pg_server.new_database()


@pytest.fixture
def pg_env(pg_server: PgServer) -> dict[str, str]:
    """An environment with the database password and a state key."""
    from kplan.state.crypto import generate_key

    return {"KPLAN_PG_PASSWORD": pg_server.password, "KPLAN_STATE_KEY": generate_key()}


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start ``python -c CODE`` children (stdout piped, text); killed at the test's end."""
    import sys
    import textwrap

    children: list[subprocess.Popen[str]] = []

    def start(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
