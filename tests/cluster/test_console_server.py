"""The console host with a real app in a real pty (generic-app, console = true) and real TCP
clients on loopback: authentication, hostile peers, several clients, slow clients, resizing.

Each test's app is terminated (process group) by the ``console_app`` fixture, pass or fail.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cluster.console import server as console_server
from cluster.console.attach import AttachError, Endpoint, connect
from cluster.console.protocol import (
    HEADER,
    IN_BAND_RESIZE_QUERY,
    MAX_FRAME,
    FrameReader,
    Kind,
    ProtocolError,
    encode,
    mac,
    recv_frame,
)
from cluster.console.server import ConsoleSettings
from cluster.resources.base import ResourceContext
from cluster.resources.generic_app import GenericApp
from tests.helpers.procs import ProcessTracker, pid_alive
from tests.helpers.wait import wait_until

RESOURCE = "console-app"

# An app that talks about what it sees: its size on SIGWINCH, each line it reads, and on request
# the in-band resize query split across two writes (as a pty read may split it).
ECHO_APP = r"""
import os, signal, sys, time
def size(*_):
    rows, cols = os.get_terminal_size(1).lines, os.get_terminal_size(1).columns
    sys.stdout.write(f"size {rows}x{cols}\n"); sys.stdout.flush()
signal.signal(signal.SIGWINCH, size)
print("ready", flush=True)
for line in sys.stdin:
    line = line.strip()
    if line == "query":
        sys.stdout.write("before-query:\x1b[?20"); sys.stdout.flush()
        time.sleep(0.05)
        sys.stdout.write("48$p:after-query\n"); sys.stdout.flush()
    elif line == "quit":
        print("bye", flush=True)
        sys.exit(3)
    else:
        print(f"got [{line}]", flush=True)
"""

# Like Textual: repaints (a screenful) only when its size really changed, and only when it gets
# round to its signals. It starts busy, with SIGWINCH blocked: the two signals of an attach's
# size toggle then arrive as one, by which time the size is back to what it was.
BUSY_PAINTER_APP = r"""
import os, signal, sys, time
last = os.get_terminal_size(1)
def winch(*_):
    global last
    size = os.get_terminal_size(1)
    if size != last:
        last = size
        sys.stdout.write(f"repaint {size.lines}x{size.columns}\n" + "." * 2000 + "\n")
        sys.stdout.flush()
signal.signal(signal.SIGWINCH, winch)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGWINCH})
print("ready", flush=True)
time.sleep(0.4)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGWINCH})
while True:
    time.sleep(1)
"""

# About 10 MB/s, numbered so that a reader can tell it keeps flowing: far more than a client
# that never reads can absorb, well within what a reading client keeps up with on a busy machine.
FLOOD_APP = r"""
import sys, time
i = 0
while True:
    i += 1
    sys.stdout.write(f"<{i}>" + "x" * 4000 + "\n")
    if i % 25 == 0:
        sys.stdout.flush()
        time.sleep(0.01)
