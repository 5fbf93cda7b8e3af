"""Find and replace as pure functions over lines."""

from __future__ import annotations

from hanotepad.search import Match, find, matches_at, replace_all

LINES = ["The cat sat.", "A cat, a Cat, a CAT.", "", "dogs"]


def test_find_next_from_the_cursor() -> None:
    assert find(LINES, "cat", (0, 0)) == Match((0, 4), (0, 7))
    assert find(LINES, "cat", (0, 7)) == Match((1, 2), (1, 5))


def test_find_wraps_around_to_the_start() -> None:
    assert find(LINES, "the", (3, 0)) == Match((0, 0), (0, 3))


def test_smart_case_lower_query_ignores_case() -> None:
    found = []
    start = (1, 0)
    for _ in range(3):
        match = find(LINES, "cat", start)
        assert match is not None
        found.append(match.start)
        start = match.end
    assert found == [(1, 2), (1, 9), (1, 16)]


def test_smart_case_capital_query_matches_case() -> None:
    assert find(LINES, "Cat", (0, 0)) == Match((1, 9), (1, 12))


def test_find_previous() -> None:
    assert find(LINES, "cat", (1, 9), backward=True) == Match((1, 2), (1, 5))
    assert find(LINES, "cat", (0, 0), backward=True) == Match((1, 16), (1, 19))


def test_no_match_and_empty_query() -> None:
    assert find(LINES, "zebra", (0, 0)) is None
    assert find(LINES, "", (0, 0)) is None


def test_a_match_at_the_cursor_is_found_after_wrapping() -> None:
    assert find(["abc"], "abc", (0, 1)) == Match((0, 0), (0, 3))


def test_matches_at_checks_a_selection() -> None:
    assert matches_at(LINES, "cat", (1, 2), (1, 5))
    assert matches_at(LINES, "cat", (1, 5), (1, 2))
    assert not matches_at(LINES, "cat", (1, 2), (1, 6))
    assert not matches_at(LINES, "cat", (0, 0), (1, 0))


def test_replace_all_is_one_edit_from_first_to_last_match() -> None:
    plan = replace_all(LINES, "cat", "dog")
    assert plan is not None
    assert plan.count == 4
    assert (plan.start, plan.end) == ((0, 4), (1, 19))
    assert plan.text == "dog sat.\nA dog, a dog, a dog"


def test_replacement_text_is_literal() -> None:
    plan = replace_all(["a.b"], ".", r"\1$0")
    assert plan is not None and plan.text == r"\1$0"


def test_unicode_locations_are_code_points() -> None:
    assert find(["héllo wörld"], "wörld", (0, 0)) == Match((0, 6), (0, 11))
