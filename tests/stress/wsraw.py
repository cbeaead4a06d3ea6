"""A hand-written WebSocket client over a bare socket, for the stress probes.

It does exactly what it is told and nothing else: no background reader (so a
client that "reads nothing" really leaves every byte in the kernel), frames
cut anywhere, handshakes trickled a few bytes at a time. Standard library
only, so a bare ``python -c`` child can use it too (``sys.path`` + import).

Requests speak the reference protocol (../shared/PROTOCOL.md): one msgpack
map per binary message, no extensions offered.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from typing import Optional, Tuple

OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def upgrade_request(host: str, port: int, token: str) -> bytes:
    """The HTTP upgrade request of a stock client (no extensions offered)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /?token={token} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


def frame_header(opcode: int, length: int, fin: bool = True, mask: bytes = b"\0\0\0\0") -> bytes:
    """A client frame's header (masked, as a client must) announcing ``length`` bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, length)
    return head + mask


def mask_payload(payload: bytes, mask: bytes) -> bytes:
    if mask == b"\0\0\0\0":
        return payload
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    return frame_header(opcode, len(payload), mask=mask) + mask_payload(payload, mask)


class RawClient:
    """One WebSocket connection on a bare socket (blocking, with timeouts)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    # ----------------------------------------------------------- handshake

    def handshake(self, token: str) -> None:
        """Send the upgrade request and read the server's 101 answer."""
        self.sock.sendall(upgrade_request(self.host, self.port, token))
        head = self._read_until(b"\r\n\r\n", limit=16384)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"handshake refused: {head[:300]!r}")

    def _read_until(self, marker: bytes, limit: int) -> bytes:
        while marker not in self._buf:
            if len(self._buf) > limit:
                raise ConnectionError(f"no {marker!r} within {limit} bytes")
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}: {self._buf[:300]!r}")
            self._buf += chunk
        head, self._buf = self._buf.split(marker, 1)
        return head

    # -------------------------------------------------------------- frames

    def send_binary(self, payload: bytes) -> None:
        self.sock.sendall(encode_frame(OP_BINARY, payload))

    def send_message(self, message: dict) -> None:
        import msgpack  # only the clients that speak messages need it

        self.send_binary(msgpack.packb(message, use_bin_type=True))

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def recv_frame(self) -> Tuple[int, bytes]:
        """The next frame from the server (unmasked, as a server sends): (opcode, payload)."""
        b0, b1 = self._read_exact(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if b1 & 0x80:
            raise ConnectionError("the server masked a frame")
        return b0 & 0x0F, self._read_exact(length)

    def recv_message(self, deadline: Optional[float] = None) -> dict:
        """The next binary message (answering pings on the way), unpacked."""
        import msgpack

        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("no message before the deadline")
            opcode, payload = self.recv_frame()
            if opcode == OP_PING:
                self.sock.sendall(encode_frame(OP_PONG, payload))
            elif opcode == OP_BINARY:
                return msgpack.unpackb(payload, raw=False, strict_map_key=False)
            elif opcode == OP_CLOSE:
                raise ConnectionError(f"the server closed: {payload!r}")

    def call(self, message: dict) -> dict:
        self.send_message(message)
        reply = self.recv_message(time.monotonic() + 60)
        if reply.get("type") != "success":
            raise RuntimeError(f"{message['type']} failed: {reply}")
        return reply

    # -------------------------------------------------------------- ending

    def abort(self) -> None:
        """Close abruptly: a TCP reset, no close frame, no FIN handshake."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.sock.close()

    def close(self) -> None:
        self.sock.close()
