"""Leaving safely: unread input on a terminal, a hung-up terminal, recovery copies."""

from __future__ import annotations

import os
import pty
import time
import tty
from pathlib import Path

from hanotepad.shutdown import (
    pending_input_bytes,
    terminal_gone,
    wait_for_quiet_input,
    write_recovery,
)


def test_pending_input_counts_unread_bytes_on_a_pty() -> None:
    master, slave = pty.openpty()
    tty.setraw(slave)  # as Textual sets it: bytes are readable at once, not per line
    try:
        assert pending_input_bytes(slave) == 0
        os.write(master, b"abc")
        deadline = time.monotonic() + 5
        while pending_input_bytes(slave) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pending_input_bytes(slave) == 3
        os.read(slave, 3)
        assert pending_input_bytes(slave) == 0
    finally:
        os.close(master)
        os.close(slave)


def test_a_closed_terminal_is_recognised(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    try:
        assert not terminal_gone(slave)
        os.close(master)
        assert terminal_gone(slave)
    finally:
        os.close(slave)
    with open(tmp_path / "file", "w") as not_a_tty:
        assert not terminal_gone(not_a_tty.fileno())


def test_recovery_copies_never_overwrite_each_other(tmp_path: Path) -> None:
    moment = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1))
    first = write_recovery(tmp_path, "notes.txt", "one", now=moment)
    second = write_recovery(tmp_path, "notes.txt", "two", now=moment)
    untitled = write_recovery(tmp_path, "", "three", now=moment)
    assert first == tmp_path / "recovered" / "notes-20260102-030405.txt"
    assert second is not None and second != first
    assert (first.read_text(), second.read_text()) == ("one", "two")
    assert untitled is not None and untitled.name.startswith("untitled-")


def test_a_recovery_that_cannot_be_written_says_none(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file, not a folder")
    assert write_recovery(tmp_path / "state", "notes.txt", "text") is None


async def test_waiting_for_quiet_input_follows_the_buffer() -> None:
    revisions = iter([1, 2, 3, 4, 4, 4, 4, 4, 4])
    current = {"revision": 0}

    def revision() -> int:
        current["revision"] = next(revisions, current["revision"])
        return current["revision"]

    assert await wait_for_quiet_input(revision, lambda: True, limit=5, poll=0.001)
    assert current["revision"] == 4  # it waited for the typing to stop


async def test_waiting_for_quiet_input_gives_up_at_the_limit() -> None:
    started = time.monotonic()
    assert not await wait_for_quiet_input(lambda: 0, lambda: False, limit=0.1, poll=0.01)
    assert time.monotonic() - started < 5  # only a hang fails this
