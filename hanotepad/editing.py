"""Editing commands that work on the editor widget: find, replace, go to line.

Plain functions over an ``EditorArea``; the search itself is pure (``search.py``).
Each returns the message for the status bar.
"""

from __future__ import annotations

from textual.widgets.text_area import Selection

from hanotepad.search import find, matches_at, replace_all
from hanotepad.textarea import EditorArea


def find_in(editor: EditorArea, query: str, *, backward: bool = False) -> str:
    """Select the next (or previous) match after the selection; wraps around."""
    start, end = sorted(editor.selection)
    match = find(editor.document.lines, query, start if backward else end, backward=backward)
    if match is None:
        return f"not found: {query}"
    editor.selection = Selection(match.start, match.end)
    editor.scroll_cursor_visible(center=True)
    return ""


def replace_in(editor: EditorArea, query: str, replacement: str, *, everywhere: bool) -> str:
    """Replace the selected match and select the next one; or replace all, as one undo step."""
    if everywhere:
        plan = replace_all(editor.document.lines, query, replacement)
        if plan is None:
            return f"not found: {query}"
        editor.replace(plan.text, plan.start, plan.end)
        return f"replaced {plan.count} occurrence(s)"
    start, end = editor.selection
    if matches_at(editor.document.lines, query, start, end):
        result = editor.replace(replacement, *sorted((start, end)))
        editor.selection = Selection.cursor(result.end_location)
    return find_in(editor, query)


def go_to_line(editor: EditorArea, line: int) -> None:
    """Put the cursor at the start of ``line`` (1-based, clamped) and centre it."""
    row = max(0, min(line - 1, editor.document.line_count - 1))
    editor.move_cursor((row, 0))
    editor.scroll_cursor_visible(center=True)
