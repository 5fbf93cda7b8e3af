"""``hacluster attach NAME``: the window onto an interactive app, wherever it runs.

It finds the app's console in the store (the group's owner, its fencing epoch and the console
endpoint the owner published), authenticates with the cluster secret and relays the terminal in
raw mode. When the connection drops, or the store shows a new owner or epoch (a frozen node keeps
its sockets open), it shows a one-line banner, reconnects by itself once the app is online again,
gets a full redraw and says how long the outage lasted. ctrl+] detaches and leaves the app running.
The terminal is restored on every way out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from typing import Any

from cluster.console.protocol import FrameReader, Kind, ProtocolError, encode, mac, recv_frame
from cluster.model import NodeStatus
from shared_store import Store, StoreError

DETACH_KEY = b"\x1d"  # ctrl+]
KEEPALIVE = 1.0
DEAD_AFTER = 3.0  # no frame from the server for this long: the connection is dead
CONNECT_TIMEOUT = 2.0
# What an app in the alternate screen may leave on; undone when attach leaves.
RESET_TERMINAL = (b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l"
                  b"\x1b[?2004l\x1b[?1004l\x1b[?25h\x1b[?1049l\x1b[0m")


class AttachError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Endpoint:
    resource: str
    node: str
    address: str
    port: int
    owner_epoch: int


@dataclass
class Outage:
    started: float  # wall clock
    from_node: str | None
    ended: float | None = None
    to_node: str | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "from": self.from_node, "to": self.to_node,
                "duration": None if self.duration is None else round(self.duration, 3)}


def _value(store: Store, key: str) -> dict[str, Any]:
    record = store.get(key)
    return record.value if record is not None and isinstance(record.value, dict) else {}


def group_owner(store: Store, group: str) -> tuple[str | None, int, bool]:
    """(owner, owner epoch, whether the owner's lease is valid now)."""
    status = _value(store, f"status/groups/{group}")
    owner = status.get("owner")
    alive = False
    if owner:
        node = _value(store, f"status/nodes/{owner}")
        with contextlib.suppress(ValueError):
            alive = NodeStatus.from_record(owner, node).alive(time.time()) if node else False
    return owner, int(status.get("owner_epoch") or 0), alive


def find_console(store: Store, group: str) -> Endpoint | None:
    """The console of the group's interactive app, if it is online on the current owner."""
    owner, epoch, alive = group_owner(store, group)
    if not owner or not alive:
        return None
    for record in store.list("spec/resources"):
        spec = record.value if isinstance(record.value, dict) else {}
        if spec.get("group") != group:
            continue
        name = record.key.rsplit("/", 1)[-1]
        status = _value(store, f"status/resources/{name}")
        details = status.get("details") or {}
        port = details.get("console_port")
        if (status.get("state") == "online" and status.get("node") == owner
                and status.get("owner_epoch") == epoch and isinstance(port, int)):
            return Endpoint(name, owner, str(details.get("console_address") or "127.0.0.1"),
                            port, epoch)
    return None


def connect(endpoint: Endpoint, secret: bytes, rows: int, cols: int,
            timeout: float = CONNECT_TIMEOUT) -> tuple[socket.socket, FrameReader, list]:
    """Open and authenticate a console connection; AttachError(1) when refused."""
    sock = socket.create_connection((endpoint.address, endpoint.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader, pending = FrameReader(), []
    try:
        challenge = recv_frame(sock, reader, pending)
        if challenge is None or challenge.kind != Kind.CHALLENGE:
            raise ProtocolError("no challenge from the console host")
        sock.sendall(encode(Kind.AUTH, {"resource": endpoint.resource,
                                        "mac": mac(secret, challenge.payload, endpoint.resource),
                                        "rows": rows, "cols": cols}))
        reply = recv_frame(sock, reader, pending)
        if reply is None:
            raise ProtocolError("the console host closed the connection")
        if reply.kind == Kind.DENY:
            raise AttachError(f"console refused: {reply.payload.decode(errors='replace')}")
        if reply.kind != Kind.WELCOME:
            raise ProtocolError(f"unexpected {reply.kind.name} from the console host")
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    sock.setblocking(False)
    return sock, reader, pending


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        if rows and cols:
            return rows, cols
    except OSError:
        pass
    return 24, 80


@dataclass
class Attach:
    store: Store
    group: str
    stdin_fd: int = 0
    stdout_fd: int = 1
    outages: list[Outage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._secret = self.store.secret()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._resized = False
        self._stop = False
        self._pending_banner: str | None = None
        self._reconnecting: Outage | None = None  # reconnected, the app not yet on screen
        self._watch = self.store.watch("status")
        threading.Thread(target=self._watch_store, daemon=True, name="attach-watch").start()

    # --- the main loop ---------------------------------------------------------------------

    def run(self) -> int:
        saved = termios.tcgetattr(self.stdin_fd) if os.isatty(self.stdin_fd) else None
        old_handlers = {sig: signal.signal(sig, self._on_signal)
                        for sig in (signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP)}
        try:
            if saved is not None:
                tty.setraw(self.stdin_fd)
            return self._loop()
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            with contextlib.suppress(OSError):
                os.write(self.stdout_fd, RESET_TERMINAL + b"\r\n")
            if saved is not None:
                # After a hang-up the terminal is gone (EIO): there is nothing left to restore.
                with contextlib.suppress(termios.error, OSError):
                    termios.tcsetattr(self.stdin_fd, termios.TCSADRAIN, saved)
            self._watch.close()
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    def _loop(self) -> int:
        outage: Outage | None = None
        while True:
            endpoint = self._wait_for_console(outage)
            if endpoint is None:
                return 0  # detached while waiting
            rows, cols = terminal_size(self.stdout_fd)
            try:
                sock, reader, pending = connect(endpoint, self._secret, rows, cols)
            except (OSError, ProtocolError):
                outage = outage or Outage(time.time(), endpoint.node)
                self._banner(f"{self.group} is failing over — {endpoint.node} stopped "
                             "answering; waiting for its lease to expire…")
                if self._pause(0.2):
                    return 0  # ctrl+] or a signal while the dead owner's lease runs out
                continue
            # The outage ends when the app is on screen again (its first output), not at connect:
            # that is what the person waited for.
            self._reconnecting = outage
            if outage is not None:
                outage.to_node = endpoint.node
            self._pending_banner = None
            reason = self._relay(sock, reader, pending, endpoint)
            if reason == "detach":
                if self._reconnecting is not None:  # left before the app was back on screen
                    self.outages.append(self._reconnecting)
                return 0
            outage = self._reconnecting or Outage(time.time(), endpoint.node)
            self._reconnecting = None
            self._banner(self._outage_text(endpoint.node))

    def _end_outage(self) -> None:
        outage, self._reconnecting = self._reconnecting, None
        if outage is None:
            return
        outage.ended = time.time()
        self.outages.append(outage)
        self._pending_banner = (f"{self.group} is back on {outage.to_node} after "
                                f"{outage.duration:.2f} s")

    def _relay(self, sock: socket.socket, reader: FrameReader, pending: list,
               endpoint: Endpoint) -> str:
        last_heard = time.monotonic()
        next_ping = last_heard + KEEPALIVE
        shown_banner_at: float | None = None
        with selectors.DefaultSelector() as sel, contextlib.closing(sock):
            sel.register(self.stdin_fd, selectors.EVENT_READ, "stdin")
            sel.register(sock, selectors.EVENT_READ, "sock")
            sel.register(self._wake_r, selectors.EVENT_READ, "wake")
            frames = list(pending)
            while True:
                for frame in frames:
                    last_heard = time.monotonic()
                    if frame.kind == Kind.OUTPUT:
                        self._write(frame.payload)
                        if self._reconnecting is not None:
                            self._end_outage()
                        if self._pending_banner and shown_banner_at is None:
                            shown_banner_at = time.monotonic()
                    elif frame.kind == Kind.EXIT:
                        return "exit"
                if shown_banner_at is not None and time.monotonic() - shown_banner_at > 0.3:
                    self._banner(self._pending_banner or "")
                    self._pending_banner, shown_banner_at = None, None
                frames = []
                now = time.monotonic()
                if now - last_heard > DEAD_AFTER:
                    return "silent"
                if now >= next_ping:
                    self._send(sock, encode(Kind.PING, b"k"))
                    next_ping = now + KEEPALIVE
                timeout = min(next_ping, last_heard + DEAD_AFTER) - now
                if shown_banner_at is not None:
                    timeout = min(timeout, 0.1)
                for key, _ in sel.select(max(0.0, timeout)):
                    if key.data == "stdin":
                        data = self._read_stdin()
                        if data is None:
                            continue
                        if not data or DETACH_KEY in data:
                            before = data.split(DETACH_KEY, 1)[0] if data else b""
                            if before:
                                self._send(sock, encode(Kind.INPUT, before))
                            return "detach"
                        self._send(sock, encode(Kind.INPUT, data))
                    elif key.data == "sock":
                        try:
                            data = sock.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError:
                            return "error"
                        if not data:
                            return "closed"
                        try:
                            frames.extend(reader.feed(data))
                        except ProtocolError:
                            return "garbage"
                    else:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 512)
                        if self._stop:
                            return "detach"
                        if self._resized:
                            self._resized = False
                            rows, cols = terminal_size(self.stdout_fd)
                            self._send(sock, encode(Kind.RESIZE, {"rows": rows, "cols": cols}))
                        owner, epoch, alive = group_owner(self.store, self.group)
                        if owner != endpoint.node or epoch != endpoint.owner_epoch or not alive:
                            return "owner changed"

    # --- waiting for the app -------------------------------------------------------------------

    def _wait_for_console(self, outage: Outage | None) -> Endpoint | None:
        last_text = ""
        while True:
            try:
                endpoint = find_console(self.store, self.group)
            except StoreError:
                endpoint = None
            if endpoint is not None:
                return endpoint
            text = self._waiting_text(outage)
            if text != last_text:
                self._banner(text)
                last_text = text
            if self._pause(0.5):
                return None

    def _pause(self, timeout: float) -> bool:
        """Wait for a store change, a key or the timeout; True if the user detached."""
        with selectors.DefaultSelector() as sel:
            sel.register(self.stdin_fd, selectors.EVENT_READ, "stdin")
            sel.register(self._wake_r, selectors.EVENT_READ, "wake")
            for key, _ in sel.select(timeout):
                if key.data == "stdin":
                    data = self._read_stdin()
                    if data is not None and (not data or DETACH_KEY in data):
                        return True
                else:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 512)
        return self._stop

    def _outage_text(self, node: str) -> str:
        owner, _, alive = group_owner(self.store, self.group)
        if owner == node and not alive:
            return f"{self.group} is failing over — {node} stopped answering…"
        if owner and owner != node:
            if self._node_alive(node):
                return f"{self.group} is moving to {owner}…"
            return f"{self.group} is failing over — {owner} is taking over…"
        if owner == node and alive:
            return f"{self.group} is restarting on {node}…"
        return f"{self.group}: connection to {node} lost — reconnecting…"

    def _node_alive(self, node: str) -> bool:
        value = _value(self.store, f"status/nodes/{node}")
        with contextlib.suppress(ValueError):
            return bool(value) and NodeStatus.from_record(node, value).alive(time.time())
        return False

    def _waiting_text(self, outage: Outage | None) -> str:
        owner, _, alive = group_owner(self.store, self.group)
        status = _value(self.store, f"status/groups/{self.group}")
        if outage is not None:
            if owner and owner != outage.from_node and alive:
                return f"{self.group} is failing over — {owner} is taking over…"
            if owner == outage.from_node and alive:
                return f"{self.group} is restarting on {owner}…"
            return f"{self.group} is failing over — waiting for a new owner…"
        state = status.get("state", "offline")
        return f"{self.group} is {state} — waiting for it to come online (ctrl+] leaves)"

    # --- terminal ---------------------------------------------------------------------------

    def _read_stdin(self) -> bytes | None:
        """Keys typed; b"" when the terminal is gone (EOF, or EIO after a hang-up); None when
        there was nothing to read after all."""
        try:
            return os.read(self.stdin_fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _banner(self, text: str) -> None:
        rows, cols = terminal_size(self.stdout_fd)
        line = f" {text} "[:cols].ljust(cols)
        self._write(b"\x1b7\x1b[%d;1H\x1b[0;7m%s\x1b[0m\x1b8" % (rows, line.encode()))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.stdout_fd, view):]
            except BlockingIOError:
                selectors.DefaultSelector().select(0.01)

    @staticmethod
    def _send(sock: socket.socket, frame: bytes) -> None:
        with contextlib.suppress(OSError):
            sock.setblocking(True)
            sock.settimeout(2.0)
            sock.sendall(frame)
            sock.setblocking(False)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGWINCH:
            self._resized = True
        else:
            self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _watch_store(self) -> None:
        while not self._watch.closed:
            try:
                changes = self._watch.wait(1.0)
            except StoreError:
                return
            if any(c.key in (f"status/groups/{self.group}",) or c.key.startswith(
                    ("status/nodes/", "status/resources/")) for c in changes):
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"w")


def attach(store: Store, group: str, as_json: bool = False) -> int:
    session = Attach(store, group)
    code = session.run()
    if as_json:
        sys.stdout.write(json.dumps({"group": group,
                                     "outages": [o.to_json() for o in session.outages]}) + "\n")
    else:
        for outage in session.outages:
            took = "not over" if outage.duration is None else f"{outage.duration:.2f} s"
            sys.stderr.write(f"outage: {outage.from_node} -> {outage.to_node}: {took}\n")
    return code