"""


class ConsoleApp:
    def __init__(self, app: GenericApp, secret: bytes) -> None:
        self.app = app
        self.secret = secret
        assert app.console is not None
        self.port = app.console.port
        self.endpoint = Endpoint(RESOURCE, "n1", "127.0.0.1", self.port, 1)


@pytest.fixture
def console_app(tmp_path: Path) -> Iterator[Callable[[str], ConsoleApp]]:
    apps: list[GenericApp] = []
    with ProcessTracker() as tracker:
        def start(source: str) -> ConsoleApp:
            script = tmp_path / f"app{len(apps)}.py"
            script.write_text(source)
            secret = secrets.token_bytes(32)
            ctx = ResourceContext(node="n1", local_dir=tmp_path, data_dir=tmp_path,
                                  console=ConsoleSettings("127.0.0.1", secret))
            app = GenericApp(RESOURCE, {"command": f"{sys.executable} {script}",
                                        "console": True}, ctx)
            apps.append(app)
            app.online()
            tracker.track_group(app.pgid())
            if "ready" in source:  # no client sees output from before it attached: wait here
                wait_until(lambda: b"ready" in app.output.snapshot(), timeout=10,
                           message="the app to start")
            return ConsoleApp(app, secret)
        try:
            yield start
        finally:
            for app in apps:
                app.terminate()
                if app.console is not None:
                    app.console.close()


class Client:
    """An authenticated console client (the real handshake of ``hacluster attach``) that
    collects output in a thread and pings like attach does."""

    def __init__(self, console: ConsoleApp, rows: int = 24, cols: int = 80) -> None:
        self.sock, self.reader, pending = connect(console.endpoint, console.secret, rows, cols)
        self.output = bytearray()
        self.kinds: list[Kind] = [f.kind for f in pending]
        self.closed = threading.Event()
        self._lock = threading.Lock()
        for frame in pending:
            self._take(frame.kind, frame.payload)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _take(self, kind: Kind, payload: bytes) -> None:
        with self._lock:
            self.kinds.append(kind)
            if kind == Kind.OUTPUT:
                self.output += payload

    def _run(self) -> None:
        next_ping = time.monotonic()
        try:
            while not self.closed.is_set():
                if time.monotonic() >= next_ping:
                    self.send(encode(Kind.PING, b"p"))
                    next_ping = time.monotonic() + 1.0
                readable, _, _ = select.select([self.sock], [], [], 0.1)
                if not readable:
                    continue
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                for frame in self.reader.feed(data):
                    self._take(frame.kind, frame.payload)
        except (OSError, ProtocolError):
            pass
        self.closed.set()

    def send(self, frame: bytes) -> None:
        self.sock.setblocking(True)
        try:
            self.sock.sendall(frame)
        finally:
            self.sock.setblocking(False)

    def type(self, text: str) -> None:
        self.send(encode(Kind.INPUT, text.encode()))

    def text(self) -> str:
        with self._lock:
            return self.output.decode(errors="replace")

    def wait_for(self, text: str, timeout: float = 5.0) -> str:
        return wait_until(lambda: text in self.text() and self.text(), timeout=timeout,
                          message=f"{text!r} from the console")

    def close(self) -> None:
        self.closed.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    opened: list[Client] = []

    def open_client(console: ConsoleApp, rows: int = 24, cols: int = 80) -> Client:
        client = Client(console, rows, cols)
        opened.append(client)
        return client
    try:
        yield open_client
    finally:
        for client in opened:
            client.close()


def raw_connection(console: ConsoleApp) -> tuple[socket.socket, bytes]:
    """A TCP connection that has read the challenge and done nothing else; (socket, nonce)."""
    sock = socket.create_connection(("127.0.0.1", console.port), timeout=5)
    frame = recv_frame(sock, FrameReader(), [])
    assert frame is not None and frame.kind == Kind.CHALLENGE
    return sock, frame.payload


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until the server closes the connection; everything it sent. Fails on a hang."""
    sock.settimeout(timeout)
    received = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        if not data:
            return bytes(received)
        received += data
    raise AssertionError(f"the server kept the connection open for {timeout} s")


def assert_console_works(console: ConsoleApp, client: Client, word: str) -> None:
    """The app is alive and an authenticated client can still type and read."""
    assert console.app.looks_alive()
    client.type(f"{word}\r")
    client.wait_for(f"got [{word}]")


# --- authentication --------------------------------------------------------------------------


