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


@dataclass
class _Scheduled:
    handle: ObservedWatch
    recursive: bool
    users: int = 0


class WatchHub:
    """Routes file-system events under ``root`` to the Watch objects registered with it."""

    def __init__(self, root: str, *, polling: bool, poll_interval: float = 0.1) -> None:
        self.root = root
        self.polling = polling
        self._lock = threading.RLock()
        self._watches: dict[Watch, list[str]] = {}
        self._scheduled: dict[str, _Scheduled] = {}
        self._idle: OrderedDict[str, None] = OrderedDict()
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
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed; open it again with open_store()")
            used: list[str] = []
            self._watches[watch] = used
            try:
                for path, recursive in needs:
                    used.append(self._use(path, recursive))
            except BaseException:
                self.remove(watch)  # give back what was taken before the failure
                raise

    def remove(self, watch: Watch) -> None:
        with self._lock:
            for path in self._watches.pop(watch, []):
                scheduled = self._scheduled.get(path)
                if scheduled is None:
                    continue
                scheduled.users -= 1
                if scheduled.users == 0:
                    self._idle[path] = None
            while len(self._idle) > IDLE_KEEP:
                path, _ = self._idle.popitem(last=False)
                self._unschedule(path)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            watches = list(self._watches)
        for watch in watches:
            watch.close()  # calls remove()
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout=5)

    # -- scheduling ----------------------------------------------------------------------

    def _use(self, path: str, recursive: bool) -> str:
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
            key = self._schedule_key(path, recursive)
            self._scheduled[key] = _Scheduled(handle, recursive)
            covering = key
        scheduled = self._scheduled[covering]
        scheduled.users += 1
        self._idle.pop(covering, None)
        return covering

    @staticmethod
    def _schedule_key(path: str, recursive: bool) -> str:
        return path + ("/**" if recursive else "/*")

    def _covering(self, path: str, recursive: bool) -> str | None:
        for key, scheduled in self._scheduled.items():
            watched = key[:-3]
            if scheduled.recursive and (path == watched or path.startswith(watched + "/")):
                return key
            if not recursive and not scheduled.recursive and path == watched:
                return key
        return None

    def _unschedule(self, key: str) -> None:
        scheduled = self._scheduled.pop(key)
        # KeyError/OSError: its emitter stopped already (directory removed).
        with contextlib.suppress(KeyError, OSError):
            self._observer.unschedule(scheduled.handle)

    # -- dispatch (observer thread) ------------------------------------------------------

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
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            watch._deliver(changes)

    def _directory_gone(self, path: str) -> None:
        """A directory we rely on vanished: its watches can no longer see changes."""
        with self._lock:
            affected = [
                watch for watch, used in self._watches.items()
                if any(key[:-3] == path or key[:-3].startswith(path + "/") for key in used)
            ]
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
    late (docs/performance-store.md). We map source and destination to keys independently,
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
