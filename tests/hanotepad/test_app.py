"""The editor under Textual's Pilot: autosave, session, reload on change, exit."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from hanotepad.autosave import Debouncer
from hanotepad.dialogs import ChoiceDialog
from hanotepad.fileio import atomic_write
from hanotepad.widgets import short_path
from tests.helpers.wait import wait_until_async


async def answer(app: Any, pilot: Any, choice: str) -> None:
    """Wait for the open dialog's button for ``choice`` and click it."""
    button = f"#choice-{choice}"
    await wait_until_async(
        lambda: isinstance(app.screen, ChoiceDialog)
        and any(widget.region.width for widget in app.screen.query(button)),
        message=f"a dialog offering {choice}",
    )
    await pilot.click(button)


def on_disk(path: Path) -> str | None:
    """The file's text, or None while it does not exist."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def held() -> Debouncer:
    """An autosave that waits a minute: edits stay unsaved for the test's purposes."""
    return Debouncer(idle=60, max_wait=60, ceiling=60)


async def test_typing_is_saved_to_disk(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("world\n")
    async with run_editor(path) as (app, pilot):
        await pilot.press("h", "i", "space")
        await wait_until_async(lambda: path.read_text() == "hi world\n", message="the save")
        await wait_until_async(lambda: app.status.save_state == "saved", message="saved state")
        assert app.status.has_class("-saved")
        parts = app.status.text.split(" | ")
        assert parts == [short_path(str(path)), "saved", "", "Ln 1, Col 4", "9 B"]


async def test_unsaved_then_saved_states(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    async with run_editor(path, autosave=held()) as (app, pilot):
        await pilot.press("a")
        assert app.status.save_state == "unsaved"
        assert app.status.has_class("-unsaved")
        await pilot.press("ctrl+s")
        await wait_until_async(lambda: app.status.save_state == "saved", message="saved state")
        assert path.read_text() == "a"


async def test_reopening_brings_cursor_selection_and_scroll_back(
    run_editor: Any, tmp_path: Path, state_dir: Path
) -> None:
    path = tmp_path / "long.txt"
    path.write_text("".join(f"line {number}\n" for number in range(300)))
    async with run_editor(path) as (app, pilot):
        app.editor.move_cursor((150, 2))
        app.editor.move_cursor((150, 6), select=True)
        await pilot.pause()
        scroll = (round(app.editor.scroll_x), round(app.editor.scroll_y))
        assert scroll[1] > 100
        await pilot.press("ctrl+q")
    saved = json.loads((state_dir / "session.json").read_text())
    assert saved["places"][str(path)]["cursor"] == [150, 6]
    async with run_editor(path) as (app, pilot):
        await wait_until_async(lambda: app.editor.selection.end == (150, 6), message="cursor")
        assert app.editor.selection.start == (150, 2)
        await wait_until_async(
            lambda: (round(app.editor.scroll_x), round(app.editor.scroll_y)) == scroll,
            message="the scroll position",
        )
        assert app.status.position == (150, 6)


async def test_without_an_argument_the_sessions_file_opens(run_editor: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("first\n")
    second.write_text("second\n")
    async with run_editor(first) as (app, pilot):
        await pilot.press("ctrl+q")
    async with run_editor(None) as (app, pilot):
        assert app.doc is not None and app.doc.path == first
        assert app.editor.text == "first\n"
        await pilot.press("ctrl+q")
    async with run_editor(second) as (app, pilot):  # the argument wins
        assert app.doc is not None and app.doc.path == second
        assert app.editor.text == "second\n"


async def test_soft_wrap_toggle_is_remembered(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    async with run_editor(path) as (app, pilot):
        assert app.editor.soft_wrap
        await pilot.press("alt+z")
        assert not app.editor.soft_wrap
        await pilot.press("ctrl+q")
    async with run_editor(path) as (app, pilot):
        assert not app.editor.soft_wrap


async def test_an_external_change_reloads_and_keeps_the_cursor(
    run_editor: Any, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("one\ntwo\nthree\n")
    async with run_editor(path) as (app, pilot):
        app.editor.move_cursor((1, 2))
        await pilot.pause()
        atomic_write(path, b"one\nTWO!\nthree\nfour\n")
        await wait_until_async(lambda: app.reload_count == 1, message="a reload")
        assert app.editor.text == "one\nTWO!\nthree\nfour\n"
        assert app.editor.selection.end == (1, 2)
        assert app.status.save_state == "saved"


@pytest.mark.parametrize("watch_mode", ["inotify", "poll"])
async def test_own_saves_are_not_taken_for_external_changes(
    run_editor: Any, tmp_path: Path, watch_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Own atomic saves arrive as moved (inotify) or deleted + created (polling) events."""
    monkeypatch.setenv("HANOTEPAD_WATCH", watch_mode)
    path = tmp_path / "notes.txt"
    async with run_editor(path) as (app, pilot):
        expected = ""
        for word in ("alpha ", "beta ", "gamma "):
            app.editor.insert(word)
            expected += word
            await wait_until_async(
                lambda text=expected: on_disk(path) == text, message="a save"
            )
        # Events are handled in order: any reload caused by our own saves would come first.
        with open(path, "a") as file:
            file.write("delta")
        await wait_until_async(lambda: app.editor.text.endswith("delta"), message="the reload")
        assert app.reload_count == 1
        assert not isinstance(app.screen, ChoiceDialog)


async def test_an_external_change_with_unsaved_edits_asks_then_reloads(
    run_editor: Any, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("base\n")
    async with run_editor(path, autosave=held()) as (app, pilot):
        await pilot.press("x")
        atomic_write(path, b"theirs\n")
        await wait_until_async(lambda: isinstance(app.screen, ChoiceDialog), message="a question")
        await answer(app, pilot, "reload")
        await wait_until_async(lambda: app.editor.text == "theirs\n", message="the reload")
        assert path.read_text() == "theirs\n"
        assert app.status.save_state == "saved"


async def test_an_external_change_with_unsaved_edits_can_be_overruled(
    run_editor: Any, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("base\n")
    async with run_editor(path, autosave=held()) as (app, pilot):
        await pilot.press("x")
        atomic_write(path, b"theirs\n")
        await wait_until_async(lambda: isinstance(app.screen, ChoiceDialog), message="a question")
        assert path.read_text() == "theirs\n"  # nothing written while the user decides
        await answer(app, pilot, "keep")
        await wait_until_async(lambda: path.read_text() == "xbase\n", message="my text saved")
        assert app.status.save_state == "saved"


async def test_a_newer_file_is_never_overwritten_unseen(run_editor: Any, tmp_path: Path) -> None:
    """Without the watcher's help, the save itself notices and asks."""
    path = tmp_path / "notes.txt"
    path.write_text("old\n")
    async with run_editor(path, watch=False) as (app, pilot):
        atomic_write(path, b"written by the editor on another node\n")
        await pilot.press("x")
        await wait_until_async(lambda: isinstance(app.screen, ChoiceDialog), message="a question")
        assert path.read_text() == "written by the editor on another node\n"
        assert app.status.save_state == "error"


async def test_ctrl_q_saves_and_quits(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    async with run_editor(path, autosave=held()) as (app, pilot):
        app.editor.insert("typed just before quitting")
        await pilot.press("ctrl+q")
        await wait_until_async(lambda: not app.is_running, message="the app to exit")
    assert path.read_text() == "typed just before quitting"


async def test_ctrl_q_with_untitled_text_asks(run_editor: Any) -> None:
    async with run_editor(None) as (app, pilot):
        app.editor.insert("no file yet")
        await pilot.press("ctrl+q")
        await wait_until_async(lambda: isinstance(app.screen, ChoiceDialog), message="a question")
        await answer(app, pilot, "cancel")
        assert app.is_running and app.editor.text == "no file yet"


async def test_a_termination_signal_flushes_and_exits(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    async with run_editor(path, autosave=held()) as (app, pilot):
        app.editor.insert("unsaved when the signal came")
        app._on_exit_signal(signal.SIGTERM)
        await wait_until_async(lambda: not app.is_running, message="the app to exit")
    assert path.read_text() == "unsaved when the signal came"


async def test_a_signal_during_a_conflict_keeps_both_sides(
    run_editor: Any, tmp_path: Path, state_dir: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("base\n")
    async with run_editor(path, watch=False) as (app, pilot):
        atomic_write(path, b"theirs\n")
        await pilot.press("m", "i", "n", "e")
        await wait_until_async(lambda: isinstance(app.screen, ChoiceDialog), message="a question")
        app._on_exit_signal(signal.SIGHUP)
        await wait_until_async(lambda: not app.is_running, message="the app to exit")
    assert path.read_text() == "theirs\n"
    assert app.recovered is not None and app.recovered.parent == state_dir / "recovered"
    assert app.recovered.read_text().startswith("m")
    assert app.recovered.read_text().endswith("base\n")


async def test_the_session_dir_keeps_only_the_session(
    run_editor: Any, tmp_path: Path, state_dir: Path
) -> None:
    path = tmp_path / "notes.txt"
    async with run_editor(path) as (app, pilot):
        app.editor.insert("text")
        await wait_until_async(lambda: on_disk(path) == "text", message="the save")
        await pilot.press("ctrl+q")
    assert sorted(os.listdir(state_dir)) == ["session.json"]


def test_long_paths_keep_their_end() -> None:
    assert short_path("/short.txt") == "/short.txt"
    shown = short_path("/a/very/long/path/to/the/shared/store/data/notepad/notes.txt", 30)
    assert shown == "…/store/data/notepad/notes.txt" and len(shown) == 30

