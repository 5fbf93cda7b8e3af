"""The debounce rule, with a simulated clock."""

from __future__ import annotations

import random

import pytest

from hanotepad.autosave import CEILING, IDLE_DELAY, MAX_WAIT, Debouncer


def test_nothing_pending_means_nothing_due() -> None:
    debouncer = Debouncer()
    assert not debouncer.pending
    assert debouncer.due_at() is None
    assert not debouncer.is_due(1e9)


def test_a_single_change_is_written_after_the_idle_delay() -> None:
    debouncer = Debouncer()
    debouncer.changed(10.0)
    assert debouncer.due_at() == pytest.approx(10.0 + IDLE_DELAY)
    assert not debouncer.is_due(10.0 + IDLE_DELAY / 2)
    assert debouncer.is_due(10.0 + IDLE_DELAY)


def test_continuous_typing_is_written_within_the_max_wait() -> None:
    debouncer = Debouncer()
    for step in range(10):  # a key every 50 ms: the idle delay never passes
        debouncer.changed(step * 0.05)
    assert debouncer.due_at() == pytest.approx(MAX_WAIT)


def test_taking_a_snapshot_starts_a_new_window() -> None:
    debouncer = Debouncer()
    debouncer.changed(0.0)
    debouncer.taken()
    assert not debouncer.pending
    debouncer.changed(5.0)
    assert debouncer.due_at() == pytest.approx(5.0 + IDLE_DELAY)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(0.001, MAX_WAIT), (0.1, 0.4), (0.2, 0.8), (5.0, CEILING)],
)
def test_slow_writes_stretch_the_max_wait_up_to_the_ceiling(
    duration: float, expected: float
) -> None:
    debouncer = Debouncer()
    debouncer.written(duration)
    assert debouncer.effective_max_wait() == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(20))
def test_every_change_is_taken_within_the_max_wait(seed: int) -> None:
    """Simulate bursts of typing and a writer that starts as soon as a write is due."""
    rng = random.Random(seed)
    debouncer = Debouncer()
    now = 0.0
    untaken: list[float] = []
    worst = 0.0
    for _ in range(500):
        now += rng.choice([0.01, 0.03, 0.08, 0.3])
        due = debouncer.due_at()
        if due is not None and due <= now:
            worst = max(worst, due - untaken[0])
            untaken.clear()
            debouncer.taken()
        debouncer.changed(now)
        untaken.append(now)
    assert worst <= MAX_WAIT + 1e-9
