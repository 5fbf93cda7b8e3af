"""Several people at one console, terminals of different sizes, and hostile connections to the
console port, all against the real editor on a real node, seen through real terminals."""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
from collections.abc import Iterator

import pytest

from cluster.console.attach import find_console
from cluster.console.protocol import MAX_FRAME, FrameReader, Kind, encode, mac, recv_frame
from tests.e2e.notepad import (
    APP,
    DETACH,
    GROUP,
    app_pid,
    attach_argv,
    status_position,
    wait_ready,
)
from tests.helpers.terminal import IN_BAND_RESIZE_QUERY, Terminal
from tests.helpers.wait import wait_until
from tests.integration.harness import Cluster, hacluster


@pytest.fixture
def online(notepad_cluster: Cluster) -> Iterator[Cluster]:
    notepad_cluster.wait_online(GROUP)
    yield notepad_cluster
    # Leave it as found for the next test sharing it.
    hacluster(notepad_cluster.store, "group", "online", GROUP, "--wait", "30")


def text_area(term: Terminal) -> list[str]:
    """The screen without its last line (where attach may show a banner)."""
    return term.lines()[:-1]


def test_two_terminals_attached_at_once_show_the_same_screen(online: Cluster,
                                                             terminals) -> None:
    first = terminals(attach_argv(online))
    wait_ready(first)
    second = terminals(attach_argv(online))
    wait_ready(second)
    word_one, word_two = f"one{secrets.token_hex(2)}", f"two{secrets.token_hex(2)}"
    first.send(f" {word_one}")
    second.wait_for_text(word_one)
    second.send(f" {word_two}")
    first.wait_for_text(word_two)
    wait_until(lambda: text_area(first) == text_area(second), timeout=10,
               message="both terminals to show the same screen")
    assert status_position(first) == status_position(second)
    first.send(DETACH)
    assert first.wait_exit(10) == 0
    second.send(" still")  # the other terminal is not affected by one leaving
    second.wait_for_text(f"{word_two} still")


def test_the_app_takes_the_size_of_the_terminal(online: Cluster, terminals) -> None:
    """attach waits while the group is offline, connects as the editor starts (when Textual
    asks the terminal about in-band resize), and the terminal, like kitty or foot, would say
    yes: the relay must filter the query, or the editor ignores every later resize."""
    hacluster(online.store, "group", "offline", GROUP, "--wait", "30")
    term = terminals(attach_argv(online), answer_in_band_resize=True)
    term.wait_for_text("waiting for it to come online")
    hacluster(online.store, "group", "online", GROUP, "--wait", "30")
    wait_ready(term)
    term.resize(30, 100)
    wait_until(lambda: "Ln " in term.line(28) and "palette" in term.line(29), timeout=10,
               message="the editor redrawn for 30 rows")
    assert len(term.line(28).rstrip()) > 80, "the status bar spans the 100 columns"
    term.resize(20, 60)
    wait_until(lambda: "Ln " in term.line(18), timeout=10,
               message="the editor redrawn for 20 rows")
    assert IN_BAND_RESIZE_QUERY not in term.raw()
    assert term.in_band_queries_answered == 0


def test_hostile_connections_do_not_disturb_an_attached_terminal(online: Cluster,
                                                                 terminals) -> None:
    term = terminals(attach_argv(online))
    wait_ready(term)
    pid = app_pid(online)
    endpoint = wait_until(lambda: find_console(online.open(), GROUP), message="the console")
    assert endpoint.resource == APP
    address = (endpoint.address, endpoint.port)
    attempts: list[bytes] = [
        b"GET / HTTP/1.1\r\n\r\n",
        struct.pack(">BI", Kind.AUTH, MAX_FRAME * 64),
        encode(Kind.INPUT, b"intruder-one\r"),
    ]
    for attempt in attempts:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(attempt)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
    with socket.create_connection(address, timeout=5) as sock:
        reader = FrameReader()
        challenge = recv_frame(sock, reader, [])
        assert challenge is not None and challenge.kind == Kind.CHALLENGE
        sock.sendall(encode(Kind.AUTH, {"resource": APP, "rows": 5, "cols": 5,
                                        "mac": mac(secrets.token_bytes(32), challenge.payload,
                                                   APP)}))
        with contextlib.suppress(OSError):
            sock.sendall(encode(Kind.INPUT, b"intruder-two\r"))
        reply = recv_frame(sock, reader, [])
        assert reply is not None and reply.kind == Kind.DENY
    marker = f"ok{secrets.token_hex(3)}"
    term.send(f" {marker}")
    term.wait_for_text(marker)
    assert "intruder" not in term.text()
    assert app_pid(online) == pid
    assert term.lines()[-1].strip() == "" or "palette" in term.lines()[-1], \
        "a refused connection must not make attach show an outage"