def test_an_authenticated_client_sees_the_app_and_types_into_it(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    client = clients(console)
    client.wait_for("size 24x80")  # the attach redraw reached the app
    assert_console_works(console, client, "hello")


def test_a_wrong_secret_is_refused_and_its_input_never_reaches_the_app(console_app,
                                                                        clients) -> None:
    console = console_app(ECHO_APP)
    witness = clients(console)
    sock, nonce = raw_connection(console)
    sock.sendall(encode(Kind.AUTH, {"resource": RESOURCE, "rows": 24, "cols": 80,
                                    "mac": mac(secrets.token_bytes(32), nonce, RESOURCE)}))
    with contextlib.suppress(OSError):
        sock.sendall(encode(Kind.INPUT, b"intruder\r"))
    reply = closed_by_server(sock)
    frames = FrameReader().feed(reply)
    assert [f.kind for f in frames] == [Kind.DENY]
    assert b"wrong cluster secret" in frames[0].payload
    assert_console_works(console, witness, "after-intruder")
    assert "intruder" not in witness.text().replace("after-intruder", "")


def test_attach_reports_a_wrong_secret_as_an_attach_error(console_app) -> None:
    console = console_app(ECHO_APP)
    with pytest.raises(AttachError, match="console refused: authentication failed") as info:
        connect(console.endpoint, secrets.token_bytes(32), 24, 80)
    assert info.value.code == 1


def test_an_answer_for_another_console_is_refused(console_app) -> None:
    console = console_app(ECHO_APP)
    sock, nonce = raw_connection(console)
    sock.sendall(encode(Kind.AUTH, {"resource": "other-app",
                                    "mac": mac(console.secret, nonce, "other-app")}))
    frames = FrameReader().feed(closed_by_server(sock))
    assert [f.kind for f in frames] == [Kind.DENY]


def test_input_before_authentication_is_refused_and_never_typed(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    witness = clients(console)
    sock, _ = raw_connection(console)
    sock.sendall(encode(Kind.INPUT, b"unauthenticated\r"))
    assert closed_by_server(sock) == b""
    assert_console_works(console, witness, "later")
    assert "unauthenticated" not in witness.text()


def test_a_silent_connection_is_dropped_after_the_auth_timeout(console_app, monkeypatch) -> None:
    monkeypatch.setattr(console_server, "AUTH_TIMEOUT", 0.3)
    console = console_app(ECHO_APP)
    sock, _ = raw_connection(console)
    started = time.monotonic()
    assert closed_by_server(sock, timeout=5) == b""
    assert time.monotonic() - started < 4  # generous: catches a missing timeout


def test_a_handshake_trickled_byte_by_byte_still_times_out(console_app, monkeypatch) -> None:
    """The auth timeout bounds the whole handshake, not each read: a peer sending one byte at
    a time must not hold a connection (and a thread of the console host) forever."""
    monkeypatch.setattr(console_server, "AUTH_TIMEOUT", 0.5)
    console = console_app(ECHO_APP)
    sock, _ = raw_connection(console)
    trickle = encode(Kind.AUTH, {"resource": RESOURCE, "mac": "0" * 64, "pad": "x" * 200})
    started = time.monotonic()
    cut_off = False
    for byte in trickle[:-1]:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            cut_off = True
            break
        readable, _, _ = select.select([sock], [], [], 0.1)
        if readable and not sock.recv(1):
            cut_off = True
            break
        if time.monotonic() - started > 8:
            break
    assert cut_off, "the console host waited on a trickled handshake for 8 s"


def test_clients_past_the_limit_are_denied(console_app, clients, monkeypatch) -> None:
    monkeypatch.setattr(console_server, "MAX_CLIENTS", 2)
    console = console_app(ECHO_APP)
    first, second = clients(console), clients(console)
    with pytest.raises((AttachError, ProtocolError, OSError)):
        connect(console.endpoint, console.secret, 24, 80)
    assert_console_works(console, first, "one")
    second.wait_for("got [one]")


# --- hostile and broken peers --------------------------------------------------------------


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: console\r\n\r\n",
    b"\x00" * 64,
    HEADER.pack(0x7F, 3) + b"abc",
    struct.pack(">BI", Kind.AUTH, MAX_FRAME + 1),
    struct.pack(">BI", Kind.AUTH, 0xFFFFFFFF),
    encode(Kind.AUTH, b"{not json"),
    encode(Kind.AUTH, b"[1, 2, 3]"),
], ids=["http", "zeros", "unknown-type", "oversized", "4GB", "bad-json", "json-list"])
def test_garbage_before_auth_is_cut_off_and_disturbs_nobody(console_app, clients,
                                                             garbage: bytes) -> None:
    console = console_app(ECHO_APP)
    witness = clients(console)
    sock, _ = raw_connection(console)
    sock.sendall(garbage)
    reply = closed_by_server(sock)
    assert all(f.kind == Kind.DENY for f in FrameReader().feed(reply))
    assert_console_works(console, witness, "still-here")


@pytest.mark.parametrize("garbage", [
    HEADER.pack(0x7F, 0),
    struct.pack(">BI", Kind.INPUT, MAX_FRAME + 1) + b"x" * 1000,
    encode(Kind.RESIZE, b"not json"),
    encode(Kind.AUTH, {"resource": RESOURCE}),  # AUTH again, after authentication
    encode(Kind.OUTPUT, b"a client may not write output"),
], ids=["unknown-type", "oversized", "bad-resize", "second-auth", "output-frame"])
def test_garbage_from_an_authenticated_client_drops_only_that_client(console_app, clients,
                                                                     garbage: bytes) -> None:
    console = console_app(ECHO_APP)
    witness = clients(console)
    rogue = clients(console)
    rogue.send(garbage)
    wait_until(rogue.closed.is_set, timeout=5, message="the rogue client to be dropped")
    assert_console_works(console, witness, "unharmed")


