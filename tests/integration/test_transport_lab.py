"""The SSH transport on real lab hosts: commands, files, Docker, host keys, failures."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kplan.transport.base import CommandFailed, HostUnreachable, TransportError
from kplan.transport.hostkeys import HostKeys
from kplan.transport.pool import HostSpec, Transports
from kplan.transport.ssh import MAX_COMMANDS, SSHConnection
from tests.integration.lab_fixture import Lab, lab, run_ssh

__all__ = ["lab"]  # the fixture, imported for pytest


def _spec(lab: Lab, i: int, **kw: str) -> HostSpec:
    h = lab.hosts[i]
    return HostSpec(
        h.name,
        h.address,
        user="root",
        ssh_key=str(lab.ssh_key),
        known_hosts=kw.get("known_hosts", str(lab.known_hosts)),
    )


@pytest.fixture
def transports(lab: Lab) -> Iterator[Transports]:
    t = Transports([_spec(lab, i) for i in range(len(lab.hosts))], HostKeys({}))
    yield t
    t.close()


def test_commands_run_on_the_host_over_one_session(lab: Lab, transports: Transports) -> None:
    conn = transports.connect("node1")
    assert conn is transports.connect("node1")
    out = conn.run("hostname; ip -4 -o addr show dev eth0").text()
    assert out.startswith("node1\n") and lab.hosts[0].address in out
    # stdin larger than an SSH window, both streams, the exit code.
    big = conn.run("cat; echo oops >&2; exit 3", stdin=b"x" * 3_000_000, check=False)
    assert (big.exit_code, len(big.stdout), big.stderr) == (3, 3_000_000, b"oops\n")
    with pytest.raises(CommandFailed, match=r"host node1: command exited 3") as err:
        conn.run(["sh", "-c", "echo 'it broke' >&2; exit 3"])
    assert "it broke" in str(err.value)
    assert isinstance(conn, SSHConnection)
    sock = conn._client().get_transport().sock
    assert len(sock.getpeername()) == 2  # one TCP session
    # Each message goes out at once: with Nagle's algorithm on (paramiko's default) every
    # channel after the first waited ~40 ms for the host's delayed acknowledgement.
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_atomic_and_in_place_writes(transports: Transports) -> None:
    conn = transports.connect("node2")
    conn.write_file("/etc/kplan-t.conf", b"one\n", mode=0o640, owner="root", group="daemon")
    assert conn.read_file("/etc/kplan-t.conf") == b"one\n"
    assert conn.run("stat -c '%a %U %G' /etc/kplan-t.conf").text() == "640 root daemon\n"
    inode = conn.run("stat -c %i /etc/kplan-t.conf").text()
    conn.write_file("/etc/kplan-t.conf", b"two\n")  # atomic: a new inode
    assert conn.run("stat -c %i /etc/kplan-t.conf").text() != inode
    inode = conn.run("stat -c %i /etc/kplan-t.conf").text()
    conn.write_file("/etc/kplan-t.conf", b"three\n", atomic=False)
    assert conn.run("stat -c %i /etc/kplan-t.conf").text() == inode
    assert conn.read_file("/etc/kplan-t.conf") == b"three\n"
    assert conn.read_file("/etc/no-such-file") is None
    # No temporary file is left behind, even when chown fails.
    with pytest.raises(CommandFailed, match="chown"):
        conn.write_file("/etc/kplan-t.conf", b"x", owner="no-such-user")
    assert conn.run("ls -a /etc | grep -c kplan-t").text().strip() == "1"
    assert conn.read_file("/etc/kplan-t.conf") == b"three\n"
    conn.run("rm -f /etc/kplan-t.conf")


def test_docker_api_goes_over_the_same_session(transports: Transports) -> None:
    conn = transports.connect("node1")
    api = conn.docker()
    assert api.ping() is True
    info = api.info()
    # The host's own dockerd, not the machine's: its data root is the lab host's.
    assert info["Name"] == "node1"
    assert api is conn.docker()


def test_unknown_host_key_is_refused_with_fingerprint(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    t = Transports([_spec(lab, 0, known_hosts=str(empty))], HostKeys({}))
    try:
        with pytest.raises(HostUnreachable, match=r"host node1: unknown host key: .*SHA256:"):
            t.connect("node1").run("true")
        # The same words again, without a second connection attempt.
        with pytest.raises(HostUnreachable, match="unknown host key"):
            t.connect("node1").run("true")
    finally:
        t.close()
    recorded: dict[str, str] = {}
    accepting = HostKeys({}, accept_new=True, record=recorded.__setitem__)
    t = Transports([_spec(lab, 0, known_hosts=str(empty))], accepting)
    try:
        assert t.connect("node1").run("hostname").text() == "node1\n"
    finally:
        t.close()
    assert recorded["node1"].startswith("ssh-ed25519 ")


def test_unreachable_host_is_one_clear_line(lab: Lab) -> None:
    spec = HostSpec("ghost", lab.hosts[0].address, user="root", port=2222, ssh_key=str(lab.ssh_key))
    t = Transports([spec], HostKeys({}))
    try:
        with pytest.raises(HostUnreachable) as err:
            t.connect("ghost").run("true")
    finally:
        t.close()
    text = str(err.value)
    assert text.startswith(f"host ghost: cannot connect to {lab.hosts[0].address}:2222: ")
    assert "connection refused" in text and "Traceback" not in text


def test_wrong_key_is_an_auth_failure(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "id_other"
    os.system(f"ssh-keygen -q -t ed25519 -N '' -f {other}")
    spec = HostSpec(
        "node1",
        lab.hosts[0].address,
        user="root",
        ssh_key=str(other),
        known_hosts=str(lab.known_hosts),
    )
    t = Transports([spec], HostKeys({}))
    try:
        with pytest.raises(HostUnreachable, match=r"SSH login as root to .* failed"):
            t.connect("node1").run("true")
    finally:
        t.close()


def test_write_edge_cases(transports: Transports) -> None:
    conn = transports.connect("node1")
    conn.run("rm -rf /srv/kt && mkdir -p /srv/kt/dir")
    # A directory in the way: an error, and no temporary file left inside it.
    with pytest.raises(TransportError, match="cannot replace /srv/kt/dir"):
        conn.write_file("/srv/kt/dir", b"secret\n", mode=0o600)
    assert conn.run("ls -A /srv/kt/dir").text() == ""
    # In place, shorter than before: cut to length, same inode.
    conn.write_file("/srv/kt/f", b"a long first line\n")
    inode = conn.run("stat -c %i /srv/kt/f").text()
    conn.write_file("/srv/kt/f", b"short\n", atomic=False)
    assert conn.read_file("/srv/kt/f") == b"short\n"
    assert conn.run("stat -c %i /srv/kt/f").text() == inode
    # setuid survives the chown that would clear it.
    conn.write_file("/srv/kt/tool", b"#!/bin/sh\n", mode=0o4755, owner="daemon", group="daemon")
    assert conn.run("stat -c '%a %U' /srv/kt/tool").text() == "4755 daemon\n"
    conn.run("rm -rf /srv/kt")


def test_a_write_with_parents_makes_a_missing_directory_only_then(
    transports: Transports,
) -> None:
    conn = transports.connect("node1")
    assert isinstance(conn, SSHConnection)
    conn.run("rm -rf /srv/kp")
    with pytest.raises(TransportError, match=r"cannot write /srv/kp/a/f: .*no such file"):
        conn.write_file("/srv/kp/a/f", b"x\n")
    commands: list[object] = []
    run = conn.run

    def counted(command: object, **kw: object) -> object:
        commands.append(command)
        return run(command, **kw)  # type: ignore[arg-type]

    conn.run = counted  # type: ignore[method-assign]
    try:
        conn.write_file("/srv/kp/a/f", b"one\n", mode=0o640, parents=True)
        assert commands == [["mkdir", "-p", "--", "/srv/kp/a"]]
        conn.write_file("/srv/kp/a/g", b"two\n", parents=True, atomic=False)
        assert len(commands) == 1  # the directory is there: SFTP alone
    finally:
        del conn.run
    assert conn.run("stat -c '%a' /srv/kp/a/f; cat /srv/kp/a/f /srv/kp/a/g").text() == (
        "640\none\ntwo\n"
    )
    assert conn.run("ls -A /srv/kp/a").text() == "f\ng\n"  # no temporary file left
    conn.run("rm -rf /srv/kp")


def test_at_most_a_few_commands_share_the_session_at_once(transports: Transports) -> None:
    """sshd refuses more than MaxSessions (default 10) channels: kplan bounds its own."""
    conn = transports.connect("node2")
    conn.run("rm -f /srv/kt-trace")
    step = "echo start >> /srv/kt-trace; sleep 1; echo end >> /srv/kt-trace"
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda _: conn.run(step), range(12)))
    running = peak = 0
    for line in conn.run("cat /srv/kt-trace").text().split():
        running += 1 if line == "start" else -1
        peak = max(peak, running)
    # Parallel, but never past the bound.
    assert 2 <= peak <= MAX_COMMANDS
    conn.run("rm -f /srv/kt-trace")


def test_changed_key_in_known_hosts_is_refused(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"{lab.hosts[0].address} {(tmp_path / 'other_host_key.pub').read_text()}")
    t = Transports([_spec(lab, 0, known_hosts=str(known))], HostKeys({}, accept_new=True))
    try:
        with pytest.raises(HostUnreachable, match=r"host node1: host key changed: .*SHA256:"):
            t.connect("node1").run("true")
    finally:
        t.close()


def test_missing_ssh_key_file_is_named(lab: Lab, tmp_path: Path) -> None:
    spec = HostSpec("node1", lab.hosts[0].address, ssh_key=str(tmp_path / "nope"))
    t = Transports([spec], HostKeys({}))
    try:
        with pytest.raises(HostUnreachable, match=r"ssh_key .*/nope does not exist"):
            t.connect("node1").run("true")
    finally:
        t.close()


def test_a_kept_session_serves_the_next_run_and_is_checked_as_a_new_one(
    lab: Lab, tmp_path: Path
) -> None:
    """What a kplan server does between commands: the session, and its Docker client,
    go from one run to the next; the next run checks the host key again."""
    from kplan.transport import ssh

    known = tmp_path / "known_hosts"
    known.write_text(lab.known_hosts.read_text())
    kept = ssh.KeptSessions()
    ssh.keep_sessions(kept)
    try:

        def run() -> tuple[Transports, SSHConnection]:
            t = Transports([_spec(lab, 0, known_hosts=str(known))], HostKeys({}))
            conn = t.connect("node1")
            assert isinstance(conn, SSHConnection)
            return t, conn

        t, conn = run()
        assert conn.run("hostname").text() == "node1\n"
        api = conn.docker()
        assert api.ping() is True
        port = conn._client().get_transport().sock.getsockname()[1]
        t.close()
        assert (kept.opened, kept.reused) == (1, 0)
        assert kept.hosts() == [f"{lab.hosts[0].address}:22"]

        # The next run: the same TCP session, the same Docker client, both working.
        t, conn = run()
        assert conn.run("hostname").text() == "node1\n"
        assert conn._client().get_transport().sock.getsockname()[1] == port
        assert conn.docker() is api and api.ping() is True
        conn.write_file("/tmp/kplan-kept.txt", b"kept\n")  # SFTP, opened again
        assert conn.read_file("/tmp/kplan-kept.txt") == b"kept\n"
        t.close()
        assert (kept.opened, kept.reused) == (1, 1)

        # A host key the run no longer trusts: refused, kept session or not.
        known.write_text("")
        t, conn = run()
        with pytest.raises(HostUnreachable, match="unknown host key"):
            conn.run("true")
        t.close()
        assert kept.hosts() == []

        # A kept session the host dropped: the next run connects anew.
        known.write_text(lab.known_hosts.read_text())
        t, conn = run()
        conn.run("true")
        t.close()
        with lab.ssh(lab.hosts[0]) as c:
            run_ssh(c, f"ss -K sport = :22 dport = :{_kept_port(kept)} >/dev/null 2>&1 || true")
        t, conn = run()
        assert conn.run("hostname").text() == "node1\n"
        t.close()
        assert kept.opened == 3
    finally:
        ssh.keep_sessions(None)
        kept.close()
    assert kept.hosts() == []


def _kept_port(kept: object) -> int:
    """The local port of the one session ``kept`` holds."""
    ((session, _),) = kept._idle.values()  # type: ignore[attr-defined]
    port: int = session.client.get_transport().sock.getsockname()[1]
    return port
