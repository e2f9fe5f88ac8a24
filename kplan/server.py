"""The kplan server: kplan kept running, so that a command starts warm.

``kplan server start`` starts it; :mod:`kplan.client`, the front of every
``kplan`` command, gives it the command when it runs. What it keeps from one
command to the next is only what costs time and holds no decision:

- the imported code (kplan, its providers, SQLAlchemy, paramiko, the Docker
  SDK, Jinja2): ~0.4 s of every new process;
- open SSH sessions (:class:`kplan.transport.ssh.KeptSessions`): a handshake
  and a login per host. Each is checked again by the command that takes it.

Nothing else carries over. Every command reads its module, state and
variables afresh; it runs with the client's working directory, environment,
umask and standard streams (the file descriptors themselves, received over
the socket), in the server's main thread, one command at a time. A command
that comes while another runs is declined, and runs in its own process.

The server serves only its own user (the socket is in a directory only that
user can enter, and every peer's uid is checked), ends after a time without
commands, and declines every command once the code it imported has changed
on disk (an upgrade, a provider installed): the client then runs the command
itself, and the server ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import io
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from kplan.client import PROTOCOL, private_dir, trusted

__all__ = ["DEFAULT_IDLE_TIMEOUT", "Server", "request"]

DEFAULT_IDLE_TIMEOUT = 30 * 60
# How long a command waits for the one before to finish its reply (seconds).
BUSY_WAIT = 0.1
# What a command uses, imported before the first one comes (a module missing
# from this installation is skipped: it is then not used either).
WARM = (
    "kplan.cli.main",
    "kplan.transport.ssh",
    "fabric",
    "docker",
    "docker.transport.sshconn",
    "sqlalchemy.dialects.sqlite",
)


@dataclass
class _Job:
    conn: socket.socket
    request: dict[str, Any]
    fds: list[int]


@dataclass
class Server:
    path: str
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    started: float = field(default_factory=time.time)
    commands: int = 0
    _busy: threading.Lock = field(default_factory=threading.Lock)
    # SimpleQueue: its put() may be called from a signal handler (_terminate).
    _jobs: queue.SimpleQueue[_Job | None] = field(default_factory=queue.SimpleQueue)
    _code: dict[str, int] = field(default_factory=dict)
    _current: _Job | None = None
    _signal_lock: threading.Lock = field(default_factory=threading.Lock)
    # True only while a command runs: the SIGINT handler raises then, and never in the
    # server's own work before or after (a Ctrl-C that comes late ends nothing).
    _in_command: bool = False
    _stopping: bool = False
    _start_env: dict[str, str] = field(default_factory=lambda: _python_env(os.environ))

    # -- life ----------------------------------------------------------------

    def serve(self) -> None:
        """Serve until idle for ``idle_timeout`` seconds, stopped, or out of date."""
        from kplan.transport import ssh

        self._warm()
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, self._sigint)
        kept = ssh.KeptSessions()
        ssh.keep_sessions(kept)
        self._kept = kept
        listener, inode = _listen(self.path)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        log(f"serving on {self.path} (pid {os.getpid()})")
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=self.idle_timeout or None)
                except queue.Empty:
                    log("idle: ending")
                    break
                if job is None or self._stopping:
                    self._decline_job(job)
                    break
                self._run(job)
        finally:
            self._stopping = True  # the acceptor declines from now on
            _unlink_own(self.path, inode)
            listener.close()
            # Accepted, not started: the client runs the command itself.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._decline_job(self._jobs.get_nowait())
            kept.close()
            log("ended")

    def _decline_job(self, job: _Job | None) -> None:
        if job is None:
            return
        _close_fds(job.fds)
        with contextlib.suppress(OSError):
            _send(job.conn, {"declined": "the server is ending"})
        job.conn.close()

    def _warm(self) -> None:
        for name in WARM:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        from kplan.plugins import ProviderRegistry

        with contextlib.suppress(Exception):
            ProviderRegistry.from_entry_points().types()  # imports every provider
        # What is imported now lives as long as the server: out of the collector's way.
        gc.collect()
        gc.freeze()
        self._code = _code_files()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                self._take(conn)
            except Exception as exc:  # a bad client must not stop the server
                log(f"dropped a client: {type(exc).__name__}: {exc}")
                conn.close()

    def _take(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        pid, uid = _peer(conn)
        if uid != os.getuid():
            conn.close()
            return
        head, fds, _, _ = socket.recv_fds(conn, 4, 3, socket.MSG_CMSG_CLOEXEC)
        try:
            if len(head) < 4:
                head += _read_exactly(conn, 4 - len(head))
            (size,) = struct.unpack("!I", head)
            req: dict[str, Any] = json.loads(_read_exactly(conn, size))
        except Exception:
            _close_fds(fds)
            raise
        conn.settimeout(None)
        op = req.get("op")
        if op == "status":
            _close_fds(fds)
            _send(conn, self.status())
            conn.close()
        elif op == "stop":
            _close_fds(fds)
            _send(conn, {"stopping": True})
            conn.close()
            self._jobs.put(None)
        elif op == "run":
            why = self._decline(req, fds, pid)
            if why:
                log(f"declined a command: {why}")
                _close_fds(fds)
                with contextlib.suppress(OSError):
                    _send(conn, {"declined": why})
                conn.close()
                if why.startswith("kplan changed"):
                    self._jobs.put(None)
                return
            try:
                _send(conn, {"accepted": True})
            except OSError:
                # The client went away at once (a Ctrl-C): no command, and not busy.
                _close_fds(fds)
                conn.close()
                self._busy.release()
                return
            self._jobs.put(_Job(conn, req, fds))
        else:
            _close_fds(fds)
            conn.close()

    def _decline(self, req: dict[str, Any], fds: list[int], pid: int) -> str:
        """Why this server cannot run ``req`` (empty: it can, and is now busy with it)."""
        if self._stopping:
            return "the server is ending"
        if req.get("protocol") != PROTOCOL or len(fds) != 3:
            return "another version of kplan"
        if req.get("python") != sys.executable or req.get("kplan") != _kplan_dir():
            return "another installation of kplan"
        if _python_env(req.get("env") or {}) != self._start_env:
            # PYTHONPATH and the like decide what is imported: the server's are fixed.
            return "other PYTHON* variables than the server's"
        if not _same_privileges(pid):
            # Other groups (newgrp), another mount namespace (a container, a sandbox):
            # the command would run with more, or elsewhere, than its client.
            return "the client runs with other groups or in another namespace"
        if not os.path.isdir(str(req.get("cwd"))):
            return "the working directory is gone"  # the client says so itself
        # A moment's wait: the command before may be sending its reply, and
        # updating self._code after it, which _changed reads only while busy.
        if not self._busy.acquire(timeout=BUSY_WAIT):
            return "busy with another command"
        if _changed(self._code):
            self._busy.release()
            return "kplan changed on disk since the server started"
        return ""

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "socket": self.path,
            "started": self.started,
            "idle_timeout": self.idle_timeout,
            "commands": self.commands,
            "busy": self._busy.locked(),
            "ssh_sessions": self._kept.hosts(),
            "ssh_opened": self._kept.opened,
            "ssh_reused": self._kept.reused,
        }

    # -- one command ---------------------------------------------------------

    def _run(self, job: _Job) -> None:
        from kplan.cli.main import run_command

        req = job.request
        code = 1
        started = time.monotonic()
        before = set(threading.enumerate())
        try:
            with _as_client(req, job.fds):
                watcher = threading.Thread(target=self._watch, args=(job,), daemon=True)
                with self._signal_lock:
                    self._current = job
                watcher.start()
                code = self._command(run_command, list(req["argv"]))
                with self._signal_lock:
                    self._current = None
                # A command's own process waits for its threads before it ends (an
                # apply stopped by a second Ctrl-C leaves changes landing): so does the
                # client, and the state stays theirs until then.
                left = [t for t in threading.enumerate() if t not in before and not t.daemon]
                for t in left:
                    t.join()
        except Exception as exc:
            log(f"could not run a command: {type(exc).__name__}: {exc}")
            left = []
        finally:
            self.commands += 1
        if left:
            # Those threads may have used the sessions the command gave back.
            self._kept.close()
        # The command's name only: its arguments may hold a secret (-var).
        name = req["argv"][0] if req["argv"] else ""
        log(f"{name or '(none)'}: exit {code} in {time.monotonic() - started:.2f} s")
        with contextlib.suppress(OSError):
            _send(job.conn, {"exit": code})
        job.conn.close()
        # Modules the command imported first: their files are watched from now on. Read
        # after the reply, off the client's path, and before the next command can start.
        for path, mtime in _code_files().items():
            self._code.setdefault(path, mtime)
        self._busy.release()  # a command that comes now waits in the queue, not elsewhere
        # What the command left in cycles (sockets, channels) is freed now, not at some
        # later collection; the server's own objects go back out of the collector's way.
        gc.collect()
        gc.freeze()

    def _command(self, run: Any, argv: list[str]) -> int:
        self._in_command = True
        try:
            code: int = run(argv)
        except KeyboardInterrupt:
            code = 130  # raised as the command ended, after its own handler
        except Exception:
            # What the command's own process would print (KPLAN_DEBUG=1 lets an
            # internal error through), on the client's standard error.
            traceback.print_exc()
            code = 1
        finally:
            self._in_command = False
        return code

    def _sigint(self, signum: int, frame: object) -> None:
        if self._in_command:
            raise KeyboardInterrupt

    def _watch(self, job: _Job) -> None:
        """Ctrl-C from the client, as a SIGINT of this process (the command's main thread
        then stops as it would in a process of its own); a client gone, the same."""
        with contextlib.suppress(OSError), job.conn.makefile("rb") as lines:
            for _ in lines:
                self._interrupt(job)
            self._interrupt(job)

    def _interrupt(self, job: _Job) -> None:
        with self._signal_lock:
            if self._current is job:
                os.kill(os.getpid(), signal.SIGINT)

    def _terminate(self, signum: int, frame: object) -> None:
        """SIGTERM: a running command stops as on Ctrl-C (its state saved), then the server ends."""
        self._stopping = True
        self._jobs.put(None)
        if self._in_command:
            raise KeyboardInterrupt


@contextlib.contextmanager
def _as_client(req: dict[str, Any], fds: list[int]) -> Iterator[None]:
    """This process, for one command, as the client's: streams, directory, environment, umask."""
    saved_fds = [os.dup(n) for n in (0, 1, 2)]
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_argv = sys.argv
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_umask = os.umask(int(req["umask"]))
    try:
        # The command reads the order of its -var and -var-file flags from sys.argv.
        sys.argv = ["kplan", *req["argv"]]
        for n, fd in enumerate(fds):
            os.dup2(fd, n)
        _close_fds(fds)
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        encodings = list(req.get("encoding") or [None, None, None])
        sys.stdin, sys.stdout, sys.stderr = _streams(encodings)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        for n, fd in enumerate(saved_fds):
            os.dup2(fd, n)
            os.close(fd)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        os.umask(saved_umask)