def test_nonsense_sizes_are_ignored_without_dropping_the_client(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    client = clients(console)
    client.wait_for("size 24x80")
    for size in ({"rows": 0, "cols": 80}, {"rows": 5000, "cols": 80}, {"rows": "30"},
                 {"rows": 30.5, "cols": 100}, {}):
        client.send(encode(Kind.RESIZE, size))
    assert_console_works(console, client, "same-size")
    assert not re.search(r"size (?!24x80)\d+x\d+", client.text().split("size 24x80", 1)[1])


def test_a_ping_is_answered_with_its_payload(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    client = clients(console)
    count = client.kinds.count(Kind.PONG)
    client.send(encode(Kind.PING, b"are you there"))
    wait_until(lambda: client.kinds.count(Kind.PONG) > count, message="a PONG")


# --- several clients, slow clients -----------------------------------------------------------


def test_several_clients_see_the_same_output_and_may_all_type(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    first, second, third = clients(console), clients(console), clients(console)
    first.type("from-first\r")
    third.type("from-third\r")
    for client in (first, second, third):
        client.wait_for("got [from-first]")
        client.wait_for("got [from-third]")
    tails = [c.text()[c.text().index("got [from-first]"):] for c in (first, second, third)]
    wait_until(lambda: len({c.text()[c.text().index("got [from-first]"):]
                            for c in (first, second, third)}) == 1,
               message=f"the same output on every client: {tails}")


def test_a_client_that_never_reads_is_dropped_and_blocks_no_one(console_app, clients,
                                                              monkeypatch) -> None:
    """The slow client keeps pinging (so it is not dropped as idle) but never reads: its queue
    passes the limit and it is dropped at once (not when a send times out), while the app and
    a reading client keep going."""
    monkeypatch.setattr(console_server, "SEND_TIMEOUT", 120.0)
    console = console_app(FLOOD_APP)
    reading = clients(console)
    slow = socket.create_connection(("127.0.0.1", console.port), timeout=5)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    challenge = recv_frame(slow, FrameReader(), [])
    assert challenge is not None
    slow.sendall(encode(Kind.AUTH, {"resource": RESOURCE, "rows": 24, "cols": 80,
                                    "mac": mac(console.secret, challenge.payload, RESOURCE)}))
    stop_pinging, refused = threading.Event(), threading.Event()

    def ping() -> None:
        """Once the server has closed its end, a ping is answered with a reset."""
        while not stop_pinging.wait(0.2):
            try:
                slow.sendall(encode(Kind.PING, b"s"))
            except OSError:
                refused.set()
                return
    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    counters = re.compile(rb"<(\d+)>")

    def newest() -> int:
        with reading._lock:  # noqa: SLF001 - the test's own client
            found = counters.findall(bytes(reading.output[-20000:]))
        return int(found[-1]) if found else 0

    try:
        started = newest()
        wait_until(refused.is_set, timeout=20, interval=0.05,
                   message="the server to drop the client that never reads")
        assert newest() > started, "the app's output stalled while a client did not read"
        before = newest()
        wait_until(lambda: newest() > before + 100, timeout=5,
                   message="the app's output to keep flowing to the reading client")
        assert not reading.closed.is_set()
        assert console.app.looks_alive()
    finally:
        stop_pinging.set()
        slow.close()
        pinger.join(2)


# --- size and the in-band resize query -------------------------------------------------------


def test_attaching_gives_the_app_the_clients_size(console_app, clients) -> None:
    """The redraw toggle: the app sees a different size, then the client's own."""
    console = console_app(ECHO_APP)
    client = clients(console, rows=40, cols=120)
    output = client.wait_for("size 40x120")
    assert "size 40x119" in output.split("size 40x120")[0]


def test_a_new_client_gets_a_repaint_even_from_a_busy_app(console_app, clients) -> None:
    """If the app was too busy to see the two sizes of the redraw toggle apart, it repaints
    nothing and the new client would look at a blank screen: the host tries again."""
    console = console_app(BUSY_PAINTER_APP)
    client = clients(console)
    client.wait_for("repaint 24x80", timeout=5)


def test_resize_frames_resize_the_apps_pty(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    client = clients(console)
    client.wait_for("size 24x80")
    client.send(encode(Kind.RESIZE, {"rows": 33, "cols": 101}))
    client.wait_for("size 33x101")
    other = clients(console, rows=20, cols=70)  # the last client to attach sets the size
    other.wait_for("size 20x70")
    client.wait_for("size 20x70")


def test_the_in_band_resize_query_never_reaches_a_client(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    client = clients(console)
    client.type("query\r")
    output = client.wait_for(":after-query")
    assert "before-query::after-query" in output
    assert IN_BAND_RESIZE_QUERY.decode() not in output


# --- the app going away -------------------------------------------------------------------


def test_clients_get_exit_when_the_app_exits(console_app, clients) -> None:
    console = console_app(ECHO_APP)
    first, second = clients(console), clients(console)
    pid = console.app.pid()
    first.type("quit\r")
    for client in (first, second):
        wait_until(client.closed.is_set, timeout=5, message="the connection to close")
        assert Kind.EXIT in client.kinds
        assert "bye" in client.text()
    wait_until(lambda: not pid_alive(pid), message="the app to be gone")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", console.port), timeout=2).recv(1)
