"""A cheap polling observer for stores on NFS, where inotify misses other hosts' writes.

watchdog's PollingObserver stats every file on every poll: with the event log's 10,000 files
that cost half a CPU core at a 0.1 s interval (docs/performance.md, shared store). This emitter
reads directories (which also revalidates NFS's cached listing) and tells files apart by the inode
number that readdir returns for free, so an atomic save (new inode) or a create or delete is
seen without a stat. Only in small directories does it stat each record as well, so that an
in-place hand edit is seen; in directories of more than STAT_LIMIT records (the event log,
whose files are never edited in place) only renames, creates and deletes are seen, and such a
directory is re-read only when its own mtime changed (or every FULL_SCAN_EVERY polls).

On NFS, stat and readdir answer from the client's attribute cache: mount the store with
``actimeo=0`` (or a small ``acdirmax``) or changes by other hosts show up only when it expires.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from watchdog.events import (
    DirDeletedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
)
from watchdog.observers.api import BaseObserver, EventEmitter, EventQueue, ObservedWatch

from shared_store.keys import RESERVED_TOP

logger = logging.getLogger(__name__)

STAT_LIMIT = 256
#: Big directories are re-read at least this often (in polls) even if their mtime is unchanged,
#: in case the filesystem's mtime is coarse (a create in the same tick as the last read).
FULL_SCAN_EVERY = 10
Signature = tuple[int, ...]


class ScanEmitter(EventEmitter):
    """Polls one watched directory (optionally its subtree) for record files (``*.json``)."""

    def __init__(
        self,
        event_queue: EventQueue,
        watch: ObservedWatch,
        *,
        timeout: float = 0.1,
        event_filter: list | None = None,
        store_root: str = "",
    ) -> None:
        super().__init__(event_queue, watch, timeout=timeout, event_filter=event_filter)
        self._store_root = store_root
        self._dirs: dict[str, _DirState] = {}
        self._polls = 0
        self._failing = False

    def on_thread_start(self) -> None:
        # Runs in schedule(), before it returns: changes made after watch() are never missed.
        try:
            self._dirs = self._scan()
        except OSError:
            self._dirs = {}

    def queue_events(self, timeout: float) -> None:
        if self.stopped_event.wait(timeout):
            return
        try:
            dirs = self._scan()
        except (FileNotFoundError, NotADirectoryError):
            self.queue_event(DirDeletedEvent(self.watch.path))
            self.stop()
            return
        except OSError as exc:  # EIO, ESTALE ...: often brief on NFS; keep the old state
            if not self._failing:
                logger.warning("cannot scan %s, will retry: %s", self.watch.path, exc)
                self._failing = True
            return
        self._failing = False
        previous, self._dirs = self._dirs, dirs
        for directory, old in previous.items():
            if directory not in dirs:
                for path in old.files:
                    self.queue_event(FileDeletedEvent(path))
        for directory, new in dirs.items():
            old_files = previous[directory].files if directory in previous else {}
            if new.files is old_files:
                continue  # reused unread: nothing changed there
            for path in old_files.keys() - new.files.keys():
                self.queue_event(FileDeletedEvent(path))
            for path, signature in new.files.items():
                before = old_files.get(path)
                if before is None:
                    self.queue_event(FileCreatedEvent(path))
                elif before != signature:
                    self.queue_event(FileModifiedEvent(path))

    def _scan(self) -> dict[str, _DirState]:
        self._polls += 1
        dirs: dict[str, _DirState] = {}
        self._scan_dir(os.fsdecode(self.watch.path), dirs)
        return dirs

    def _scan_dir(self, directory: str, dirs: dict[str, _DirState]) -> None:
        st = os.stat(directory)
        dir_signature = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._dirs.get(directory)
        if (
            cached is not None
            and cached.signature == dir_signature
            and len(cached.files) > STAT_LIMIT
            and (self._polls - cached.poll) < FULL_SCAN_EVERY
        ):
            # A big directory whose own mtime did not change gained or lost no entry.
            current = cached
        else:
            files, subdirs = self._read_dir(directory)
            current = _DirState(dir_signature, files, subdirs, self._polls)
        dirs[directory] = current
        for subdir in current.subdirs:
            try:
                self._scan_dir(subdir, dirs)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while we looked: its files count as deleted

    def _read_dir(self, directory: str) -> tuple[dict[str, Signature], list[str]]:
        with os.scandir(directory) as it:
            entries = [entry for entry in it if not entry.name.startswith(".")]
        small = len(entries) <= STAT_LIMIT
        files: dict[str, Signature] = {}
        subdirs: list[str] = []
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if self.watch.is_recursive and not (
                        directory == self._store_root and entry.name in RESERVED_TOP
                    ):
                        subdirs.append(entry.path)
                elif entry.name.endswith(".json"):
                    if small:
                        st = entry.stat(follow_symlinks=False)
                        files[entry.path] = (st.st_ino, st.st_mtime_ns, st.st_size)
                    else:
                        files[entry.path] = (entry.inode(),)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while we looked: the next scan reports it
        return files, subdirs


@dataclass
class _DirState:
    signature: tuple[int, int, int]
    files: dict[str, Signature]
    subdirs: list[str]
    poll: int


class ScanObserver(BaseObserver):
    """An observer whose emitters poll with ScanEmitter every ``timeout`` seconds."""

    def __init__(self, store_root: str, *, timeout: float = 0.1) -> None:
        super().__init__(ScanEmitter, timeout=timeout, store_root=store_root)
