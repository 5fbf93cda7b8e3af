"""File-system watching for the directory backend: one watchdog observer per store.

Many Watch objects share the observer. Each watch prefix needs two observed directories: the
prefix's own directory (recursively, for keys below it) and its parent (not recursively, for
the record ``<prefix>.json`` itself). Observed directories are shared between watches and
reference-counted; a few idle ones stay scheduled, because re-scheduling a polling watch costs
a full directory scan (wait_events opens a short-lived watch on ``events`` every call).

Polling uses our ScanObserver (scanwatch.py), much cheaper than watchdog's PollingObserver
on the event log. Event shapes differ by observer (NOTES.md): inotify reports an atomic save as
*moved* (temp -> record), polling as *created*, *modified* or *deleted* + *created*. All are
mapped to keys, and the kind is taken from whether the file exists now, so a replace never
shows up as a lasting "delete".
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.inotify import InotifyEmitter, InotifyObserver

from shared_store.base import Change, Watch
from shared_store.errors import StoreError, StoreUnavailable
from shared_store.keys import RESERVED_KEYS, RESERVED_TOP, validate_key
from shared_store.scanwatch import ScanObserver

logger = logging.getLogger(__name__)

#: Idle observed directories kept scheduled for reuse.
IDLE_KEEP = 16

# inotify: IN_CLOSE_WRITE (FileClosedEvent) instead of IN_MODIFY, which fires on every write().
_INOTIFY_EVENTS = [
    FileCreatedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
    DirDeletedEvent, DirMovedEvent,
]
_POLLING_EVENTS = [
    FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent,
    DirDeletedEvent, DirMovedEvent,
]


_ScheduleKey = tuple[str, bool]  # (directory, recursive)


@dataclass
class _Scheduled:
    handle: ObservedWatch
    users: int = 0


class WatchHub:
    """Routes file-system events under ``root`` to the Watch objects registered with it.

    Locking: watchdog calls our handler while holding its observer lock, and schedule() /
    unschedule() take that lock too. So ``_sched_lock`` (held around schedule/unschedule) is
    never taken by the handler, and ``_registry_lock`` (taken by the handler) is never held
    while calling into the observer: no lock-order cycle.
    """

    def __init__(self, root: str, *, polling: bool, poll_interval: float = 0.1) -> None:
        self.root = root
        self.polling = polling
        self._sched_lock = threading.Lock()
        self._scheduled: dict[_ScheduleKey, _Scheduled] = {}
        self._idle: OrderedDict[_ScheduleKey, None] = OrderedDict()
        self._registry_lock = threading.Lock()
        self._watches: dict[Watch, list[_ScheduleKey]] = {}
        self._live_keys: set[_ScheduleKey] = set()  # mirror of _scheduled for the handler
        self._dead: set[_ScheduleKey] = set()  # directories gone: unschedule at next chance
        self._handler = _Handler(self)
        self._observer: BaseObserver = (
            ScanObserver(root, timeout=poll_interval) if polling else _PromptInotifyObserver()
        )
        self._observer.daemon = True
        self._observer.start()
        self._closed = False

    def add(self, watch: Watch) -> None:
        """Start delivering changes under ``watch.prefix`` to ``watch``."""
        prefix_dir = os.path.join(self.root, watch.prefix) if watch.prefix else self.root
        needs = [(prefix_dir, True)]
        if watch.prefix:
            needs.append((os.path.dirname(prefix_dir), False))
        with self._sched_lock:
            if self._closed:
                raise StoreError("the store is closed; open it again with open_store()")
            self._drop_dead()
            used: list[_ScheduleKey] = []
            try:
                for path, recursive in needs:
                    used.append(self._use(path, recursive))
            except BaseException:
                self._release(used)
                raise
            with self._registry_lock:
                self._watches[watch] = used

    def remove(self, watch: Watch) -> None:
        with self._sched_lock:
            with self._registry_lock:
                used = self._watches.pop(watch, [])
            self._release(used)
            self._drop_dead()

    def close(self) -> None:
        with self._sched_lock:
            self._closed = True
        with self._registry_lock:
            watches = list(self._watches)
        for watch in watches:
            watch.close()  # calls remove()
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout=5)

    # -- scheduling (under _sched_lock) --------------------------------------------------

    def _use(self, path: str, recursive: bool) -> _ScheduleKey:
        """Schedule ``path`` (or reuse a schedule that covers it); returns the schedule's key."""
        covering = self._covering(path, recursive)
        if covering is None:
            events = _POLLING_EVENTS if self.polling else _INOTIFY_EVENTS
            try:
                handle = self._observer.schedule(
                    self._handler, path, recursive=recursive, event_filter=events
                )
            except OSError as exc:
                raise StoreError(
                    f"cannot watch {path}: {exc}; if the inotify limit is reached raise "
                    f"fs.inotify.max_user_watches, or open the store with ?watch=poll"
                ) from exc
            covering = (path, recursive)
            self._scheduled[covering] = _Scheduled(handle)
            with self._registry_lock:
                self._live_keys.add(covering)
        self._scheduled[covering].users += 1
        self._idle.pop(covering, None)
        return covering

    def _release(self, used: list[_ScheduleKey]) -> None:
        for key in used:
            scheduled = self._scheduled.get(key)
            if scheduled is None:
                continue  # dropped when its directory went away
            scheduled.users -= 1
            if scheduled.users == 0:
                self._idle[key] = None
        while len(self._idle) > IDLE_KEEP:
            key, _ = self._idle.popitem(last=False)
            self._unschedule(key)

    def _covering(self, path: str, recursive: bool) -> _ScheduleKey | None:
        """A schedule that already sees every change ``(path, recursive)`` would."""
        for key in self._scheduled:
            watched, watched_recursive = key
            if watched_recursive and (path == watched or path.startswith(watched + "/")):
                return key
            if not recursive and not watched_recursive and path == watched:
                return key
        return None

    def _unschedule(self, key: _ScheduleKey) -> None:
        self._idle.pop(key, None)
        scheduled = self._scheduled.pop(key)
        with self._registry_lock:
            self._live_keys.discard(key)
            self._dead.discard(key)
        # KeyError/OSError: its emitter stopped already (directory removed).
        with contextlib.suppress(KeyError, OSError):
            self._observer.unschedule(scheduled.handle)

    def _drop_dead(self) -> None:
        """Unschedule directories that vanished, so that new watches schedule them afresh."""
        with self._registry_lock:
            dead = list(self._dead)
        for key in dead:
            if key in self._scheduled:
                self._unschedule(key)

    # -- dispatch (observer thread, observer lock held) ----------------------------------

    def dispatch(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirDeletedEvent | DirMovedEvent):
            self._directory_gone(os.fsdecode(event.src_path))
            return
        changes: list[Change] = []
        paths = [os.fsdecode(event.src_path)]
        if isinstance(event, FileMovedEvent):
            paths.append(os.fsdecode(event.dest_path))
        for path in paths:
            key = self.key_for(path)
            if key is not None:
                changes.append(Change(key, "put" if os.path.exists(path) else "delete"))
        if not changes:
            return
        with self._registry_lock:
            watches = list(self._watches)
        for watch in watches:
            watch._deliver(changes)

    def _directory_gone(self, path: str) -> None:
        """A directory we rely on vanished: its watches can no longer see changes."""
        with self._registry_lock:
            gone = {key for key in self._live_keys
                    if key[0] == path or key[0].startswith(path + "/")}
            self._dead |= gone
            affected = [watch for watch, used in self._watches.items()
                        if not gone.isdisjoint(used)]
        for watch in affected:
            watch._fail(StoreUnavailable(
                f"the watched directory {path} was removed or moved; restore the store, "
                f"then open it again"
            ))

    def key_for(self, path: str) -> str | None:
        """The record key stored at ``path``, or None for temp files and non-record files."""
        if not path.startswith(self.root + "/") or not path.endswith(".json"):
            return None
        key = path[len(self.root) + 1:-5]
        if key in RESERVED_KEYS or key.split("/", 1)[0] in RESERVED_TOP:
            return None
        try:
            return validate_key(key)
        except StoreError:
            return None  # hidden temp files, hand-made files with odd names


