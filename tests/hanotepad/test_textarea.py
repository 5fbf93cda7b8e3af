"""The fast document classes give the same answers as Textual's own."""

from __future__ import annotations

import random
import string

import pytest
from textual._wrap import compute_wrap_offsets
from textual.document._document import Document
from textual.document._wrapped_document import WrappedDocument
from textual.geometry import Offset

from hanotepad.cells import ascii_wrap_offsets
from hanotepad.textarea import FastDocument, FastWrappedDocument

TAB = 4
WIDTHS = [0, 1, 3, 8, 20, 80]


def random_line(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return ""
    if kind < 0.2:
        return rng.choice(["\tindented", "a\tb\tc", "\t\t", "x" * rng.randint(30, 120)])
    if kind < 0.3:
        wide = ["漢", "字", "é", " ", "a", "😀"]
        return "".join(rng.choice(wide) for _ in range(rng.randint(1, 40)))
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 12)))
             for _ in range(rng.randint(1, 15))]
    return rng.choice([" ", "  ", " , "]).join(words)


def random_text(rng: random.Random, lines: int) -> str:
    return "\n".join(random_line(rng) for _ in range(lines))


def assert_same_view(fast: FastWrappedDocument, stock: WrappedDocument, rng: random.Random) -> None:
    document = stock.document
    assert fast.height == stock.height
    assert list(fast._offset_to_line_info) == list(stock._offset_to_line_info)
    for line_index in range(document.line_count):
        assert fast.get_offsets(line_index) == stock.get_offsets(line_index)
        assert fast.get_tab_widths(line_index) == stock.get_tab_widths(line_index)
        assert fast.get_sections(line_index) == stock.get_sections(line_index)
    for _ in range(30):
        row = rng.randrange(document.line_count)
        column = rng.randint(0, len(document[row]))
        assert fast.location_to_offset((row, column)) == stock.location_to_offset((row, column))
        offset = Offset(rng.randint(0, 90), rng.randint(0, stock.height + 2))
        assert fast.offset_to_location(offset) == stock.offset_to_location(offset)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("width", WIDTHS)
def test_wrapping_matches_textual(seed: int, width: int) -> None:
    rng = random.Random(seed * 100 + width)
    text = random_text(rng, 60)
    fast = FastWrappedDocument(FastDocument(text), width=width, tab_width=TAB)
    stock = WrappedDocument(Document(text), width=width, tab_width=TAB)
    assert_same_view(fast, stock, rng)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("width", [0, 8, 30])
def test_edits_keep_the_views_equal(seed: int, width: int) -> None:
    rng = random.Random(seed)
    text = random_text(rng, 30)
    fast_doc, stock_doc = FastDocument(text), Document(text)
    fast = FastWrappedDocument(fast_doc, width=width, tab_width=TAB)
    stock = WrappedDocument(stock_doc, width=width, tab_width=TAB)
    for _ in range(40):
        row = rng.randrange(stock_doc.line_count)
        start = (row, rng.randint(0, len(stock_doc[row])))
        end_row = min(stock_doc.line_count - 1, row + rng.choice([0, 0, 1, 2]))
        end = (end_row, rng.randint(0, len(stock_doc[end_row])))
        start, end = sorted((start, end))
        insert = rng.choice(["", "x", "\n", "word ", "two\nlines\t", random_line(rng)])
        fast_result = fast_doc.replace_range(start, end, insert)
        stock_result = stock_doc.replace_range(start, end, insert)
        assert fast_result == stock_result
        fast.wrap_range(start, end, fast_result.end_location)
        stock.wrap_range(start, end, stock_result.end_location)
        assert fast_doc.text == stock_doc.text
    assert_same_view(fast, stock, rng)


@pytest.mark.parametrize("seed", range(200))
def test_ascii_wrap_offsets_match_textual(seed: int) -> None:
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_letters + ",.;", k=rng.randint(1, 25)))
             for _ in range(rng.randint(0, 30))]
    line = "".join(word + " " * rng.randint(0, 3) for word in words)
    for width in (1, 2, 7, 10, 33, 80):
        assert ascii_wrap_offsets(line, width) == compute_wrap_offsets(line, width, TAB)


def test_document_size_tracks_the_widest_line() -> None:
    text = "short\n" + "x" * 50 + "\n\tTabbed\n漢字"
    fast, stock = FastDocument(text), Document(text)
    assert fast.get_size(TAB) == stock.get_size(TAB)
    fast.replace_range((0, 0), (0, 0), "y" * 70)
    stock.replace_range((0, 0), (0, 0), "y" * 70)
    assert fast.get_size(TAB) == stock.get_size(TAB)
    fast.replace_range((0, 0), (0, 75), "")
    stock.replace_range((0, 0), (0, 75), "")
    # Shrinking may leave the estimate high, never low.
    assert fast.get_size(TAB).width >= stock.get_size(TAB).width
    assert fast.get_size(TAB).height == stock.get_size(TAB).height


def test_revision_counts_every_edit_and_the_text_follows() -> None:
    document = FastDocument("abc")
    assert (document.revision, document.text) == (0, "abc")
    document.replace_range((0, 3), (0, 3), "d")
    document.replace_range((0, 0), (0, 1), "")
    assert (document.revision, document.text) == (2, "bcd")


@pytest.mark.parametrize(
    ("text", "exact"),
    [("a\nb\n", True), ("a\r\nb\r\n", True), ("", True), ("a\r\nb\nc", False),
     ("page\x0cbreak", False), ("a\u2028b", False)],
)
def test_exact_says_whether_saving_would_change_the_text(text: str, exact: bool) -> None:
    assert FastDocument(text).exact is exact
