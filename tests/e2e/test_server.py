"""The kplan server: a command it runs is the same command, only started warm.

Each test starts a real server (``kplan server start``) on a socket of its
own and runs the real ``kplan`` command against it, beside the same command
run in its own process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kplan import client
from tests.e2e.conftest import run_kplan


class Server:
    def __init__(self, folder: Path) -> None:
        self.socket = folder / "server.sock"
        self.env = {"KPLAN_SERVER": "on", "KPLAN_SERVER_SOCKET": str(self.socket)}

    def kplan(self, cwd: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, **kw.pop("env", {}))  # type: ignore[arg-type]
        return run_kplan(cwd, *args, env=env, **kw)  # type: ignore[arg-type]

    def status(self) -> dict[str, object] | None:
        from kplan.server import request

        return request(str(self.socket), "status")

    def commands(self) -> int:
        status = self.status()
        assert status is not None, "the server is not running"
        return int(status["commands"])  # type: ignore[call-overload]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    s = Server(folder)
    started = s.kplan(tmp_path, "server", "start", "-idle-timeout", "10m", check=True)
    assert "kplan server started" in started.stdout
    status = s.status()
    assert status is not None
    pid = int(status["pid"])  # type: ignore[call-overload]
    try:
        yield s
    finally:
        s.kplan(tmp_path, "server", "stop")
        assert _gone(pid)


def _gone(pid: int) -> bool:
    """The process has ended (a zombie not yet reaped by init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _same(root: Path, text: str) -> str:
    """The output, without what differs between two copies of a module (its folder,
    the random ids of its resources)."""
    return re.sub(r'"[0-9a-f]{16}"', '"ID"', text.replace(str(root), "ROOT"))


def test_commands_run_by_the_server_print_and_exit_as_on_their_own(
    module_copy, server: Server
) -> None:
    alone = module_copy("examples/quickstart")
    served = alone.parent / "served"
    alone.rename(served)
    alone = module_copy("examples/quickstart")
    steps: list[tuple[tuple[str, ...], str | None]] = [
        (("init",), None),
        (("validate",), None),
        (("plan", "-detailed-exitcode"), None),
        # One change at a time: the order of the progress lines is then fixed.
        (("apply", "-parallelism", "1"), "no\n"),  # declined at the prompt
        (("apply", "-parallelism", "1"), "yes\n"),  # the prompt reads the client's stdin
        (("plan", "-detailed-exitcode"), None),
        (("output", "-json"), None),
        (("state", "list"), None),
        (("plan", "-var", "regions=[]"), None),  # a variable's validation fails
        (("plan", "-no-such-flag"), None),  # a usage error
        (("destroy", "-auto-approve", "-parallelism", "1"), None),
    ]
    # The order of -var and -var-file flags decides (the command reads it from sys.argv).
    for root in (alone, served):
        (root / "a.yaml").write_text("release: from-file\n")
    steps += [
        (("plan", "-var", "release=flag", "-var-file", "a.yaml"), None),
        (("plan", "-var-file", "a.yaml", "-var", "release=flag"), None),
    ]
    codes = set()
    for args, stdin in steps:
        want = run_kplan(alone, *args, input=stdin)
        codes.add(want.returncode)
        got = server.kplan(served, *args, input=stdin)
        assert (got.returncode, _same(served, got.stdout), _same(served, got.stderr)) == (
            want.returncode,
            _same(alone, want.stdout),
            _same(alone, want.stderr),
        ), args
    assert server.commands() == len(steps)
    assert codes == {0, 1, 2}  # success, error and "the plan has changes" all came back


def test_the_client_environment_directory_and_umask_are_the_commands(
    module_copy, server: Server
) -> None:
    root = module_copy("examples/quickstart")
    server.kplan(root, "init", check=True)
    # A variable from the environment, a relative -chdir, a umask: all the client's.
    proc = subprocess.run(
        [sys.executable, "-m", "kplan", "apply", "-auto-approve", "-chdir", root.name],
        cwd=root.parent,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("KPLAN_")},
            **server.env,
            "KPLAN_VAR_release": "2025.1",
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o077),
    )
    assert proc.returncode == 0, proc.stderr
    assert "kplan quickstart (2025.1)" in (root / "out" / "motd").read_text()
    assert (root / "out").stat().st_mode & 0o777 == 0o700  # made under the client's umask
    assert server.commands() == 2
    # The server's own directory and environment were put back.
    status = server.status()
    assert status is not None and status["busy"] is False


