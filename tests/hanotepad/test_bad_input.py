"""Bad input: a clear message inside the app, no traceback, and nothing damaged on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hanotepad.fileio import SIZE_LIMIT
from tests.helpers.wait import wait_until_async


def on_disk(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


async def test_a_missing_file_opens_empty_and_is_created_on_the_first_save(
    run_editor: Any, tmp_path: Path
) -> None:
    path = tmp_path / "new.txt"
    async with run_editor(path) as (app, pilot):
        assert app.editor.text == ""
        assert "new file" in app.status.text
        assert not path.exists()
        await pilot.press("o", "k")
        await wait_until_async(lambda: on_disk(path) == b"ok", message="the file created")
        await wait_until_async(lambda: "new file" not in app.status.text, message="note gone")


async def test_a_directory_gets_a_message_and_an_untitled_buffer(
    run_editor: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "inside.txt").write_text("keep")
    async with run_editor(folder) as (app, pilot):
        assert app.doc is None
        assert "is a folder: open a file inside it" in app.status.message
        assert app.status.save_state != "error" or app.status.message
        await pilot.press("x")
        await pilot.press("ctrl+q")  # untitled text: the editor asks instead of quitting
        assert app.is_running
    assert sorted(os.listdir(folder)) == ["inside.txt"]


async def test_a_binary_file_is_left_untouched(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "image.bin"
    content = bytes(range(256)) * 4
    path.write_bytes(content)
    async with run_editor(path) as (app, pilot):
        assert app.doc is None
        assert "looks binary" in app.status.message
        await pilot.press("x", "ctrl+s")  # save goes to "save as", never to the binary file
    assert path.read_bytes() == content


async def test_an_undecodable_file_is_left_untouched(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    content = "déjà vu".encode("latin-1")
    path.write_bytes(content)
    async with run_editor(path) as (app, pilot):
        assert app.doc is None
        assert "is not UTF-8 text" in app.status.message
        await pilot.press("x")
    assert path.read_bytes() == content


async def test_a_file_over_the_size_limit_is_refused(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with open(path, "wb") as file:
        file.truncate(SIZE_LIMIT + 1)  # sparse
    async with run_editor(path) as (app, pilot):
        assert app.doc is None
        assert "over the 50.0 MB limit" in app.status.message
    assert path.stat().st_size == SIZE_LIMIT + 1


async def test_a_missing_folder_keeps_the_text_and_says_what_to_do(
    run_editor: Any, tmp_path: Path
) -> None:
    path = tmp_path / "not-yet" / "notes.txt"
    async with run_editor(path) as (app, pilot):
        assert "does not exist" in app.status.message
        await pilot.press("h", "i")
        await wait_until_async(lambda: app.status.save_state == "error", message="a save error")
        assert "save as (f12)" in app.status.message
        assert app.editor.text == "hi"
        # Once the folder exists, saving works and the text is all there.
        path.parent.mkdir()
        await pilot.press("ctrl+s")
        await wait_until_async(lambda: on_disk(path) == b"hi", message="the save")
        await wait_until_async(lambda: app.status.save_state == "saved", message="saved state")
        assert app.status.message == ""


async def test_a_path_through_a_file_gets_a_message(run_editor: Any, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("not a folder")
    async with run_editor(tmp_path / "plain" / "notes.txt") as (app, pilot):
        assert app.doc is None
        assert "plain is a file, not a folder" in app.status.message
    assert (tmp_path / "plain").read_text() == "not a folder"


async def test_a_read_only_file_opens_read_only(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "locked.txt"
    path.write_text("do not touch\n")
    path.chmod(0o444)
    async with run_editor(path) as (app, pilot):
        assert app.editor.read_only
        assert app.status.has_class("-read-only")
        assert "read-only" in app.status.text
        await pilot.press("x", "ctrl+s")
        assert app.editor.text == "do not touch\n"
        assert "read-only" in app.status.message
    assert path.read_text() == "do not touch\n"


async def test_mixed_line_endings_open_read_only(run_editor: Any, tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    content = b"windows\r\nunix\nform\x0cfeed\n"
    path.write_bytes(content)
    async with run_editor(path) as (app, pilot):
        assert app.editor.read_only
        assert "opened read-only" in app.status.message
        await pilot.press("x")
    assert path.read_bytes() == content


async def test_a_damaged_session_starts_fresh_with_a_message(
    run_editor: Any, tmp_path: Path, state_dir: Path
) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "session.json").write_text("{ damaged")
    path = tmp_path / "notes.txt"
    async with run_editor(path) as (app, pilot):
        assert "was damaged: starting fresh" in app.status.message
        await pilot.press("o", "k")
        await wait_until_async(lambda: on_disk(path) == b"ok", message="the save")
