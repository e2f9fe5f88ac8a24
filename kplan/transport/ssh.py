"""One SSH session per host (Fabric over paramiko) for commands, files and Docker.

The session is opened on first use. Commands run on channels of it, files
go over its SFTP subsystem, and the Docker API is a channel running
``docker system dial-stdio`` on the host — the way the Docker SDK reaches a
remote engine, except that the SDK's own adapter opens a second connection
with its own (weaker) host-key checks, so we hand it ours.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import posixpath
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import paramiko

from kplan.transport.base import (
    CommandFailed,
    CommandResult,
    Connection,
    HostUnreachable,
    TransportError,
    close_quietly,
    command_text,
)
from kplan.transport.files import owner_spec
from kplan.transport.hostkeys import HostKeys, fingerprint

__all__ = ["KeptSessions", "SSHConnection", "keep_sessions"]

CONNECT_TIMEOUT = 10.0
# sshd refuses more than MaxSessions (default 10) channels on one connection: at
# most this many commands at once, as many Docker API connections, and SFTP.
MAX_COMMANDS = 4
MAX_DOCKER_CONNECTIONS = 4
# A keepalive every so many seconds: a host that dies mid-command is noticed.
KEEPALIVE = 15
# The Docker API version the adapter speaks: Docker 20.10 (Debian bookworm) and
# Podman 4 serve it; asking the engine first would cost a round trip.
DOCKER_API_VERSION = "1.41"


class KeptSessions:
    """SSH sessions a kplan server keeps open from one command to the next.

    A command's connection to a host takes the session kept for the same
    address, port, user, key file and known_hosts, if one is kept and still
    answers, and gives it back when the command ends instead of closing it:
    no handshake and no login after the first command. What a new session
    is checked for, a kept one is checked for again, by the command that
    takes it: the host key against that command's known_hosts and state
    (so a kept session never lets in a key the command would refuse), and a
    round trip (so a host that went away is reconnected to, not failed on).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[object, ...], tuple[Any, Any]] = {}
        self.opened = 0
        self.reused = 0

    def take(self, key: tuple[object, ...]) -> tuple[Any, Any] | None:
        """The session kept for ``key`` and the Docker client kept with it (maybe None)."""
        with self._lock:
            return self._idle.pop(key, None)

    def give(self, key: tuple[object, ...], session: Any, docker_api: Any) -> None:
        with self._lock:
            old = self._idle.pop(key, None)
            self._idle[key] = (session, docker_api)
        if old is not None:
            _close_session(old)

    def hosts(self) -> list[str]:
        """``address:port`` of every session kept, sorted."""
        with self._lock:
            return sorted(f"{key[0]}:{key[1]}" for key in self._idle)

    def close(self) -> None:
        with self._lock:
            sessions = list(self._idle.values())
            self._idle.clear()
        for session in sessions:
            _close_session(session)


# Set only in a kplan server (kplan.server): a plain command closes its sessions.
_kept: KeptSessions | None = None


def keep_sessions(kept: KeptSessions | None) -> None:
    """Keep the SSH sessions of every later command in ``kept`` (None: close them)."""
    global _kept
    _kept = kept


def _close_session(kept: tuple[Any, Any]) -> None:
    """Close a kept session and the Docker client kept with it."""
    session, docker_api = kept
    if docker_api is not None:
        close_quietly(docker_api)
    close_quietly(session)


