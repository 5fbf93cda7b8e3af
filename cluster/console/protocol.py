"""The console wire protocol: length-prefixed frames with a size limit, and an HMAC challenge.

A frame is one type byte, a 4-byte big-endian length and the payload. A peer that sends an
unknown type, a frame over ``MAX_FRAME`` or garbage is disconnected; it never disturbs the app or
the other clients. Authentication: the server sends a random nonce; the client answers with
HMAC-SHA256(cluster secret, nonce | resource name), so the secret never crosses the wire and an
answer cannot be replayed for another session or another console.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

HEADER = struct.Struct(">BI")
MAX_FRAME = 256 * 1024
NONCE_BYTES = 32


class Kind(IntEnum):
    CHALLENGE = 0x01  # server -> client: nonce
    AUTH = 0x02  # client -> server: JSON {"resource", "mac", "rows", "cols"}
    WELCOME = 0x03  # server -> client: JSON {"resource", "node", "pid"}
    DENY = 0x04  # server -> client: reason, then close
    OUTPUT = 0x10  # server -> client: terminal bytes
    INPUT = 0x11  # client -> server: keystrokes
    RESIZE = 0x12  # client -> server: JSON {"rows", "cols"}
    PING = 0x20
    PONG = 0x21
    EXIT = 0x30  # server -> client: the app's console closed (JSON {"reason"})


class ProtocolError(Exception):
    """The peer broke the protocol; close the connection."""


@dataclass(frozen=True)
class Frame:
    kind: Kind
    payload: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{self.kind.name} frame is not JSON") from exc
        if not isinstance(value, dict):
            raise ProtocolError(f"{self.kind.name} frame is not a JSON object")
        return value


def encode(kind: Kind, payload: bytes | dict[str, Any] = b"") -> bytes:
    data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    if len(data) > MAX_FRAME:
        raise ValueError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(kind, len(data)) + data


class FrameReader:
    """Incremental decoder: feed bytes, get whole frames; raises ProtocolError on garbage."""

    def __init__(self, allowed: frozenset[Kind] | None = None) -> None:
        self._buffer = bytearray()
        self._allowed = allowed

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER.size:
            kind_byte, length = HEADER.unpack_from(self._buffer)
            try:
                kind = Kind(kind_byte)
            except ValueError as exc:
                raise ProtocolError(f"unknown frame type 0x{kind_byte:02x}") from exc
            if self._allowed is not None and kind not in self._allowed:
                raise ProtocolError(f"unexpected {kind.name} frame")
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes exceeds the {MAX_FRAME} limit")
            if len(self._buffer) < HEADER.size + length:
                break
            payload = bytes(self._buffer[HEADER.size:HEADER.size + length])
            del self._buffer[:HEADER.size + length]
            frames.append(Frame(kind, payload))
        return frames


def recv_frame(sock: socket.socket, reader: FrameReader, pending: list[Frame]) -> Frame | None:
    """Blocking read of the next frame (None on EOF); ``pending`` holds frames read ahead."""
    while not pending:
        data = sock.recv(65536)
        if not data:
            return None
        pending.extend(reader.feed(data))
    return pending.pop(0)


def mac(secret: bytes, nonce: bytes, resource: str) -> str:
    return hmac.new(secret, nonce + b"|" + resource.encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes, nonce: bytes, resource: str, answer: object) -> bool:
    return isinstance(answer, str) and hmac.compare_digest(mac(secret, nonce, resource), answer)


# Textual asks the terminal whether it supports in-band resize (DEC mode 2048); a client
# terminal that says yes makes the app ignore pty resizes, which the relay needs for redraws.
IN_BAND_RESIZE_QUERY = b"\x1b[?2048$p"


class QueryFilter:
    """Removes the in-band resize query from a byte stream, even split across chunks."""

    def __init__(self, pattern: bytes = IN_BAND_RESIZE_QUERY) -> None:
        self._pattern = pattern
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        data = (self._held + data).replace(self._pattern, b"")
        self._held = b""
        for size in range(min(len(self._pattern) - 1, len(data)), 0, -1):
            if self._pattern.startswith(data[-size:]):
                self._held = data[-size:]
                return data[:-size]
        return data
