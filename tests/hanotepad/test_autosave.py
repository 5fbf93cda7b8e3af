"""The debounce rule (with a simulated clock) and the autosave thread."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hanotepad.autosave import (
    CEILING,
    IDLE_DELAY,
    MAX_WAIT,
    Autosaver,
    Debouncer,
    LoopDebouncer,
)
from hanotepad.document import SaveOutcome, SaveStatus
from tests.helpers.wait import wait_until, wait_until_async


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


class FakeFile:
    """Stands in for DocumentFile.save: records what was written, and when."""

    def __init__(self, delay: float = 0.0, fail_first: bool = False) -> None:
        self.writes: list[tuple[float, int]] = []
        self.delay = delay
        self.fail_first = fail_first
        self.revision = 0
        self.saved = 0

    def take(self) -> Any:
        if self.revision == self.saved:
            return None
        revision = self.revision
        return lambda: self.save(revision)

    def save(self, revision: int) -> SaveOutcome:
        if self.fail_first:
            self.fail_first = False
            raise OSError("simulated crash inside a save")
        time.sleep(self.delay)
        self.saved = revision
        self.writes.append((time.monotonic(), revision))
        return SaveOutcome(SaveStatus.SAVED, Path("f"), 0, revision, duration=self.delay)


@pytest.fixture
def autosaver_for() -> Iterator[Callable[..., tuple[Autosaver, list[SaveOutcome]]]]:
    savers: list[Autosaver] = []

    def build(
        file: FakeFile, debouncer: Debouncer | None = None
    ) -> tuple[Autosaver, list[SaveOutcome]]:
        reports: list[SaveOutcome] = []
        saver = Autosaver(file.take, reports.append, debouncer=debouncer)
        saver.start()
        savers.append(saver)
        return saver, reports

    yield build
    for saver in savers:
        saver.stop()


def test_the_autosaver_writes_soon_after_a_change(autosaver_for: Any) -> None:
    file = FakeFile()
    saver, reports = autosaver_for(file)
    file.revision = 1
    changed_at = time.monotonic()
    saver.changed()
    wait_until(lambda: file.saved == 1, message="the write")
    assert file.writes[0][0] - changed_at < 2.0  # generous: only a hang fails this
    assert [outcome.revision for outcome in reports] == [1]


def test_the_autosaver_keeps_up_with_continuous_changes(autosaver_for: Any) -> None:
    file = FakeFile(delay=0.01)
    saver, _ = autosaver_for(file)
    for revision in range(1, 31):
        file.revision = revision
        saver.changed()
        time.sleep(0.01)
    wait_until(lambda: file.saved == 30, message="the last revision written")
    assert len(file.writes) < 30  # debounced: several changes per write
    assert [revision for _, revision in file.writes] == sorted(r for _, r in file.writes)


def test_nothing_to_take_means_no_write(autosaver_for: Any) -> None:
    file = FakeFile()
    saver, reports = autosaver_for(file)
    saver.changed()  # a change the buffer does not show (take() returns None)
    wait_until(lambda: not saver.pending and not saver.busy, message="the change taken")
    assert file.writes == [] and reports == []


def test_a_failing_save_does_not_stop_the_autosaver(autosaver_for: Any) -> None:
    file = FakeFile(fail_first=True)
    saver, _ = autosaver_for(file)
    file.revision = 1
    saver.changed()
    wait_until(lambda: not file.fail_first and not saver.busy, message="the failed attempt")
    file.revision = 2
    saver.changed()
    wait_until(lambda: file.saved == 2, message="the next write")


def test_stop_ends_the_thread() -> None:
    saver = Autosaver(lambda: None, lambda outcome: None)
    saver.start()
    saver.stop()
    assert not saver._thread.is_alive()


async def test_the_loop_debouncer_fires_once_per_burst_and_waits_for_done() -> None:
    fired: list[float] = []
    debounced = LoopDebouncer(lambda: fired.append(time.monotonic()))
    for _ in range(5):
        debounced.changed()
    await wait_until_async(lambda: fired, message="the first write")
    assert debounced.busy
    debounced.changed()  # during the write: waits for done()
    await asyncio.sleep(MAX_WAIT * 3)  # longer than any due time: nothing may fire
    assert len(fired) == 1
    debounced.done()
    await wait_until_async(lambda: len(fired) == 2, message="the second write")


async def test_cancel_forgets_pending_changes() -> None:
    fired: list[int] = []
    debounced = LoopDebouncer(lambda: fired.append(1))
    debounced.changed()
    debounced.cancel()
    await asyncio.sleep(MAX_WAIT * 3)  # longer than any due time: nothing may fire
    assert fired == []
