"""A minimal AMQP 0-9-1 client for the lab tests: connect, log in, open a vhost, close.

Enough to show a RabbitMQ user's password and permissions work from outside
the broker, without a client library.
"""

from __future__ import annotations

import socket
import struct
from urllib.parse import urlsplit


def _frame(method: tuple[int, int], args: bytes) -> bytes:
    payload = struct.pack(">HH", *method) + args
    return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"


def _shortstr(s: str) -> bytes:
    raw = s.encode()
    return bytes([len(raw)]) + raw


def _read_method(sock: socket.socket) -> tuple[tuple[int, int], bytes]:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buf += chunk
        return buf

    kind, _, size = struct.unpack(">BHI", exactly(7))
    payload = exactly(size)
    assert exactly(1) == b"\xce" and kind == 1, "a method frame"
    class_id, method_id = struct.unpack(">HH", payload[:4])
    return (class_id, method_id), payload[4:]


def amqp_login(url: str) -> str:
    """Log in to every server of a transport URL with its credentials and open its vhost;
    return "ok" or how it failed (for the assertion message)."""
    parts = urlsplit(url)
    assert parts.scheme == "rabbit"
    vhost = parts.path[1:]  # oslo.messaging: the path after the first "/"
    for server in parts.netloc.split(","):
        cred, _, hostport = server.rpartition("@")
        user, _, password = cred.partition(":")
        host, _, port = hostport.partition(":")
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            method, _ = _read_method(sock)
            assert method == (10, 10), f"{host}: Connection.Start expected, got {method}"
            response = f"\0{user}\0{password}".encode()
            start_ok = (
                struct.pack(">I", 0)  # client properties: an empty table
                + _shortstr("PLAIN")
                + struct.pack(">I", len(response))
                + response
                + _shortstr("en_US")
            )
            sock.sendall(_frame((10, 11), start_ok))
            try:
                method, args = _read_method(sock)
            except ConnectionError as exc:
                return f"{host}: login refused ({exc})"
            if method != (10, 30):  # Connection.Tune
                return f"{host}: login refused ({method})"
            channel_max, frame_max, _heartbeat = struct.unpack(">HIH", args[:8])
            sock.sendall(_frame((10, 31), struct.pack(">HIH", channel_max, frame_max, 0)))
            sock.sendall(_frame((10, 40), _shortstr(vhost) + _shortstr("") + b"\x00"))
            try:
                method, args = _read_method(sock)
            except ConnectionError as exc:
                return f"{host}: vhost {vhost!r} refused ({exc})"
            if method != (10, 41):  # Connection.Open-Ok
                return f"{host}: vhost {vhost!r} refused ({method}, {args[2:80]!r})"
            sock.sendall(_frame((10, 50), struct.pack(">H", 200) + _shortstr("") + b"\0" * 4))
            assert _read_method(sock)[0] == (10, 51)  # Connection.Close-Ok
    return "ok"
