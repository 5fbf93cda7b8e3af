"""What the end-to-end tests share: the HA Notepad group on a test cluster, ``hacluster attach``
in a terminal, and reading the editor off the screen the way a person does."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.helpers.terminal import Terminal
from tests.helpers.wait import wait_until
from tests.integration.harness import Cluster, hacluster

GROUP = "notepad"
APP = "notepad-app"
DETACH = b"\x1d"  # ctrl+]
STATUS = re.compile(r"Ln (\d+), Col (\d+)")


def create_notepad(cluster: Cluster) -> None:
    """``hacluster notepad``: shared folder, network name and the editor in a console."""
    hacluster(cluster.store, "notepad")


def notes_path(cluster: Cluster) -> Path:
    return cluster.store / "data" / "notepad" / "notes.txt"


def on_disk(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def attach_argv(cluster: Cluster, name: str = GROUP, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cluster", "attach", name, "--store", str(cluster.store),
            *extra]


def owner(cluster: Cluster) -> str:
    return str(cluster.group(GROUP)["owner"])


def app_pid(cluster: Cluster) -> int | None:
    group = cluster.group(GROUP)
    return next((r["pid"] for r in group["resources"] if r["name"] == APP), None)


# --- reading the editor off the screen ---------------------------------------------------------


def status_position(term: Terminal) -> tuple[int, int] | None:
    """(line, column) from the editor's status bar, as the user reads it."""
    for line in reversed(term.lines()):
        match = STATUS.search(line)
        if match:
            return int(match[1]), int(match[2])
    return None


def editor_cursor(term: Terminal) -> tuple[int, int] | None:
    """Where the editor draws its cursor: the one text cell with the text colours swapped.

    Textual hides the terminal's cursor and paints its own, so pyte's cursor says nothing.
    The text area's common (fg, bg) pair is found first; the cursor is the cell painted
    (bg, fg). None while the cursor blinks off (or is not drawn)."""
    rows = term.rows - 2  # status bar and footer below the text
    cells = [(r, c, ch) for r in range(rows) for c, ch in enumerate(term.cells(r))]
    if not cells:
        return None
    (fg, bg), _ = Counter((ch.fg, ch.bg) for _, _, ch in cells).most_common(1)[0]
    found = [(r, c) for r, c, ch in cells if (ch.fg, ch.bg) == (bg, fg) or
             (ch.reverse and (ch.fg, ch.bg) == (fg, bg))]
    return found[0] if len(found) == 1 else None


def wait_cursor(term: Terminal, expected: tuple[int, int], timeout: float = 10.0) -> None:
    """Wait until the editor's cursor is drawn at ``expected`` (it may be blinking)."""
    try:
        wait_until(lambda: editor_cursor(term) == expected, timeout=timeout, interval=0.02,
                   message=f"the editor's cursor at {expected}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; it is at {editor_cursor(term)}\n{term.text()}") from None


def wait_editor(term: Terminal, text: str, position: tuple[int, int],
                timeout: float = 15.0) -> None:
    """Wait until the screen shows ``text`` in the editor and the status bar ``position``."""
    term.wait_for_text(text, timeout)
    try:
        wait_until(lambda: status_position(term) == position, timeout=timeout,
                   message=f"the status bar at Ln {position[0]}, Col {position[1]}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{term.text()}") from None


def wait_ready(term: Terminal, timeout: float = 15.0) -> tuple[int, int]:
    """Wait until the editor's status bar is on screen; the position it shows."""
    try:
        return wait_until(lambda: status_position(term), timeout=timeout,
                          message="the editor's status bar")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{term.text()}") from None


def checkpointed_cursor(cluster: Cluster) -> list[int] | None:
    """The cursor in the editor's session as the cluster holds it (checkpoint in the store)."""
    path = cluster.store / "checkpoints" / APP / "hanotepad" / "session.json"
    try:
        session: dict[str, Any] = json.loads(path.read_text())
        place = session["places"][str(notes_path(cluster))]
        return list(place["cursor"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_safe(cluster: Cluster, text: str, cursor: tuple[int, int]) -> None:
    """Wait until the text is saved in the shared folder and the session (cursor, zero-based
    row and column) is checkpointed: what a crash may not lose. The editor autosaves within a
    fraction of a second; a crash before that may lose that fraction, by design."""
    path = notes_path(cluster)
    wait_until(lambda: on_disk(path) == text, timeout=10,
               message=f"{text!r} saved in {path} (it holds {on_disk(path)!r})")
    wait_until(lambda: checkpointed_cursor(cluster) == list(cursor), timeout=10,
               message=f"the cursor {cursor} checkpointed (it is {checkpointed_cursor(cluster)})")


def attach_json(term: Terminal) -> dict[str, Any]:
    """The JSON line ``attach --json`` printed when it left."""
    for line in reversed(term.raw().decode(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{") and '"outages"' in line:
            return json.loads(line)
    raise AssertionError(f"no JSON from attach --json in:\n{term.text()}")
