"""Every editing command, through its key and (for a sample) through the command palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.command import CommandList
from textual.widgets import Input

from hanotepad.dialogs import ChoiceDialog, GotoLineDialog, PathDialog
from tests.helpers.wait import wait_until_async

TEXT = "The cat sat.\nA cat, a dog.\nthird line\nfourth line\nfifth line\n"


def on_disk(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def ready_input(app: Any, selector: str) -> Input:
    """The dialog input matching ``selector``, once it is laid out and focused."""
    return await wait_until_async(
        lambda: next(
            (widget for widget in app.screen.query(selector).results(Input) if widget.has_focus),
            None,
        ),
        message=f"{selector} focused",
    )


async def test_find_next_and_previous(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    async with run_editor(path) as (app, pilot):
        await pilot.press("ctrl+f")
        assert app.screen.focused is app.query_one("#find-input")
        await pilot.press("c", "a", "t", "enter")
        assert app.editor.selection == ((0, 4), (0, 7))
        await pilot.press("f3")
        assert app.editor.selection == ((1, 2), (1, 5))
        await pilot.press("f3")  # wraps around
        assert app.editor.selection == ((0, 4), (0, 7))
        await pilot.press("shift+f3")
        assert app.editor.selection == ((1, 2), (1, 5))
        await pilot.press("escape")
        assert app.editor.has_focus
        await pilot.press("ctrl+f", "z", "z", "enter")
        assert app.status.message == "not found: zz"


async def test_replace_one_then_all(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("cat cat cat\n")
    async with run_editor(path) as (app, pilot):
        await pilot.press("ctrl+r")
        app.query_one("#find-input", Input).value = "cat"
        app.query_one("#replace-input", Input).focus()
        app.query_one("#replace-input", Input).value = "dog"
        await pilot.press("enter")  # selects the first match
        await pilot.press("enter")  # replaces it, selects the next
        assert app.editor.text == "dog cat cat\n"
        assert app.editor.selection == ((0, 4), (0, 7))
        await pilot.click("#replace-all")
        assert app.editor.text == "dog dog dog\n"
        assert app.status.message == "replaced 2 occurrence(s)"
        await wait_until_async(lambda: on_disk(path) == "dog dog dog\n", message="the save")
        await pilot.press("escape", "ctrl+z")  # back in the editor: one undo for all
        assert app.editor.text == "dog cat cat\n"


async def test_go_to_line(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    async with run_editor(path) as (app, pilot):
        await pilot.press("ctrl+g")
        await ready_input(app, "#line-input")
        assert isinstance(app.screen, GotoLineDialog)
        await pilot.press("4", "enter")
        assert app.editor.selection.end == (3, 0)
        assert app.editor.has_focus


async def test_select_all_cut_copy_paste_undo_redo(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("one two")
    async with run_editor(path) as (app, pilot):
        await pilot.press("ctrl+a")
        assert app.editor.selected_text == "one two"
        await pilot.press("ctrl+c", "ctrl+end", "ctrl+v")
        assert app.editor.text == "one twoone two"
        await pilot.press("ctrl+a", "ctrl+x")
        assert app.editor.text == ""
        await pilot.press("ctrl+z")
        assert app.editor.text == "one twoone two"
        await pilot.press("ctrl+y")
        assert app.editor.text == ""
        await pilot.press("ctrl+v", "ctrl+home", "x")
        assert app.editor.text == "xone twoone two"
        await wait_until_async(lambda: on_disk(path) == "xone twoone two", message="the save")


async def test_new_saves_the_current_file_and_starts_untitled(
    run_editor: Any, tmp_path: Path
) -> None:
    from hanotepad.autosave import Debouncer

    path = tmp_path / "notes.txt"
    async with run_editor(path, autosave=Debouncer(60, 60, 60)) as (app, pilot):
        app.editor.insert("kept")
        await pilot.press("ctrl+n")
        assert app.doc is None and app.editor.text == ""
        assert app.status.path == "untitled"
        assert on_disk(path) == "kept"


async def test_open_a_file_through_the_dialog(run_editor: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("first")
    second.write_text("second")
    async with run_editor(first) as (app, pilot):
        await pilot.press("ctrl+o")
        path_input = await ready_input(app, "#path-input")
        assert isinstance(app.screen, PathDialog)
        path_input.value = str(second)
        await pilot.press("enter")
        await wait_until_async(lambda: app.editor.text == "second", message="the file opened")
        assert app.doc is not None and app.doc.path == second
        assert app.session.recent[:2] == (str(second), str(first))


async def test_opening_a_bad_file_keeps_the_current_one(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    async with run_editor(path) as (app, pilot):
        app.open_file(tmp_path)
        await wait_until_async(lambda: "is a folder" in app.status.message, message="a message")
        assert app.doc is not None and app.doc.path == path
        assert app.editor.text == "mine"


async def test_save_as_moves_editing_to_the_new_file(run_editor: Any, tmp_path: Path) -> None:
    old, new = tmp_path / "old.txt", tmp_path / "new.txt"
    old.write_text("text")
    async with run_editor(old) as (app, pilot):
        app.editor.move_cursor((0, 4))
        await pilot.press("f12")
        path_input = await ready_input(app, "#path-input")
        path_input.value = str(new)
        await pilot.press("enter")
        await wait_until_async(lambda: on_disk(new) == "text", message="the copy")
        assert app.editor.selection.end == (0, 4)  # the buffer stays as it was
        await pilot.press("!")
        await wait_until_async(lambda: on_disk(new) == "text!", message="the next save")
        assert old.read_text() == "text"


async def test_save_as_over_an_existing_file_asks_first(run_editor: Any, tmp_path: Path) -> None:
    old, existing = tmp_path / "old.txt", tmp_path / "existing.txt"
    old.write_text("mine")
    existing.write_text("other")
    async with run_editor(old) as (app, pilot):
        app._save_as_chosen(existing)
        await wait_until_async(lambda: isinstance(app.screen, ChoiceDialog), message="a question")
        await wait_until_async(
            lambda: any(button.region.width for button in app.screen.query("#choice-replace")),
            message="the replace button",
        )
        assert existing.read_text() == "other"
        await pilot.click("#choice-replace")
        await wait_until_async(lambda: on_disk(existing) == "mine", message="the replacement")


async def test_an_untitled_text_can_be_saved_as(run_editor: Any, tmp_path: Path) -> None:
    target = tmp_path / "fresh.txt"
    async with run_editor(None) as (app, pilot):
        await pilot.press("h", "i")
        assert app.status.save_state == "unsaved"
        await pilot.press("ctrl+s")  # no file yet: save as
        path_input = await ready_input(app, "#path-input")
        path_input.value = str(target)
        await pilot.press("enter")
        await wait_until_async(lambda: on_disk(target) == "hi", message="the save")
        await wait_until_async(lambda: app.status.save_state == "saved", message="saved state")


async def test_the_palette_offers_every_command(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    async with run_editor(path) as (app, pilot):
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {
            "New file", "Open file", "Save", "Save as", "Find", "Find next", "Replace", "Undo",
            "Redo", "Select all", "Cut", "Copy", "Paste", "Go to line", "Toggle soft wrap",
            "Quit",
        } <= titles


async def test_a_palette_command_runs(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT)
    async with run_editor(path) as (app, pilot):
        await pilot.press("ctrl+p")
        await wait_until_async(lambda: app.screen.query("CommandInput"), message="the palette")
        await pilot.press(*"go to line")

        def first_offer() -> str:
            return str(app.screen.query_one(CommandList).get_option_at_index(0).prompt)

        await wait_until_async(lambda: "Go to line" in first_offer(), message="the command")
        await pilot.press("enter")
        await ready_input(app, "#line-input")
        await pilot.press("3", "enter")
        assert app.editor.selection.end == (2, 0)


async def test_recent_files_are_offered_in_the_palette(run_editor: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("first")
    second.write_text("second")
    async with run_editor(first) as (app, pilot):
        await pilot.press("ctrl+q")
    async with run_editor(second) as (app, pilot):
        recent = [
            command
            for command in app.get_system_commands(app.screen)
            if command.title.startswith("Open recent")
        ]
        assert [command.title for command in recent] == ["Open recent: first.txt"]
        recent[0].callback()
        await wait_until_async(lambda: app.editor.text == "first", message="the recent file")
