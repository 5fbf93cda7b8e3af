"""A 10 MB file opens, takes edits and is autosaved whole (speeds are in the bench)."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.wait import wait_until_async


@pytest.fixture(scope="module")
def big_text() -> str:
    rng = random.Random(3)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(5000)]
    lines = []
    size = 0
    while size < 10_000_000:
        line = " ".join(rng.choices(words, k=rng.randint(3, 14)))
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


async def test_a_10_mb_file_is_edited_and_saved_whole(
    run_editor: Any, tmp_path: Path, big_text: str
) -> None:
    path = tmp_path / "big.txt"
    path.write_text(big_text)
    async with run_editor(path) as (app, pilot):
        assert app.editor.text == big_text
        assert not app.editor.soft_wrap  # off for very large files
        await pilot.press("ctrl+end", "E", "N", "D")
        app.editor.move_cursor((0, 0))
        app.editor.insert("START ")
        expected = "START " + big_text + "END"
        await wait_until_async(
            lambda: path.stat().st_size == len(expected), timeout=20, message="the save"
        )
        assert path.read_text() == expected
        await pilot.press("ctrl+g")
        await wait_until_async(lambda: app.screen.query("#line-input"), message="the dialog")
        await pilot.press("5", "0", "0", "0", "0", "enter")  # replaces the preselected value
        assert app.editor.selection.end == (49_999, 0)
