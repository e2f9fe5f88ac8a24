"""The ``kplan`` command's front (kplan.client) against a server that answers badly."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest

from kplan import client


def _answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *replies: bytes
) -> tuple[socket.socket, threading.Thread]:
    """This user's server socket, in a private folder under ``tmp_path``: a listener
    that takes one request and sends ``replies``, then closes."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    path = folder / "server.sock"
    monkeypatch.setenv("KPLAN_SERVER", "on")
    monkeypatch.setenv("KPLAN_SERVER_SOCKET", str(path))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            head, fds, _, _ = socket.recv_fds(conn, 4, 3)
            for fd in fds:
                socket.close(fd)
            # The whole request read before the replies: closing with some of it
            # unread would break the client's send (a test of something else).
            (size,) = struct.unpack("!I", head)
            while size:
                size -= len(conn.recv(size))
            for reply in replies:
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize("reply", [b"not json\n", b"[1, 2]\n", b"\n"])
def test_a_first_reply_that_is_not_a_json_object_runs_the_command_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reply: bytes
) -> None:
    listener, thread = _answering(tmp_path, monkeypatch, reply)
    try:
        assert client.forward(["version"]) is None  # None: not forwarded, run it here
    finally:
        thread.join(timeout=10)
        listener.close()


def test_a_broken_reply_after_the_command_started_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    listener, thread = _answering(tmp_path, monkeypatch, b'{"accepted": true}\n', b"{broken\n")
    try:
        assert client.forward(["plan"]) == 1
    finally:
        thread.join(timeout=10)
        listener.close()
    assert "the kplan server ended before the command did" in capsys.readouterr().err
