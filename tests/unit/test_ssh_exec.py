"""How SSHConnection reads a command's output off its channel: every byte, whatever the timing."""

from __future__ import annotations

import threading

from kplan.transport.ssh import SSHConnection


class ScriptedChannel:
    """A paramiko Channel stand-in whose output arrives in steps, the way packets do.

    ``arrivals`` are (stdout, stderr) chunks; the next one lands each time the
    reader asks whether EOF is in, so the last chunk and EOF come together in
    one step, between two of the reader's checks: the timing that lost output.
    """

    def __init__(self, arrivals: list[tuple[bytes, bytes]], status: int = 0) -> None:
        self._arrivals = list(arrivals)
        self._out = b""
        self._err = b""
        self._eof = False
        self._status = status
        self.status_event = threading.Event()
        self.sent = b""

    def _step(self) -> None:
        if self._arrivals:
            out, err = self._arrivals.pop(0)
            self._out += out
            self._err += err
        if not self._arrivals:
            self._eof = True
            self.status_event.set()

    @property
    def eof_received(self) -> bool:
        self._step()
        return self._eof

    def exit_status_ready(self) -> bool:
        return self._eof

    def recv_exit_status(self) -> int:
        return self._status

    def recv_ready(self) -> bool:
        return bool(self._out)

    def recv_stderr_ready(self) -> bool:
        return bool(self._err)

    def recv(self, n: int) -> bytes:
        data, self._out = self._out[:n], self._out[n:]
        return data

    def recv_stderr(self, n: int) -> bytes:
        data, self._err = self._err[:n], self._err[n:]
        return data

    def exec_command(self, line: str) -> None:
        self.command = line

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def shutdown_write(self) -> None:
        pass

    def settimeout(self, seconds: float) -> None:
        pass


def _exec(chan: ScriptedChannel, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    conn = SSHConnection("node1", "192.0.2.10")
    result = conn._exec(chan, "sh -s", stdin, timeout=5)  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def test_output_that_arrives_with_eof_is_read() -> None:
    chan = ScriptedChannel([(b"0 file\n", b""), (b"1 file\n2 missing\n", b"warn\n")])
    assert _exec(chan, b"script") == (0, b"0 file\n1 file\n2 missing\n", b"warn\n")
    assert chan.sent == b"script" and chan.command == "sh -s"


def test_output_in_one_step_with_eof_is_read() -> None:
    chan = ScriptedChannel([(b"all of it\n", b"")], status=3)
    assert _exec(chan) == (3, b"all of it\n", b"")


def test_many_steps_keep_their_order() -> None:
    steps = [(f"{i}\n".encode(), b"e" if i % 2 else b"") for i in range(50)]
    code, out, err = _exec(ScriptedChannel(steps))
    assert out.decode().split() == [str(i) for i in range(50)]
    assert err == b"e" * 25 and code == 0
