"""The console host: relays one console app's pty to authenticated TCP clients.

It lives in the resource monitor, the process that owns the app's pty master. Every attached
client sees the app and may type (like a shared tmux session); the pty takes the size of the
client that attached or resized last. Each client has a bounded output queue: a slow or dead
client is dropped, and the app never waits for anyone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import re
import secrets
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cluster.console.protocol import (
    MAX_FRAME,
    NONCE_BYTES,
    FrameReader,
    Kind,
    ProtocolError,
    QueryFilter,
    encode,
    recv_frame,
    verify,
)

logger = logging.getLogger(__name__)

CLIENT_QUEUE_BYTES = 2 * 1024 * 1024  # past this much unsent output, the client is dropped
AUTH_TIMEOUT = 5.0
IDLE_TIMEOUT = 15.0  # clients ping every second; silence this long means a dead client
SEND_TIMEOUT = 5.0
REDRAW_GAP = 0.03  # Textual needs >= 20 ms between two sizes to see a change (NOTES.md)
# A busy app may take both signals of the toggle as one and repaint nothing (the size it then
# reads is the old one): if no screenful comes within REDRAW_CHECK, toggle again, slower.
REDRAW_CHECK = 0.5
# A repaint is a screenful: the app moves the cursor to every row of the screen. Counting
# bytes is not enough: a footer refresh is hundreds of bytes too, and an app that is still
# starting sends partial updates to many rows that a newly attached client cannot use.
CURSOR_TO_ROW = re.compile(rb"\x1b\[(\d+);\d+H")
REDRAW_TRIES = 5
STARTUP_REPAINTS = (1.5, 3.0, 6.0)  # s after the app started: repaint for early clients
MAX_CLIENTS = 32


@dataclass(frozen=True)
class ConsoleSettings:
    """Where a node serves consoles, and the cluster secret clients must prove."""

    address: str
    secret: bytes


class ConsoleServer:
    def __init__(self, resource: str, node: str, settings: ConsoleSettings,
                 master_fd: Callable[[], int | None], pid: Callable[[], int | None]) -> None:
        self.resource = resource
        self.node = node
        self.settings = settings
        self._master_fd = master_fd
        self._pid = pid
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._write_lock = threading.Lock()
        self._size: tuple[int, int] | None = None  # the clients' size (not the toggle's)
        self._painted = threading.Condition()  # notified as output arrives
        self._rows_painted: set[int] = set()  # rows the app wrote to since the last toggle
        self._filter = QueryFilter()
        self._closed = False
        self._started = time.monotonic()
        family = socket.AF_INET6 if ":" in settings.address else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((settings.address, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name=f"console-{resource}",
                         daemon=True).start()
        logger.info("%s: console on %s:%d", resource, settings.address, self.port)

    # --- output from the app -----------------------------------------------------------------

    def on_output(self, data: bytes) -> None:
        """Called by the pty drain thread: queue for every client, never block."""
        data = self._filter.feed(data)
        if not data:
            return
        with self._painted:
            self._rows_painted.update(int(row) for row in CURSOR_TO_ROW.findall(data)[:1000])
            self._painted.notify_all()
        with self._lock:
            clients = list(self._clients)
        for start in range(0, len(data), MAX_FRAME):
            frame = encode(Kind.OUTPUT, data[start:start + MAX_FRAME])
            for client in clients:
                client.offer(frame)

    def close(self, reason: str = "the app stopped") -> None:
        with self._lock:
            self._closed = True
            clients = list(self._clients)
        with self._painted:
            self._painted.notify_all()
        # close() alone does not wake a thread blocked in accept(): the port would keep
        # listening (and accepting) after the app is gone. shutdown() does wake it.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        for client in clients:
            client.offer(encode(Kind.EXIT, {"reason": reason}))
            client.finish()

    # --- clients -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            with self._lock:
                full = len(self._clients) >= MAX_CLIENTS or self._closed
            if full:
                with contextlib.suppress(OSError):
                    sock.sendall(encode(Kind.DENY, b"too many clients"))
                sock.close()
                continue
            threading.Thread(target=self._serve, args=(sock, peer), daemon=True,
                             name=f"console-client-{peer}").start()

    def _serve(self, sock: socket.socket, peer: object) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader()
        pending: list = []
        try:
            auth = self._authenticate(sock, peer, reader, pending)
        except (ProtocolError, OSError) as exc:
            logger.warning("%s: console client %s refused: %s", self.resource, peer, exc)
            auth = None
        if auth is None:
            with contextlib.suppress(OSError):
                sock.close()
            return
        client = _Client(sock, self.resource, peer)
        sock.settimeout(IDLE_TIMEOUT)
        client.offer(encode(Kind.WELCOME, {"resource": self.resource, "node": self.node,
                                           "pid": self._pid()}))
        with self._lock:
            self._clients.add(client)
        logger.info("%s: console client %s attached", self.resource, peer)
        try:
            size = self._valid_size(auth.get("rows"), auth.get("cols"))
            threading.Thread(target=self._redraw, args=(size,), daemon=True,
                             name=f"console-redraw-{peer}").start()
            self._read_loop(client, reader, pending)
        except (ProtocolError, OSError, ValueError) as exc:
            logger.warning("%s: console client %s dropped: %s", self.resource, peer, exc)
        finally:
            with self._lock:
                self._clients.discard(client)
            client.finish()
            logger.info("%s: console client %s detached", self.resource, peer)

    def _authenticate(self, sock: socket.socket, peer: object, reader: FrameReader,
                      pending: list) -> dict | None:
        nonce = secrets.token_bytes(NONCE_BYTES)
        # One deadline for the whole handshake: a per-read timeout would let a peer that
        # trickles a byte at a time hold the connection (and this thread) forever.
        deadline = time.monotonic() + AUTH_TIMEOUT
        sock.settimeout(AUTH_TIMEOUT)
        sock.sendall(encode(Kind.CHALLENGE, nonce))
        while not pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError(f"no AUTH frame within {AUTH_TIMEOUT:g} s")
            sock.settimeout(remaining)
            data = sock.recv(65536)
            if not data:
                raise ProtocolError("no AUTH frame")
            pending.extend(reader.feed(data))
        frame = pending.pop(0)
        if frame.kind != Kind.AUTH:
            raise ProtocolError("no AUTH frame")
        auth = frame.json()
        if auth.get("resource") != self.resource or not verify(
                self.settings.secret, nonce, self.resource, auth.get("mac")):
            logger.warning("%s: console client %s refused: wrong or missing secret",
                           self.resource, peer)
            sock.sendall(encode(Kind.DENY, b"authentication failed: wrong cluster secret"))
            return None
        return auth

    def _read_loop(self, client: _Client, reader: FrameReader, pending: list) -> None:
        while not client.closed:
            frame = recv_frame(client.sock, reader, pending)
            if frame is None:
                return
            if frame.kind == Kind.INPUT:
                self._write_input(frame.payload)
            elif frame.kind == Kind.RESIZE:
                size = frame.json()
                self._resize(size.get("rows"), size.get("cols"))
            elif frame.kind == Kind.PING:
                client.offer(encode(Kind.PONG, frame.payload[:64]))
            elif frame.kind == Kind.PONG:
                continue
            else:
                raise ProtocolError(f"unexpected {frame.kind.name} frame from a client")

    def _write_input(self, data: bytes) -> None:
        fd = self._master_fd()
        if fd is None:
            return
        with self._write_lock:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]

    # --- size and redraw ---------------------------------------------------------------

    @staticmethod
    def _valid_size(rows: object, cols: object) -> tuple[int, int] | None:
        if isinstance(rows, int) and isinstance(cols, int) and 2 <= rows <= 1000 \
                and 2 <= cols <= 1000:
            return rows, cols
        return None

    def _apply_size(self, rows: int, cols: int) -> None:
        fd = self._master_fd()
        if fd is not None:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _set_size(self, rows: int, cols: int) -> None:
        self._apply_size(rows, cols)
        self._size = (rows, cols)

    def _resize(self, rows: object, cols: object) -> None:
        size = self._valid_size(rows, cols)
        if size is not None and size != self._size:
            self._set_size(*size)

    def _redraw(self, size: tuple[int, int] | None) -> None:
        """A new client needs the whole screen: a size change makes the app repaint it all.
        The same size repaints nothing, so pass through a different size first, and again
        (slower) if no screenful follows. Runs in its own thread: never delays input."""
        if size is not None:
            self._size = size
        gap = REDRAW_GAP
        try:
            for _ in range(REDRAW_TRIES):
                with self._painted:
                    self._rows_painted.clear()
                self._toggle(gap)
                with self._painted:
                    if self._painted.wait_for(self._repainted, REDRAW_CHECK):
                        break
                gap *= 3
            else:
                logger.info("%s: the app repainted nothing after %d size toggles",
                            self.resource, REDRAW_TRIES)
            self._settle()
        except OSError as exc:  # the pty went away with the app
            logger.debug("%s: redraw stopped: %s", self.resource, exc)

    def _settle(self) -> None:
        """A client that attached while the app was still starting may have seen a paint the
        app later took back (a start-up resize, a late first frame): repaint again once the
        app has had time to settle. Costs a few screenfuls, only in the app's first seconds."""
        for age in STARTUP_REPAINTS:
            wait = self._started + age - time.monotonic()
            if wait <= 0:
                continue
            with self._painted:
                if self._painted.wait_for(lambda: self._closed, wait):
                    return
            self._toggle(REDRAW_GAP)

    def _repainted(self) -> bool:
        rows = (self._size or (24, 80))[0]
        return self._closed or len(self._rows_painted) >= max(2, rows - 1)

    def _toggle(self, gap: float) -> None:
        with self._write_lock:
            rows, cols = self._size or (24, 80)
            self._apply_size(rows, max(2, cols - 1))
            time.sleep(gap)  # the app must see two distinct sizes (NOTES.md)
            rows, cols = self._size or (rows, cols)  # a client's resize meanwhile wins
            self._apply_size(rows, cols)
            self._size = (rows, cols)


class _Client:
    """One attached client: a bounded queue drained by its own writer thread."""

    def __init__(self, sock: socket.socket, resource: str, peer: object) -> None:
        self.sock = sock
        self.resource = resource
        self.peer = peer
        self.closed = False
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._queued = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._write_loop, daemon=True, name=f"console-tx-{peer}").start()

    def offer(self, frame: bytes) -> None:
        with self._lock:
            if self.closed:
                return
            if self._queued + len(frame) > CLIENT_QUEUE_BYTES:
                logger.warning("%s: console client %s is too slow; dropping it", self.resource,
                               self.peer)
                self._close_locked()
                # The writer may be blocked in sendall on a full socket: cut it off now
                # rather than after SEND_TIMEOUT, with megabytes still queued.
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                return
            self._queued += len(frame)
        self._queue.put(frame)

    def _write_loop(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                break
            with self._lock:
                self._queued -= len(frame)
            try:
                self.sock.settimeout(SEND_TIMEOUT)
                self.sock.sendall(frame)
            except OSError:
                self.finish()
                break
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def finish(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put(None)
