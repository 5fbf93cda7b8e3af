"""Find and replace over a document's lines, as pure functions.

Queries are single-line literals (they come from a one-line input). Matching is
case-insensitive unless the query has a capital letter ("smart case").
Locations are ``(row, column)`` as in Textual's TextArea.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

Location = tuple[int, int]


@dataclass(frozen=True)
class Match:
    start: Location
    end: Location


@dataclass(frozen=True)
class ReplaceAll:
    """Replace the text between ``start`` and ``end`` with ``text``: ``count`` matches."""

    start: Location
    end: Location
    text: str
    count: int


def compile_query(query: str) -> re.Pattern[str]:
    flags = 0 if any(char.isupper() for char in query) else re.IGNORECASE
    return re.compile(re.escape(query), flags)


def _joined(lines: Sequence[str]) -> str:
    return "\n".join(lines)


def _index(lines: Sequence[str], location: Location) -> int:
    row, column = location
    row = max(0, min(row, len(lines) - 1))
    column = max(0, min(column, len(lines[row])))
    return sum(map(len, lines[:row])) + row + column


def _location(text: str, index: int) -> Location:
    row = text.count("\n", 0, index)
    line_start = text.rfind("\n", 0, index) + 1
    return row, index - line_start


def find(
    lines: Sequence[str], query: str, start: Location, *, backward: bool = False
) -> Match | None:
    """The next match after ``start`` (or the previous one before it), wrapping around."""
    if not query or not lines:
        return None
    pattern = compile_query(query)
    text = _joined(lines)
    index = _index(lines, start)
    if backward:
        found = _last_match(pattern, text, 0, index) or _last_match(pattern, text, index, len(text))
    else:
        found = pattern.search(text, index) or pattern.search(text, 0, index + len(query) - 1)
    if found is None:
        return None
    return Match(_location(text, found.start()), _location(text, found.end()))


def _last_match(pattern: re.Pattern[str], text: str, start: int, end: int) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text, start, end):  # noqa: B007 - we want the final one
        pass
    return last


def matches_at(lines: Sequence[str], query: str, start: Location, end: Location) -> bool:
    """True if the text between ``start`` and ``end`` is exactly one match of ``query``."""
    if not query or start[0] != end[0] or start[0] >= len(lines):
        return False
    row = start[0]
    first, last = sorted((start[1], end[1]))
    return compile_query(query).fullmatch(lines[row], first, last) is not None


def replace_all(lines: Sequence[str], query: str, replacement: str) -> ReplaceAll | None:
    """One edit that replaces every match, spanning the first to the last match."""
    if not query or not lines:
        return None
    pattern = compile_query(query)
    text = _joined(lines)
    spans = [match.span() for match in pattern.finditer(text)]
    if not spans:
        return None
    first, last = spans[0][0], spans[-1][1]
    new_text, count = pattern.subn(lambda _: replacement, text[first:last])
    return ReplaceAll(_location(text, first), _location(text, last), new_text, count)