@pytest.mark.parametrize("served", [False, True], ids=["alone", "served"])
def test_ctrl_c_stops_an_apply_in_the_server_as_in_its_own_process(
    module_copy, server: Server, served: bool
) -> None:
    root = module_copy("tests/fixtures/e2e/slow")
    env = {**os.environ, "NO_COLOR": "1", **(server.env if served else {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kplan", "apply", "-auto-approve", "-parallelism", "1"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as at a terminal: a test run started in the background ignores SIGINT.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    while "Creation complete" not in proc.stdout.readline():
        pass
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert rest.rstrip().endswith("Interrupted."), rest
    # The change in flight finished and was recorded, nothing after it started, the
    # lock is released: the next run goes on from there.
    recorded = server.kplan(root, "state", "list", check=True).stdout.split()
    assert 1 <= len(recorded) < 12
    assert "interrupted" in server.kplan(root, "state", "history", check=True).stdout
    server.kplan(root, "apply", "-auto-approve", check=True)
    assert server.kplan(root, "plan", "-detailed-exitcode").returncode == 0
    assert len(list((root / "out").glob("step-*.txt"))) == 6
    assert server.commands() == (5 if served else 4)


def test_a_second_command_while_one_runs_runs_in_its_own_process(
    module_copy, server: Server
) -> None:
    slow = module_copy("tests/fixtures/e2e/slow")
    quick = module_copy("examples/quickstart")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kplan", "apply", "-auto-approve", "-parallelism", "1"],
        cwd=slow,
        env={**os.environ, **server.env, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    while "Creating" not in proc.stdout.readline():
        pass
    status = server.status()
    assert status is not None and status["busy"] is True
    # Not queued behind the apply: it runs at once, on its own.
    done = server.kplan(quick, "apply", "-auto-approve", check=True)
    assert "Apply complete! Resources: 7 added" in done.stdout
    assert proc.poll() is None, "the slow apply should still be running"
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert server.commands() == 1  # the slow apply only


def test_a_server_whose_code_changed_on_disk_declines_and_ends(module_copy, server: Server) -> None:
    root = module_copy("examples/quickstart")
    server.kplan(root, "validate", check=True)
    status = server.status()
    assert status is not None
    pid = int(status["pid"])  # type: ignore[call-overload]
    # As an upgrade of kplan would: a file the server imported changes.
    source = Path(client.__file__)
    before = source.stat()
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        proc = server.kplan(root, "validate", check=True)
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert "The configuration is valid" in proc.stdout  # run in its own process
    deadline = time.monotonic() + 10
    while not _gone(pid):
        assert time.monotonic() < deadline, "the server did not end"
        time.sleep(0.05)
    log = (server.socket.parent / "server.log").read_text()
    assert "declined a command: kplan changed on disk" in log
    # Restarted, it serves again.
    server.kplan(root, "server", "start", check=True)
    server.kplan(root, "validate", check=True)
    assert server.commands() == 1


def test_server_status_stop_and_the_log_keep_no_arguments(module_copy, server: Server) -> None:
    root = module_copy("examples/quickstart")
    server.kplan(root, "plan", "-var", "release=hunter2-secret", check=True)
    shown = server.kplan(root, "server", "status", check=True).stdout
    assert re.search(r"commands run: 1\b", shown), shown
    assert "SSH sessions kept: 0" in shown
    again = server.kplan(root, "server", "start", check=True).stdout
    assert "A kplan server runs already" in again
    log = (server.socket.parent / "server.log").read_text()
    assert "plan: exit 0" in log
    assert "hunter2" not in log
    server.kplan(root, "server", "stop", check=True)
    gone = server.kplan(root, "server", "status")
    assert gone.returncode == 1 and "No kplan server runs" in gone.stdout
    assert not server.socket.exists()
    # With no server, commands run on their own.
    assert server.kplan(root, "validate").returncode == 0


def test_a_socket_others_could_have_made_is_not_trusted(tmp_path: Path) -> None:
    import socket

    folder = tmp_path / "open"
    folder.mkdir()
    path = folder / "server.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    try:
        folder.chmod(0o700)
        assert client.trusted(str(path))
        folder.chmod(0o777)  # anyone could have put it there
        assert not client.trusted(str(path))
        folder.chmod(0o700)
        (folder / "file").write_text("")
        assert not client.trusted(str(folder / "file"))  # not a socket
        assert not client.trusted(str(folder / "missing"))
    finally:
        listener.close()


def test_kplan_server_off_and_local_commands_never_reach_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KPLAN_SERVER", "off")
    assert client.server_socket() is None
    assert client.forward(["plan"]) is None
    monkeypatch.setenv("KPLAN_SERVER", "on")
    monkeypatch.setenv("KPLAN_SERVER_SOCKET", str(tmp_path / "none.sock"))
    assert client.server_socket() == str(tmp_path / "none.sock")
    assert client.forward(["plan"]) is None  # nothing listens: run here
    assert client.forward(["lab", "up"]) is None
    monkeypatch.delenv("KPLAN_SERVER_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert client.server_socket() == str(tmp_path / "kplan" / "server.sock")


def test_server_status_json_shape(server: Server) -> None:
    status = server.status()
    assert status is not None
    assert json.loads(json.dumps(status))["socket"] == str(server.socket)
    assert status["ssh_sessions"] == [] and status["commands"] == 0


def test_no_server_starts_in_a_folder_others_can_write_to(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)  # as a /tmp/kplan-UID another user made first could be
    env = {"KPLAN_SERVER": "on", "KPLAN_SERVER_SOCKET": str(folder / "server.sock")}
    refused = run_kplan(tmp_path, "server", "start", env=env)
    assert refused.returncode == 1
    assert "is not a folder of yours that only you can write to" in refused.stderr
    assert list(folder.iterdir()) == []  # no log, no socket


def test_a_client_with_other_groups_or_python_settings_runs_on_its_own(
    module_copy, server: Server
) -> None:
    root = module_copy("examples/quickstart")
    server.kplan(root, "validate", check=True)
    assert server.commands() == 1
    # Other PYTHON* variables: what the command imports could differ from the server's.
    server.kplan(root, "validate", env={"PYTHONPATH": str(root)}, check=True)
    # Other groups (as after newgrp): the server's would not be the command's.
    env = {**os.environ, **server.env, "NO_COLOR": "1"}
    groups = subprocess.run(
        ["setpriv", "--groups", "4,5", sys.executable, "-m", "kplan", "validate"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert groups.returncode == 0, groups.stderr
    assert server.commands() == 1  # both ran, on their own
    log = (server.socket.parent / "server.log").read_text()
    assert "declined a command: other PYTHON* variables" in log
    assert "declined a command: the client runs with other groups" in log
