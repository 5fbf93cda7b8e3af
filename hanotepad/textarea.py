"""The editing widget: Textual's TextArea with fast paths for big documents.

Textual's stock document classes do whole-document work on every edit and every
rendered line (``WrappedDocument.height`` sums all lines, ``Document.get_size``
measures all lines). That is invisible in small files and makes a 10 MB file take
seconds to open and about half a second per keystroke. The subclasses here keep
the same interface and results, but answer those questions in O(1) or O(edit):
without soft wrap the wrapped view is the identity and is computed on demand;
the widest line is tracked incrementally. ``tests/hanotepad/test_textarea.py``
checks them against the stock classes.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import repeat
from typing import Any, overload

from textual.binding import Binding
from textual.document._document import Document, EditResult, Location
from textual.document._document_navigator import DocumentNavigator
from textual.document._wrapped_document import WrappedDocument
from textual.expand_tabs import get_tab_widths
from textual.geometry import Size
from textual.widgets import TextArea

from hanotepad.cells import ascii_wrap_offsets, is_plain, line_width

logger = logging.getLogger(__name__)


class FastDocument(Document):
    """A Document that counts its edits and tracks its widest line incrementally."""

    def __init__(self, text: str, listener: Callable[[], None] | None = None) -> None:
        super().__init__(text)
        self._listener = listener
        self.revision = 0
        """Incremented by every edit, undo and redo: autosave compares it."""
        self._simple = text.isascii() and "\t" not in text
        self._widest: dict[int, int] = {}
        joined = self._newline.join(self._lines)
        self.exact = joined == text
        """False when saving would change the text (mixed newlines, form feeds...)."""
        self._text: str | None = joined

    @property
    def text(self) -> str:
        # TextArea asks for the whole text once per rendered line; join once per edit.
        if self._text is None:
            self._text = self._newline.join(self._lines)
        return self._text

    def get_size(self, tab_width: int) -> Size:
        widest = self._widest.get(tab_width)
        if widest is None:
            if self._simple:
                widest = max(map(len, self._lines), default=0)
            else:
                widest = max((line_width(line, tab_width) for line in self._lines), default=0)
            self._widest[tab_width] = widest
        return Size(widest, len(self._lines))

    def snapshot(self) -> tuple[int, str]:
        """(revision, text), callable from another thread while the UI edits.

        The revision is read first and the cache is cleared before lines change
        (see ``replace_range``), so the text is never older than the revision says:
        at worst newer, which only means one more save than needed.
        """
        revision = self.revision
        cached = self._text
        return revision, cached if cached is not None else self._newline.join(self._lines)

    def replace_range(self, start: Location, end: Location, text: str) -> EditResult:
        self._text = None
        result = super().replace_range(start, end, text)
        self.revision += 1
        if self._listener is not None:
            self._listener()
        if self._widest:
            top_row = min(start, end)[0]
            bottom_row = result.end_location[0]
            changed = self._lines[top_row : bottom_row + 1]
            for tab_width, widest in self._widest.items():
                # Shrinking lines leave the estimate high: a slightly long scrollbar
                # is better than measuring every line on every keystroke.
                new_widest = max((line_width(line, tab_width) for line in changed), default=0)
                if new_widest > widest:
                    self._widest[tab_width] = new_widest
        return result


class _RowView(Sequence[Any]):
    """A read-only list whose item i is computed from line i of a document."""

    def __init__(self, document: Document, item: Callable[[int], Any]) -> None:
        self._document = document
        self._item = item

    def __len__(self) -> int:
        return self._document.line_count

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        count = self._document.line_count
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(count))]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError(index)
        return self._item(index)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building per-line tables.

    Allocating one small list per line of a large file triggers many collections
    that rescan everything: wrapping 10 MB takes 0.47 s with them, 0.17 s without.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _tab_widths(line: str, tab_width: int) -> list[int]:
    if "\t" not in line:
        return [0] if line else []
    return [width for _, width in get_tab_widths(line, tab_width)]


class FastWrappedDocument(WrappedDocument):
    """A WrappedDocument whose unwrapped (width 0) mode costs nothing per line.

    With wrapping on, it keeps the stock per-line tables but skips the wrap
    computation for lines that obviously fit, and knows its height in O(1).
    """

    _identity = False

    def wrap(self, width: int, tab_width: int | None = None) -> None:
        self._width = width
        if tab_width:
            self._tab_width = tab_width
        document = self.document
        if not width:
            self._identity = True
            self._wrap_offsets = _RowView(document, lambda _: [])  # type: ignore[assignment]
            self._line_index_to_offsets = _RowView(document, lambda i: [i])  # type: ignore[assignment]
            self._offset_to_line_info = _RowView(document, lambda i: (i, 0))  # type: ignore[assignment]
            tab = self._tab_width
            self._tab_width_cache = _RowView(  # type: ignore[assignment]
                document, lambda i: _tab_widths(document[i], tab)
            )
            return
        self._identity = False
        with _gc_paused():
            self._wrap_all(width)

    def _wrap_all(self, width: int) -> None:
        from textual._wrap import compute_wrap_offsets

        lines = self.document.lines
        tab_width = self._tab_width
        # Most lines fit and need no work: build their entries with C-speed
        # comprehensions, and loop in Python only over the lines that wrap.
        wrap_offsets: list[list[int]] = [[] for _ in lines]
        tab_width_cache: list[list[int]] = [[0] if line else [] for line in lines]
        for index in [i for i, line in enumerate(lines) if "\t" in line]:
            tab_width_cache[index] = _tab_widths(lines[index], tab_width)
        heights: dict[int, int] = {}
        for index in [
            i
            for i, line in enumerate(lines)
            if len(line) > width or not (line.isascii() and line.isprintable())
        ]:
            line = lines[index]
            if is_plain(line):
                offsets = ascii_wrap_offsets(line, width)
            else:
                offsets = compute_wrap_offsets(
                    line,
                    width,
                    tab_size=tab_width,
                    precomputed_tab_sections=get_tab_widths(line, tab_width),
                )
            if offsets:
                wrap_offsets[index] = offsets
                heights[index] = len(offsets) + 1
        offset_to_line_info: list[tuple[int, int]] = []
        line_index_to_offsets: list[list[int]] = []
        next_index = 0
        y_offset = 0
        for index, height in heights.items():  # in line order: built by ascending index
            run = range(next_index, index)
            offset_to_line_info.extend(zip(run, repeat(0)))
            line_index_to_offsets.extend([y] for y in range(y_offset, y_offset + len(run)))
            y_offset += len(run)
            offset_to_line_info.extend((index, section) for section in range(height))
            line_index_to_offsets.append(list(range(y_offset, y_offset + height)))
            y_offset += height
            next_index = index + 1
        run = range(next_index, len(lines))
        offset_to_line_info.extend(zip(run, repeat(0)))
        line_index_to_offsets.extend([y] for y in range(y_offset, y_offset + len(run)))
        self._wrap_offsets = wrap_offsets
        self._offset_to_line_info = offset_to_line_info
        self._line_index_to_offsets = line_index_to_offsets
        self._tab_width_cache = tab_width_cache

    @property
    def height(self) -> int:
        if self._identity:
            return self.document.line_count
        return len(self._offset_to_line_info)

    def wrap_range(self, start: Location, old_end: Location, new_end: Location) -> None:
        if self._identity:
            return  # the views read the document directly
        with _gc_paused():
            super().wrap_range(start, old_end, new_end)

    def get_sections(self, line_index: int) -> list[str]:
        if self._identity:
            return [self.document[line_index]]
        return super().get_sections(line_index)


class EditorArea(TextArea):
    """The editor's TextArea: plain text, fast document classes, an edit counter."""

    BINDINGS = [
        Binding("ctrl+a", "select_all", "Select all", show=False),
        Binding("ctrl+home", "cursor_document_start", "Start of text", show=False),
        Binding("ctrl+end", "cursor_document_end", "End of text", show=False),
        Binding("ctrl+shift+home", "cursor_document_start(True)", "Select to start", show=False),
        Binding("ctrl+shift+end", "cursor_document_end(True)", "Select to end", show=False),
    ]

    document: FastDocument
    edit_listener: Callable[[], None] | None = None
    """Called synchronously after every edit, undo and redo (before any message is sent).
    The autosave thread hears of a change one keystroke earlier than from ``Changed``."""

    def action_cursor_document_start(self, select: bool = False) -> None:
        self.move_cursor(self.document.start, select=select)

    def action_cursor_document_end(self, select: bool = False) -> None:
        self.move_cursor(self.document.end, select=select)

    def _set_document(self, text: str, language: str | None) -> None:
        self._highlight_query = None
        document = FastDocument(text, self._edited)
        self.document = document
        self.wrapped_document = FastWrappedDocument(document, tab_width=self.indent_width)
        self.navigator = DocumentNavigator(self.wrapped_document)
        self._build_highlight_map()
        self.move_cursor((0, 0))
        self._rewrap_and_refresh_virtual_size()

    def _edited(self) -> None:
        if self.edit_listener is not None:
            self.edit_listener()

    @property
    def revision(self) -> int:
        """Edits made since the text was loaded."""
        return self.document.revision
