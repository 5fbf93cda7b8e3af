"""The real editor in a pty: typing, SIGKILL at random moments, SIGTERM and SIGHUP.

These start ``python -m hanotepad`` processes; every one is killed (process group)
by the ``spawn_editor`` fixture when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hanotepad.conftest import PtyEditor
from tests.helpers.wait import wait_until

LOSS_BOUND = 0.3
"""Text typed more than this many seconds before a SIGKILL must be on disk."""
SOAK = bool(os.environ.get("HA_SOAK"))
KILL_REPETITIONS = 100 if SOAK else 20
CTRL_END = "\x1b[1;5F"
LETTERS = "abcdefghijklmnopqrstuvwxyz     "


def on_disk(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_typed_text_reaches_the_file(
    spawn_editor: Callable[..., PtyEditor], tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    editor = spawn_editor(str(path))
    editor.wait_ready()
    screen = editor.display()
    assert "notes.txt" in screen and "new file" in screen and "^s Save" in screen
    editor.type("hello from a pty")
    wait_until(lambda: on_disk(path) == "hello from a pty", message="the autosave")
    editor.wait_for_text("Ln 1, Col 17")
    editor.wait_for_text(" saved ")  # the status bar agrees
    editor.type("\x11")  # ctrl+q: save and quit
    assert editor.wait_exit() == 0


@pytest.mark.slow
def test_sigkill_loses_at_most_the_last_300_ms(
    spawn_editor: Callable[..., PtyEditor], tmp_path: Path
) -> None:
    """Type through the pty, SIGKILL at a random moment, restart, check; repeated.

    Each repetition starts the editor on the file the previous one left (the restart),
    checks that it shows that text, types a new line in chunks of 1-4 keys (recording
    the time each chunk was written to the pty), and kills the editor's process group
    0.3-0.5 s in. Every chunk written more than LOSS_BOUND before the kill must be in
    the file, in order, and nothing that was not typed.
    """
    seed = int(os.environ.get("HA_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    path = tmp_path / "notes.txt"
    saved = ""
    for repetition in range(KILL_REPETITIONS):
        editor = spawn_editor(str(path))
        editor.wait_ready()
        if saved.split():
            editor.wait_for_text(saved.split()[-1])
        editor.type(CTRL_END)  # alone: Textual may reorder keys around an escape sequence
        rows = saved.count("\n") + 1
        editor.wait_for_text(f"Ln {rows}, Col {len(saved) - saved.rfind(chr(10))} ")
        chunks: list[tuple[float, str]] = []
        if saved:
            chunks.append((editor.type("\r"), "\n"))
        typing_for = rng.uniform(0.3, 0.5)
        editor.mirror = False  # no screen parsing while typing: the editor needs the CPU
        started = time.monotonic()
        while time.monotonic() - started < typing_for:
            keys = "".join(rng.choices(LETTERS, k=rng.randint(1, 4)))
            chunks.append((editor.type(keys), keys))
            time.sleep(rng.uniform(0.02, 0.06))  # a fast typist: about 50 characters a second
        killed_at = time.monotonic()
        os.killpg(editor.pid, signal.SIGKILL)
        editor.wait_exit()
        editor.close()

        content = on_disk(path)
        context = f"repetition {repetition}, seed {seed}"
        assert content.startswith(saved), f"earlier text changed ({context})"
        new = content[len(saved) :]
        typed = "".join(text for _, text in chunks)
        required = "".join(
            text for written_at, text in chunks if written_at <= killed_at - LOSS_BOUND
        )
        assert typed.startswith(new), f"the file has text that was not typed ({context})"
        assert len(new) >= len(required), (
            f"lost text typed more than {LOSS_BOUND} s before the kill ({context}): "
            f"file has {len(new)} of the {len(required)} characters required; "
            f"load average {os.getloadavg()}"
        )
        saved = content
    assert saved.count("\n") >= KILL_REPETITIONS - 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_right_after_typing_keeps_everything(
    spawn_editor: Callable[..., PtyEditor], tmp_path: Path, signum: int
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("before\n")
    editor = spawn_editor(str(path))
    editor.wait_ready()
    editor.wait_for_text("before")
    editor.type(CTRL_END)  # alone: Textual may reorder keys around an escape sequence
    editor.wait_for_text("Ln 2, Col 1 ")
    text = "".join(f"word{number} " for number in range(40))
    editor.type(text)
    editor.signal(signum)  # at once: most keys are still on their way
    assert editor.wait_exit() == 0
    assert path.read_text() == "before\n" + text


def test_closing_the_terminal_keeps_everything(
    spawn_editor: Callable[..., PtyEditor], tmp_path: Path
) -> None:
    """The pty's master side goes away: the kernel sends SIGHUP."""
    path = tmp_path / "notes.txt"
    editor = spawn_editor(str(path))
    editor.wait_ready()
    editor.type("last words")
    wait_until(lambda: "Col 11" in editor.display(), message="the keys processed")
    pid = editor.pid
    editor.hang_up()
    wait_until(lambda: not _alive(pid), message="the editor to exit")
    assert path.read_text() == "last words"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
