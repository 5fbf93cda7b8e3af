"""The node service <-> resource monitor protocol: newline-delimited JSON over pipes.

Service -> monitor (commands):
    {"op": "online", "resource": R, "type": T, "props": {...}, "env": {...}, "timing": {...}}
    {"op": "offline", "resource": R}    {"op": "terminate", "resource": R}
    {"op": "shutdown"}                  {"op": "ping", "id": ID}
    {"op": "lease", "valid_for": SECONDS}   fencing: once sent, resources run only while renewed
Monitor -> service (events):
    {"event": "hello", "pid": PID}      {"event": "pong", "id": ID}
    {"event": "state", "resource": R, "state": S, "pid": P, "pgid": G, "error": E, "details": {...}}
    {"event": "error", "message": M}

A bad line is answered with an error event and dropped; it never stops the monitor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_LINE = 1024 * 1024  # bytes per line, newline included

ONLINE_PENDING = "online-pending"
ONLINE = "online"
OFFLINE_PENDING = "offline-pending"
OFFLINE = "offline"
FAILED = "failed"
STATES = (ONLINE_PENDING, ONLINE, OFFLINE_PENDING, OFFLINE, FAILED)

OPS = ("online", "offline", "terminate", "shutdown", "ping", "lease")


class ProtocolError(ValueError):
    """A command line that cannot be obeyed; the message is one line for the error event.
    `resource` names the resource of an online that was refused, so it can be failed."""

    def __init__(self, message: str, resource: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource


@dataclass(frozen=True)
class Timing:
    """MSCS defaults: PendingTimeout 180 s, LooksAlive every 5 s, IsAlive every 60 s."""

    pending_timeout: float = 180.0
    looks_alive_interval: float = 5.0
    is_alive_interval: float = 60.0

    @classmethod
    def from_dict(cls, raw: Any) -> Timing:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ProtocolError("timing must be an object")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ProtocolError(f"unknown timing field {sorted(unknown)[0]!r}")
        values = {}
        for key, value in raw.items():
            if value is None:  # not set: the MSCS default
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ProtocolError(f"timing.{key} must be a number of seconds")
            if not (value > 0 and math.isfinite(value)):
                raise ProtocolError(f"timing.{key} must be positive, not {value}")
            values[key] = float(value)
        return cls(**values)


@dataclass(frozen=True)
class Command:
    op: str
    resource: str | None = None
    type: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    id: Any = None
    valid_for: float | None = None


def parse_command(line: bytes | str) -> Command:
    """Parse and validate one command line; raise ProtocolError saying what is wrong."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("a command must be a JSON object with an 'op'")
    op = msg.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    if op == "ping":
        return Command(op=op, id=msg.get("id"))
    if op == "shutdown":
        return Command(op=op)
    if op == "lease":
        valid_for = msg.get("valid_for")
        if (isinstance(valid_for, bool) or not isinstance(valid_for, int | float)
                or not (valid_for > 0 and math.isfinite(valid_for))):
            raise ProtocolError("lease: 'valid_for' must be a positive number of seconds")
        return Command(op=op, valid_for=float(valid_for))
    resource = msg.get("resource")
    if not isinstance(resource, str) or not resource:
        raise ProtocolError(f"{op}: 'resource' must be a non-empty string")
    if op != "online":
        return Command(op=op, resource=resource)
    rtype = msg.get("type")
    if not isinstance(rtype, str) or not rtype:
        raise ProtocolError(f"online {resource}: 'type' must be a non-empty string", resource)
    props = msg.get("props", {})
    if not isinstance(props, dict):
        raise ProtocolError(f"online {resource}: 'props' must be an object", resource)
    env = msg.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ProtocolError(f"online {resource}: 'env' must be an object of strings", resource)
    try:
        timing = Timing.from_dict(msg.get("timing"))
    except ProtocolError as exc:
        raise ProtocolError(f"online {resource}: {exc}", resource) from None
    return Command(op=op, resource=resource, type=rtype, props=props, env=env, timing=timing)


def encode(message: dict[str, Any]) -> bytes:
    """One line of compact JSON; anything not serialisable is turned into a string."""
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def state_event(resource: str, state: str, *, pid: int | None = None, pgid: int | None = None,
                error: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": "state", "resource": resource, "state": state, "pid": pid, "pgid": pgid,
            "error": error, "details": details or {}}


def error_event(message: str) -> dict[str, Any]:
    return {"event": "error", "message": message}


class LineSplitter:
    """Cut a byte stream into lines of at most `limit` bytes.

    An overlong line is reported once (as a ProtocolError item) and skipped up to its newline,
    so one runaway writer cannot make the reader buffer without bound.
    """

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> Iterator[bytes | ProtocolError]:
        self._buf += data
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) >= self._limit:
                    if not self._skipping:
                        yield ProtocolError(f"line longer than {self._limit} bytes; dropped")
                    self._skipping = True
                    self._buf.clear()
                return
            line = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) + 1 > self._limit:
                yield ProtocolError(f"line longer than {self._limit} bytes; dropped")
                continue
            if line.strip():
                yield line
