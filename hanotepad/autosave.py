"""When to write (the debounce rule shared by autosave and the session), and the autosaver.

Pure logic over a clock the caller passes in, so it is tested without sleeping.
A write is due ``idle`` seconds after the last change (typing paused), and no
later than ``max_wait`` after the first unwritten change (typing goes on). With
the defaults, text typed more than about a quarter of a second ago is on disk.
When writes get slow (a big file), ``max_wait`` stretches to a few times the
last write's duration, up to ``ceiling``, so that the disk is not kept busy
rewriting the same large file back to back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hanotepad.document import SaveOutcome, SaveStatus

logger = logging.getLogger(__name__)

IDLE_DELAY = 0.05
MAX_WAIT = 0.1
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


Save = Callable[[], SaveOutcome]


class Autosaver:
    """Writes the buffer on the ``Debouncer`` schedule, from a thread of its own.

    Why a thread and not UI-loop timers: while keys arrive fast, Textual's loop is
    busy rendering and a timer callback can run 100 ms late; then the save itself
    waits for the loop again to report back. The debounce decision and the write
    happen here instead, so text reaches the disk on time however busy the screen is.

    ``take()`` runs on this thread: it returns a callable that writes one snapshot
    (taken at that moment) and returns the outcome, or None when there is nothing
    to write (no file, read-only, a conflict waiting for the user). ``report`` and
    ``started`` are called with the outcome / before writing, also on this thread.
    """

    def __init__(
        self,
        take: Callable[[], Save | None],
        report: Callable[[SaveOutcome], None],
        *,
        started: Callable[[], None] | None = None,
        debouncer: Debouncer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._take = take
        self._report = report
        self._started = started or (lambda: None)
        self._debouncer = debouncer or Debouncer()
        self._clock = clock
        self._condition = threading.Condition()
        self._stopped = False
        self.busy = False
        """True while a snapshot is being written."""
        self._thread = threading.Thread(target=self._run, name="hanotepad-autosave", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def changed(self) -> None:
        """Note a change (from any thread); the write follows on the debounce schedule."""
        with self._condition:
            self._debouncer.changed(self._clock())
            self._condition.notify()

    @property
    def pending(self) -> bool:
        with self._condition:
            return self._debouncer.pending

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the write in progress, if any; pending changes are the caller's."""
        with self._condition:
            self._stopped = True
            self._condition.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and not self._debouncer.is_due(self._clock()):
                    due = self._debouncer.due_at()
                    self._condition.wait(None if due is None else max(0.0, due - self._clock()))
                if self._stopped:
                    return
                self._debouncer.taken()
                self.busy = True
            try:
                self._write_once()
            except Exception:  # the thread must outlive any one failure
                logger.exception("autosave failed")
            finally:
                self.busy = False

    def _write_once(self) -> None:
        save = self._take()
        if save is None:
            return
        self._started()
        outcome = save()
        if outcome.status is SaveStatus.SAVED:
            with self._condition:
                self._debouncer.written(outcome.duration)
        # Not busy before the report: the UI may handle it at once, and a write still marked
        # busy would leave the status bar saying "saving" after the text is on disk.
        self.busy = False
        self._report(outcome)


class LoopDebouncer:
    """The same rule on the UI's asyncio loop, for writes prepared from the widgets.

    The session reads the cursor and scroll from the widgets, so its snapshot is taken
    on the UI thread: ``fire()`` is called there when a write is due; it starts the
    write (in a worker) and whoever sees it finish calls ``done()``. Call everything
    from the loop's thread.
    """

    def __init__(
        self,
        fire: Callable[[], None],
        debouncer: Debouncer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fire = fire
        self._debouncer = debouncer or Debouncer()
        self._clock = clock
        self._handle: asyncio.TimerHandle | None = None
        self.busy = False
        """A write is under way."""

    def changed(self) -> None:
        self._debouncer.changed(self._clock())
        self._arm()

    def done(self) -> None:
        """The write finished; changes made meanwhile get their own write."""
        self.busy = False
        self._arm()

    def cancel(self) -> None:
        """Forget pending changes: the caller writes them now itself."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._debouncer.taken()

    def _arm(self) -> None:
        # Not Textual's set_timer: a one-shot timer whose deadline has passed when its
        # task runs (a busy loop, or a delay of 0) is skipped there, never fired.
        due = self._debouncer.due_at()
        if self._handle is None and not self.busy and due is not None:
            delay = max(0.0, due - self._clock())
            self._handle = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._handle = None
        if self.busy or not self._debouncer.pending:
            return
        if not self._debouncer.is_due(self._clock()):
            self._arm()
            return
        self._debouncer.taken()
        self.busy = True
        try:
            self._fire()
        except Exception:
            self.busy = False
            logger.exception("debounced write failed to start")
