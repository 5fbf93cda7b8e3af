"""The command palette: one entry for each editing command, and the recent files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import SystemCommand

if TYPE_CHECKING:
    from hanotepad.app import HaNotepadApp


def editor_commands(app: HaNotepadApp) -> Iterator[SystemCommand]:
    """Palette entries; each names its key, so the palette also teaches the bindings."""

    def on_editor(name: str) -> Callable[[], Any]:
        return partial(app.run_editor_action, name)

    commands: list[tuple[str, str, Callable[[], Any]]] = [
        ("New file", "Start an empty, untitled text (ctrl+n)", app.action_new),
        ("Open file", "Open a file from disk (ctrl+o)", app.action_open),
        ("Save", "Write the file now (ctrl+s); it autosaves anyway", app.action_save),
        ("Save as", "Write the text to another file and edit that (f12)", app.action_save_as),
        ("Find", "Find text (ctrl+f)", app.action_find),
        ("Find next", "Find the next match (f3)", app.action_find_next),
        ("Find previous", "Find the previous match (shift+f3)", app.action_find_previous),
        ("Replace", "Find and replace text (ctrl+r)", app.action_replace),
        ("Undo", "Undo the last edit (ctrl+z)", on_editor("undo")),
        ("Redo", "Redo the last undone edit (ctrl+y)", on_editor("redo")),
        ("Select all", "Select the whole text (ctrl+a)", on_editor("select_all")),
        ("Cut", "Cut the selection (ctrl+x)", on_editor("cut")),
        ("Copy", "Copy the selection (ctrl+c)", on_editor("copy")),
        ("Paste", "Paste (ctrl+v)", on_editor("paste")),
        ("Go to line", "Move the cursor to a line (ctrl+g)", app.action_goto_line),
        ("Toggle soft wrap", "Wrap long lines, or not (alt+z)", app.action_toggle_wrap),
    ]
    for title, help_text, callback in commands:
        yield SystemCommand(title, help_text, callback)
    current = str(app.doc.path) if app.doc is not None else None
    for recent in app.session.recent:
        if recent != current:
            yield SystemCommand(
                f"Open recent: {Path(recent).name}",
                recent,
                partial(app.open_file, Path(recent)),
                discover=False,
            )
