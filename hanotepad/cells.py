"""Terminal cell widths and word-wrap offsets of text lines, fast for plain ASCII."""

from __future__ import annotations

import re

from rich.cells import cell_len

_CHUNK = re.compile(r"\S+\s*|\s+")


def line_width(line: str, tab_width: int) -> int:
    """Cells a line takes on screen, with tabs expanded."""
    if "\t" in line:
        line = line.expandtabs(tab_width)
    if line.isascii() and line.isprintable():
        return len(line)
    return cell_len(line)


def is_plain(line: str) -> bool:
    """True for printable ASCII without tabs: one cell per character."""
    return line.isascii() and line.isprintable()


def ascii_wrap_offsets(line: str, width: int) -> list[int]:
    """Where Textual's ``compute_wrap_offsets`` breaks a plain line (see ``is_plain``).

    Same word-wrap and fold rules, without the per-character cell-width lookups
    that make soft-wrapping a large file slow.
    """
    breaks: list[int] = []
    cell_offset = 0
    for match in _CHUNK.finditer(line):
        start, end = match.span()
        chunk_width = end - start
        if width - cell_offset >= chunk_width:
            cell_offset += chunk_width
        elif chunk_width > width:
            # Fold a word longer than the line into pieces of `width` cells.
            for piece_start in range(start, end, width):
                if piece_start:
                    breaks.append(piece_start)
                cell_offset = min(width, end - piece_start)
        elif cell_offset and start:
            breaks.append(start)
            cell_offset = chunk_width
    return breaks