def _streams(encodings: list[str | None]) -> tuple[TextIO, TextIO, TextIO]:
    """Text streams on fds 0-2, buffered as Python buffers its own standard streams."""

    def stream(fd: int, mode: str, encoding: str | None, *, line: bool, errors: str) -> TextIO:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered: Any = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffered, encoding=encoding or "utf-8", errors=errors, line_buffering=line
        )

    tty_out = os.isatty(1)
    return (
        stream(0, "r", encodings[0], line=False, errors="strict"),
        stream(1, "w", encodings[1], line=tty_out, errors="strict"),
        stream(2, "w", encodings[2], line=True, errors="backslashreplace"),
    )


def _listen(path: str) -> tuple[socket.socket, int]:
    """The server's socket, bound at ``path``, and the inode of that path."""
    global _LOCK_FD
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if not private_dir(folder):
        raise OSError(f"{folder} is not a directory of this user that only it can write to")
    # One server per socket: held for the server's life, so that a second `server
    # start` racing this one cannot unlink a socket that is in use.
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        raise OSError(f"another kplan server holds {path}.lock") from None
    _LOCK_FD = lock
    if os.path.lexists(path):
        os.unlink(path)  # a server that ended without cleaning up (it held no lock)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(16)
    return listener, os.lstat(path).st_ino