class _Handler(FileSystemEventHandler):
    def __init__(self, hub: WatchHub) -> None:
        super().__init__()
        self._hub = hub

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._hub.dispatch(event)
        except Exception:  # an exception here would kill the shared observer thread
            logger.exception("error while dispatching %r", event)


class _PromptInotifyEmitter(InotifyEmitter):
    """An inotify emitter that never holds back a rename.

    watchdog keeps an IN_MOVED_FROM for up to 0.5 s to pair it with its IN_MOVED_TO, and its
    reader *sleeps* through that delay (DelayedQueue.get) even when the IN_MOVED_TO arrives a
    microsecond later, which happens whenever one inotify read returns the first half of a
    rename. Every atomic save is a rename, so under load ~3 % of changes reached us ~0.5 s
    late (docs/performance.md, shared store). We map source and destination to keys independently,
    so pairing buys nothing: no delay.
    """

    def on_thread_start(self) -> None:
        super().on_thread_start()
        grouper = getattr(self._inotify, "_move_event_grouper", None)
        queue = getattr(grouper, "_queue", None)
        if queue is not None and hasattr(queue, "delay"):
            queue.delay = 0.0
        else:  # another watchdog version: correct still, only sometimes 0.5 s late
            logger.debug("cannot disable watchdog's move-pairing delay on %s", self.watch.path)


class _PromptInotifyObserver(InotifyObserver):
    """InotifyObserver whose emitters are _PromptInotifyEmitter."""

    def __init__(self) -> None:
        super().__init__()
        self._emitter_class = _PromptInotifyEmitter