class SSHConnection(Connection):
    def __init__(
        self,
        host: str,
        address: str,
        *,
        port: int = 22,
        user: str | None = None,
        key_filename: str | None = None,
        known_hosts: str | None = None,
        host_keys: HostKeys | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.host = host
        self.address = address
        self.port = port
        self.user = user
        self._key_filename = key_filename
        self._known_hosts = known_hosts or os.path.expanduser("~/.ssh/known_hosts")
        self._host_keys = host_keys if host_keys is not None else HostKeys({})
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._sftp_lock = threading.Lock()
        self._fabric: Any = None
        self._failed: HostUnreachable | None = None
        self._docker: Any = None
        self._kept_docker: Any = None  # taken with a kept session, until docker() uses it
        self._session_key: tuple[object, ...] | None = None  # see _kept_key
        self._commands = threading.BoundedSemaphore(MAX_COMMANDS)

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}"

    # -- the session ---------------------------------------------------------

    def _client(self) -> paramiko.SSHClient:
        with self._lock:
            if self._failed is not None:
                # One failure per host per run: later calls fail at once, with the same words.
                raise self._failed
            if self._fabric is None:
                try:
                    self._fabric = self._kept_session() or self._open()
                except HostUnreachable as exc:
                    self._failed = exc
                    raise
            client: paramiko.SSHClient = self._fabric.client
            return client

    def _kept_key(self) -> tuple[object, ...]:
        """What a kept session must share with this connection to serve it: the same
        host, port, user, login (key file, or agent) and known_hosts."""
        login: tuple[object, ...] = (os.environ.get("SSH_AUTH_SOCK"),)
        if self._key_filename:
            # A key file replaced since (rotated) is a different login: a new session.
            login = (self._key_filename,)
            with contextlib.suppress(OSError):
                st = os.stat(self._key_filename)
                login += (st.st_ino, st.st_mtime_ns, st.st_size)
        user = self.user or getpass.getuser()
        return (self.address, self.port, user, login, self._known_hosts)

    def _kept_session(self) -> Any:
        """The session a kplan server kept for this host, checked as a new one is; or None."""
        kept = _kept
        if kept is None:
            return None
        self._session_key = self._kept_key()
        found = kept.take(self._session_key)
        if found is None:
            return None
        session, self._kept_docker = found
        transport = session.client.get_transport()
        try:
            if transport is None or not transport.is_active():
                raise EOFError
            self._host_keys.verify(
                self.host,
                self.address,
                self.port,
                transport.get_remote_server_key(),
                self._known_hosts,
            )
            # One round trip: the host still answers on this session.
            transport.open_session(timeout=self._timeout).close()
        except (HostUnreachable, paramiko.SSHException, OSError, EOFError):
            # Not trusted now, or gone: a new session decides, as without a server.
            _close_session(found)
            self._kept_docker = None
            return None
        kept.reused += 1
        return session

    def _open(self) -> Any:
        import fabric

        kwargs: dict[str, Any] = {
            "banner_timeout": self._timeout,
            "auth_timeout": self._timeout,
        }
        if self._key_filename and not os.path.isfile(self._key_filename):
            raise HostUnreachable(
                self.host, f"ssh_key {self._key_filename} does not exist or is not a file"
            )
        if self._key_filename:
            kwargs.update(key_filename=self._key_filename, look_for_keys=False, allow_agent=False)
        conn = fabric.Connection(
            self.address,
            user=self.user,
            port=self.port,
            connect_timeout=int(max(1, self._timeout)),
            connect_kwargs=kwargs,
        )
        conn.client.set_missing_host_key_policy(
            HostKeyPolicy(self._host_keys, self.host, self.address, self.port, self._known_hosts)
        )
        # The known_hosts keys of this host, given to paramiko: it then asks the host
        # for a key of a type it knows (as OpenSSH does) and refuses a different one.
        lookup, known = self._host_keys.known(self._known_hosts, self.address, self.port)
        for key_type, key in known.items():
            conn.client.get_host_keys().add(lookup, key_type, key)
        try:
            conn.open()
        except HostUnreachable:
            conn.close()
            raise
        except paramiko.BadHostKeyException as exc:
            conn.close()
            raise HostUnreachable(
                self.host,
                f"host key changed: {self.address} now presents {exc.key.get_name()} key "
                f"{fingerprint(exc.key)}",
                f"it differs from the key for {lookup} in {self._known_hosts}",
            ) from None
        except paramiko.AuthenticationException as exc:
            conn.close()
            user = self.user or "the current user"
            raise HostUnreachable(
                self.host,
                f"SSH login as {user} to {self.where} failed: {exc}",
                f"key: {self._key_filename or 'the SSH agent and ~/.ssh/id_*'}",
            ) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            conn.close()
            raise HostUnreachable(
                self.host, f"cannot connect to {self.where}: {_reason(exc)}"
            ) from None
        transport = conn.client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE)
            _no_delay(transport)
        if _kept is not None:
            _kept.opened += 1
        return conn

    def _transport(self) -> paramiko.Transport:
        transport = self._client().get_transport()
        if transport is None or not transport.is_active():
            raise HostUnreachable(self.host, f"the SSH session to {self.where} was closed")
        return transport

    def _lost(self, exc: BaseException) -> HostUnreachable:
        return HostUnreachable(self.host, f"lost the SSH session to {self.where}: {_reason(exc)}")

    # -- commands ------------------------------------------------------------

    def run(
        self,
        command: str | Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        line = command_text(command)
        with self._commands:
            try:
                chan = self._transport().open_session(timeout=self._timeout)
            except paramiko.ChannelException as exc:
                raise _refused_session(self.host, exc) from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise self._lost(exc) from None
            try:
                result = self._exec(chan, line, stdin, timeout)
            finally:
                chan.close()
        if check and not result.ok:
            raise CommandFailed(self.host, line, result)
        return result

    def _exec(
        self, chan: paramiko.Channel, line: str, stdin: bytes | None, timeout: float | None
    ) -> CommandResult:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            chan.exec_command(line)
            if stdin:
                chan.sendall(stdin)
            _send_eof(chan)
            out: list[bytes] = []
            err: list[bytes] = []
            chan.settimeout(0.05)
            # Read both streams as data comes: reading one to its end first can
            # stall a command that fills the other's window.
            while True:
                # EOF and the exit status are read BEFORE the buffers: the host sends
                # all its output before EOF, so once EOF is in, the reads below take
                # the rest. Checking "buffers empty" first and "EOF in" second lost the
                # tail of the output when it arrived, with EOF, between the two checks.
                done = chan.eof_received and chan.exit_status_ready()
                busy = False
                while chan.recv_ready():
                    out.append(chan.recv(1 << 16))
                    busy = True
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(1 << 16))
                    busy = True
                if done:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise HostUnreachable(self.host, f"command timed out after {timeout:g} s", line)
                if not busy:
                    chan.status_event.wait(0.01)
            return CommandResult(chan.recv_exit_status(), b"".join(out), b"".join(err))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc) from None

    # -- files ---------------------------------------------------------------

    def _sftp(self) -> paramiko.SFTPClient:
        self._client()
        try:
            sftp: paramiko.SFTPClient = self._fabric.sftp()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc) from None
        return sftp

    def read_file(self, path: str) -> bytes | None:
        with self._sftp_lock:
            sftp = self._sftp()
            try:
                with sftp.open(path, "rb") as f:
                    data: bytes = f.read()
                    return data
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise TransportError(self.host, f"cannot read {path}: {_reason(exc)}") from None

    def write_file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o644,
        owner: str | None = None,
        group: str | None = None,
        atomic: bool = True,
        parents: bool = False,
    ) -> None:
        directory, name = posixpath.split(path)
        target = path
        if atomic:
            target = posixpath.join(directory or ".", f".{name}.kplan-{secrets.token_hex(4)}")
        if not self._upload(path, target, data, mode, atomic, parents):
            # The directory is missing: made only now, so that a write into one that
            # exists (nearly every write) costs no command on the host.
            self.run(["mkdir", "-p", "--", directory or "."])
            self._upload(path, target, data, mode, atomic, False)
        spec = owner_spec(owner, group)
        if spec:
            # chown clears setuid/setgid bits: the mode is set again after it.
            steps = [f"chown {shlex.quote(spec)} {shlex.quote(target)}"]
            if mode & 0o7000:
                steps.append(f"chmod {mode:o} {shlex.quote(target)}")
            script = " && ".join(steps)
            if atomic:
                script = f"{{ {script}; }} || {{ rc=$?; rm -f {shlex.quote(target)}; exit $rc; }}"
            self.run(script)
        if atomic:
            with self._sftp_lock:
                sftp = self._sftp()
                try:
                    # rename(2): replaces a file or a symlink itself, fails on a directory
                    # (where `mv` would have moved the file into it).
                    sftp.posix_rename(target, path)
                except BaseException as exc:
                    self._discard(sftp, target)
                    if isinstance(exc, paramiko.SSHException | EOFError):
                        raise self._lost(exc) from None
                    if isinstance(exc, OSError):
                        why = _reason(exc)
                        raise TransportError(self.host, f"cannot replace {path}: {why}") from None
                    raise

    def _upload(
        self, path: str, target: str, data: bytes, mode: int, atomic: bool, missing_ok: bool
    ) -> bool:
        """Write ``target`` over SFTP; False (nothing written) when ``missing_ok`` and its
        directory does not exist."""
        with self._sftp_lock:
            sftp = self._sftp()
            try:
                self._put(sftp, target, data, mode, atomic)
            except BaseException as exc:
                if atomic:
                    self._discard(sftp, target)
                if isinstance(exc, paramiko.SSHException | EOFError):
                    raise self._lost(exc) from None
                if missing_ok and isinstance(exc, FileNotFoundError):
                    return False
                if isinstance(exc, OSError):
                    why = _reason(exc)
                    raise TransportError(self.host, f"cannot write {path}: {why}") from None
                raise
        return True

    @staticmethod
    def _put(sftp: paramiko.SFTPClient, target: str, data: bytes, mode: int, atomic: bool) -> None:
        if atomic:
            f = sftp.open(target, "wx")
        else:
            # In place: the same inode, so bind mounts of the file see the change; the
            # old content is overwritten, then cut to length (never truncated first).
            try:
                f = sftp.open(target, "r+")
            except FileNotFoundError:
                f = sftp.open(target, "w")
        with f:
            # The mode before the first byte: a secret is never readable by others,
            # not even while it is being written.
            f.chmod(mode & 0o777)
            f.set_pipelined(True)
            f.write(data)
            if not atomic:
                f.truncate(len(data))
        if mode & 0o7000:
            sftp.chmod(target, mode)

    @staticmethod
    def _discard(sftp: paramiko.SFTPClient, target: str) -> None:
        with contextlib.suppress(Exception):
            sftp.remove(target)

    # -- Docker --------------------------------------------------------------

    def docker(self) -> Any:
        client = self._client()
        with self._lock:
            if self._docker is None:
                api, self._kept_docker = self._kept_docker, None
                if api is not None:
                    api._custom_adapter.owner = self
                    self._docker = api
                else:
                    self._docker = _docker_client(self, client)
            return self._docker

    def close(self) -> None:
        with self._lock:
            api, self._docker = self._docker or self._kept_docker, None
            session, self._fabric = self._fabric, None
            self._kept_docker = None
        kept = _kept
        transport = session.client.get_transport() if session is not None else None
        if kept is not None and api is not None and not _all_returned(api):
            # A response left unread (a pull stopped half-way) holds its connection for
            # good: a kept client would have one fewer each time, then none.
            close_quietly(api)
            api = None
        if kept is None or transport is None or not transport.is_active():
            if api is not None:
                api.close()
            if session is not None:
                session.close()
            return
        # SFTP is opened again by the next command that writes: a transfer this
        # command left half done must not be the next one's first reply. The
        # Docker client stays, with its idle dial-stdio channels (each one a
        # process started on the host): an HTTP connection dropped meanwhile is
        # noticed by its pool, and opened again.
        sftp, session._sftp = session._sftp, None
        if sftp is not None:
            close_quietly(sftp)
        # Filed under what it was opened with, not what the key file is by now.
        kept.give(self._session_key or self._kept_key(), session, api)