def _peer(conn: socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end of ``conn``."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return int(pid), int(uid)


def _same_privileges(pid: int) -> bool:
    """Whether process ``pid`` has this process's groups and mount namespace."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
        status = _proc_status(pid)
    except OSError:
        return False
    groups = {int(g) for g in status.get("Groups", "").split()}
    gid = int(status.get("Gid", "-1").split()[0])
    return ns and gid == os.getgid() and groups == set(os.getgroups())


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _python_env(env: Any) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON")}


def _unlink_own(path: str, inode: int) -> None:
    """Remove the socket, if it is still this server's (not one a later server made)."""
    with contextlib.suppress(OSError):
        if os.lstat(path).st_ino == inode:
            os.unlink(path)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(min(size, 1 << 16))
        if not chunk:
            raise EOFError("the client went away")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _kplan_dir() -> str:
    import kplan

    return os.path.dirname(os.path.abspath(kplan.__file__))


def _code_files() -> dict[str, int]:
    """Every imported module's file and its modification time: the code the server runs.

    With the ``site-packages`` folders too: a package installed or removed there
    (a new provider) changes its folder's time.
    """
    seen: dict[str, int] = {}
    paths = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    installs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    for path in [*paths, *installs]:
        if not path or path in seen:
            continue
        with contextlib.suppress(OSError):
            seen[path] = os.stat(path).st_mtime_ns
    return seen


def _changed(code: dict[str, int]) -> bool:
    for path, mtime in code.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return True
        except OSError:
            return True
    return False


def log(message: str) -> None:
    """One line in the server's log (its standard error, a file ``kplan server start`` set)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(_LOG_FD, f"{stamp} {message}\n".encode())


# The log's own descriptor: while a command runs, fd 2 is the client's.
_LOG_FD = 2
# The socket's lock file, held open (and locked) while the server lives.
_LOCK_FD = -1


def request(path: str, op: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Ask the server at ``path`` for ``status`` or to ``stop``; None when none answers."""
    if not trusted(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        body = json.dumps({"protocol": PROTOCOL, "op": op}).encode()
        sock.sendall(struct.pack("!I", len(body)) + body)
        with sock.makefile("rb") as lines:
            line = lines.readline()
    except OSError:
        return None
    finally:
        sock.close()
    if not line:
        return None
    answer: dict[str, Any] = json.loads(line)
    return answer


def main(argv: list[str] | None = None) -> None:
    """``kplan.server.main(SOCKET, IDLE_SECONDS)``: the process ``kplan server start`` starts."""
    global _LOG_FD
    args = sys.argv[1:] if argv is None else argv
    path, idle = args[0], float(args[1])
    _LOG_FD = os.dup(2)
    # Until serve() sets its own: SIGTERM ends the server while it warms up.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    gc.set_threshold(200_000, 50, 1000)
    Server(path, idle).serve()


if __name__ == "__main__":
    main()
