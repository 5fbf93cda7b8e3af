"""When to write: the debounce rule shared by autosave and the session.

Pure logic over a clock the caller passes in, so it is tested without sleeping.
A write is due ``idle`` seconds after the last change (typing paused), and no
later than ``max_wait`` after the first unwritten change (typing goes on). With
the defaults, text typed more than about a quarter of a second ago is on disk.
When writes get slow (a big file), ``max_wait`` stretches to a few times the
last write's duration, up to ``ceiling``, so that the disk is not kept busy
rewriting the same large file back to back.
"""

from __future__ import annotations

from dataclasses import dataclass

IDLE_DELAY = 0.1
MAX_WAIT = 0.15
CEILING = 1.0
SLOW_WRITE_FACTOR = 4.0


@dataclass
class Debouncer:
    idle: float = IDLE_DELAY
    max_wait: float = MAX_WAIT
    ceiling: float = CEILING
    first_change: float | None = None
    """When the oldest change not yet taken by a write happened."""
    last_change: float | None = None
    last_duration: float = 0.0

    @property
    def pending(self) -> bool:
        """Changes exist that no write has taken yet."""
        return self.first_change is not None

    def effective_max_wait(self) -> float:
        return min(self.ceiling, max(self.max_wait, SLOW_WRITE_FACTOR * self.last_duration))

    def changed(self, now: float) -> None:
        if self.first_change is None:
            self.first_change = now
        self.last_change = now

    def due_at(self) -> float | None:
        """The time the next write should start, or None if nothing is pending."""
        if self.first_change is None or self.last_change is None:
            return None
        return min(self.last_change + self.idle, self.first_change + self.effective_max_wait())

    def is_due(self, now: float) -> bool:
        due = self.due_at()
        return due is not None and now >= due

    def taken(self) -> None:
        """A write took a snapshot of everything changed so far."""
        self.first_change = None
        self.last_change = None

    def written(self, duration: float) -> None:
        self.last_duration = duration