def _all_returned(api: Any) -> bool:
    """Whether every HTTP connection of a Docker client is back in its pool."""
    pool = getattr(getattr(api, "_custom_adapter", None), "_pool", None)
    if pool is None:
        return True
    slots = pool.pool
    return bool(slots is not None and slots.qsize() == slots.maxsize)


def _no_delay(transport: paramiko.Transport) -> None:
    """Send each SSH message at once (TCP_NODELAY), as OpenSSH does.

    paramiko leaves Nagle's algorithm on: a small message (a channel open, a
    command's EOF) sent while the one before is not yet acknowledged waits for
    that acknowledgement, which the host delays by up to 40 ms. Every command
    and Docker connection after the first on a session paid that: 41 ms to
    open a channel, 0.3 ms without.
    """
    sock = transport.sock
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _send_eof(chan: paramiko.Channel) -> None:
    """Tell the command its input has ended: EOF, ordered before the channel's CLOSE.

    paramiko's ``shutdown_write`` makes the EOF message under the channel's
    lock but sends it after letting go. A command that exits at once (a
    ``mkdir``, with nothing slow in the host's shell start) can have the
    host close its channel in between; paramiko's transport thread answers
    with its own CLOSE, and the EOF follows it. OpenSSH takes an EOF for a
    channel it has freed for a protocol violation and drops the connection
    ("ieof packet referred to nonexistent channel"): every command, file and
    Docker request in flight on that host fails.

    Here the EOF is made and sent under the transport's send lock (which
    paramiko holds for every message it sends), made under the channel's
    lock too: a CLOSE the transport thread makes meanwhile goes out after
    the EOF, and once the channel is closed no EOF goes out at all. The send
    lock is taken only outside a key exchange, the way paramiko's own
    ``_send_user_message`` takes it, so a re-key is never waited on while
    the channel's lock is held (that would deadlock the transport thread).
    """
    transport = chan.transport
    if transport is None:
        return
    deadline = time.monotonic() + transport.clear_to_send_timeout
    while True:
        transport.clear_to_send.wait(0.1)
        if not transport.active:
            return  # the connection is gone; the read that follows says so
        transport.clear_to_send_lock.acquire()
        if transport.clear_to_send.is_set():
            break
        transport.clear_to_send_lock.release()
        if time.monotonic() > deadline:
            raise paramiko.SSHException("key exchange timed out before the command's EOF")
    try:
        with chan.lock:
            message = None if chan.closed else chan._send_eof()
        # Sent without the channel's lock, as paramiko sends: the transport thread
        # may need that lock to read on while the socket is full. A CLOSE it makes
        # now waits for the send lock, held until the EOF is out.
        if message is not None:
            transport._send_message(message)
    finally:
        transport.clear_to_send_lock.release()


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """paramiko's hook: the client holds no keys itself, so every key comes here."""

    def __init__(self, keys: HostKeys, host: str, address: str, port: int, known_hosts: str):
        self._keys = keys
        self._where = (host, address, port, known_hosts)

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        host, address, port, known_hosts = self._where
        self._keys.verify(host, address, port, key, known_hosts)


