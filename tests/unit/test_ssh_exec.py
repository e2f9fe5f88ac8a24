"""How SSHConnection reads a command's output off its channel: every byte, whatever the timing."""

from __future__ import annotations

import threading

import paramiko
import pytest

from kplan.transport.ssh import SSHConnection, _send_eof


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

    transport = None  # no connection behind it: the EOF is not sent anywhere

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


EOF_BYTE, CLOSE_BYTE = 96, 97  # SSH_MSG_CHANNEL_EOF, SSH_MSG_CHANNEL_CLOSE


class RecordingTransport:
    """The transport side of a real paramiko Channel: messages are recorded, not sent.

    ``host_closes_first`` plays the race: a user message sent from the test's
    thread first lets the transport thread (``closer``) finish handling the
    host's CLOSE, which is what happens when the command exits between the
    EOF being made and being sent.
    """

    active = True
    clear_to_send_timeout = 5.0

    def __init__(self) -> None:
        self.clear_to_send = threading.Event()
        self.clear_to_send.set()
        self.clear_to_send_lock = threading.Lock()
        self.sent: list[int] = []
        self.closer: threading.Thread | None = None

    def _send_message(self, message: paramiko.Message) -> None:
        self.sent.append(message.asbytes()[0])

    def _send_user_message(self, message: paramiko.Message) -> None:
        if self.closer is not None and threading.current_thread() is not self.closer:
            self.closer.join(1.0)
        with self.clear_to_send_lock:
            self._send_message(message)

    def _unlink_channel(self, chanid: int) -> None:
        pass


class ClosingChannel(paramiko.Channel):  # type: ignore[misc]
    """A channel whose host closes it the moment its EOF is made."""

    def _send_eof(self) -> paramiko.Message | None:
        transport = self.transport
        transport.closer = threading.Thread(target=self._handle_close, args=(None,))
        transport.closer.start()
        return super()._send_eof()


def _channel(cls: type[paramiko.Channel] = paramiko.Channel) -> paramiko.Channel:
    chan = cls(1)
    chan.transport = RecordingTransport()
    chan.remote_chanid = 7
    chan.active = True
    return chan


def test_eof_goes_out_before_the_close_of_a_command_that_exits_at_once() -> None:
    # paramiko's shutdown_write sent [CLOSE, EOF] here, and OpenSSH dropped
    # the connection over an EOF for a channel it had freed.
    chan = _channel(ClosingChannel)
    _send_eof(chan)
    chan.transport.closer.join(5)
    assert chan.transport.sent == [EOF_BYTE, CLOSE_BYTE]


def test_no_eof_goes_out_on_a_closed_channel() -> None:
    chan = _channel()
    chan._handle_close(None)
    assert chan.transport.sent == [EOF_BYTE, CLOSE_BYTE]  # paramiko's own, on closing
    _send_eof(chan)
    assert chan.transport.sent == [EOF_BYTE, CLOSE_BYTE]


def test_eof_waits_for_a_key_exchange_without_holding_the_channel() -> None:
    chan = _channel()
    chan.transport.clear_to_send.clear()
    sender = threading.Thread(target=_send_eof, args=(chan,))
    sender.start()
    sender.join(0.3)
    assert sender.is_alive() and chan.transport.sent == []
    # The transport thread can still take the channel's lock mid-exchange.
    assert chan.lock.acquire(timeout=1)
    chan.lock.release()
    chan.transport.clear_to_send.set()
    sender.join(5)
    assert chan.transport.sent == [EOF_BYTE]


def test_eof_gives_up_when_a_key_exchange_never_ends() -> None:
    chan = _channel()
    chan.transport.clear_to_send.clear()
    chan.transport.clear_to_send_timeout = 0.2
    with pytest.raises(paramiko.SSHException, match="key exchange"):
        _send_eof(chan)
    assert chan.transport.sent == []


def test_eof_is_sent_without_the_channels_lock() -> None:
    # The transport thread may need the lock to go on reading while the socket is full.
    chan = _channel()
    held: list[bool] = []
    send = chan.transport._send_message

    def sending(message: paramiko.Message) -> None:
        held.append(chan.lock.locked())
        send(message)

    chan.transport._send_message = sending
    _send_eof(chan)
    assert chan.transport.sent == [EOF_BYTE] and held == [False]