def _docker_client(conn: SSHConnection, client: paramiko.SSHClient) -> Any:
    """A docker.APIClient whose HTTP connections are channels of ``conn``'s session."""
    import docker
    from docker.transport.sshconn import SSHHTTPAdapter

    class SessionAdapter(SSHHTTPAdapter):  # type: ignore[misc]
        """One bounded pool of dial-stdio channels for every URL (the parent keeps a
        pool per URL, each holding channels open: sshd's MaxSessions runs out)."""

        def __init__(self) -> None:
            # Skip the parent's __init__: it would open a connection of its own.
            from docker.transport.basehttpadapter import BaseHTTPAdapter

            self.owner = conn  # named in errors; a kplan server hands it on (see close)
            self.ssh_client = client
            self.ssh_host = conn.address
            self.ssh_params: dict[str, Any] = {}
            self.timeout = 300
            self.max_pool_size = MAX_DOCKER_CONNECTIONS
            self.pools: Any = None
            BaseHTTPAdapter.__init__(self)
            self._pool: Any = None
            self._pool_lock = threading.Lock()

        def get_connection(self, url: str, proxies: Any = None) -> Any:
            from docker.transport.sshconn import SSHConnectionPool

            with self._pool_lock:
                if self._pool is None:
                    pool = SSHConnectionPool(
                        ssh_client=client,
                        timeout=self.timeout,
                        maxsize=MAX_DOCKER_CONNECTIONS,
                        host=conn.address,
                    )
                    pool.block = True  # wait for a free channel rather than open more
                    self._pool = pool
                return self._pool

        def get_connection_with_tls_context(
            self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
        ) -> Any:
            return self.get_connection(request.url, proxies)

        def _connect(self) -> None:
            owner = self.owner
            raise HostUnreachable(owner.host, f"the SSH session to {owner.where} was closed")

        def close(self) -> None:
            # The session belongs to the connection, not to this adapter.
            with self._pool_lock:
                if self._pool is not None:
                    self._pool.close()
                    self._pool = None

    # A placeholder URL: the client is built without touching the network, then
    # every request goes through the adapter mounted below.
    api = docker.APIClient(base_url="tcp://127.0.0.1:1", version=DOCKER_API_VERSION, timeout=300)
    adapter = SessionAdapter()
    api.mount("http+docker://ssh", adapter)
    api._custom_adapter = adapter
    api.base_url = "http+docker://ssh"
    return api


def _refused_session(host: str, exc: BaseException) -> TransportError:
    return TransportError(
        host,
        f"sshd refused another session on the connection: {_reason(exc)}",
        "kplan keeps at most 9 sessions per host open; raise MaxSessions in the host's "
        "sshd_config if it is set lower than 10",
        code="ssh-sessions",
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # One error per address tried; their own words say more than paramiko's summary.
        reasons = {_reason(e) for e in exc.errors.values()}
        return "; ".join(sorted(reasons)) or "no address to connect to"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    text = str(exc).strip()
    return text or type(exc).__name__
