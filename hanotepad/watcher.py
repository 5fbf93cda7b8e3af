"""Notice when the edited file may have changed on disk (watchdog).

Imported lazily by the app, after its first screen, to keep start-up fast.

The watcher only says "look again": it watches the file's folder and calls
``on_change`` from watchdog's thread for any event that names the file, in any
shape (modified, created, deleted, or moved onto it, which is how atomic saves
arrive with inotify; polling reports them as deleted + created). Whether the
change is real, or our own save, is decided by comparing disk stamps
(``DocumentFile.check_disk``), not by the event.

inotify does not see writes made by other machines on a network filesystem,
so on NFS, CIFS and the like the watcher polls. ``HANOTEPAD_WATCH=poll`` or
``inotify`` overrides the choice.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.25
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "ceph", "glusterfs", "lustre"}
)


def filesystem_type(path: Path, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the filesystem holding ``path`` (Linux), or None if unknown."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best_mount, best_type = "", None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount_point = fields[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best_mount):
            best_mount, best_type = mount_point, right.split()[0]
    return best_type


def should_poll(path: Path) -> bool:
    choice = os.environ.get("HANOTEPAD_WATCH", "").strip().lower()
    if choice in ("poll", "polling"):
        return True
    if choice == "inotify":
        return False
    return filesystem_type(path.parent) in NETWORK_FILESYSTEMS


class FileWatcher:
    """Calls ``on_change()`` (from a background thread) when the watched file may have changed."""

    def __init__(self, on_change: Callable[[], None], *, polling: bool | None = None) -> None:
        self._on_change = on_change
        self._polling = polling
        self._lock = threading.Lock()
        self._observer: Any = None
        self._target: str | None = None
        self.mode: str | None = None
        """``inotify`` or ``polling`` once watching."""

    @property
    def target(self) -> str | None:
        return self._target

    def watch(self, path: Path) -> None:
        """Watch ``path`` (replacing any previous file). Blocking: call from a worker."""
        target = os.path.realpath(path)
        polling = self._polling if self._polling is not None else should_poll(Path(target))
        with self._lock:
            self._stop_locked()
            self._target = target
            self._observer = self._start(Path(target).parent, polling)

    def _start(self, folder: Path, polling: bool) -> Any:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        handler = _Handler(self)
        if not polling:
            try:
                observer = Observer()
                observer.schedule(handler, str(folder), recursive=False)
                observer.start()
                self.mode = "inotify"
                return observer
            except OSError as error:
                logger.warning("inotify unavailable for %s (%s): polling instead", folder, error)
        observer = PollingObserver(timeout=POLL_INTERVAL)
        try:
            observer.schedule(handler, str(folder), recursive=False)
            observer.start()
        except OSError as error:
            logger.warning("cannot watch %s: %s", folder, error)
            self.mode = None
            return None
        self.mode = "polling"
        return observer

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()
            self._target = None

    def _stop_locked(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer is not threading.current_thread():
                observer.join(timeout=2)

    def _event(self, event: FileSystemEvent) -> None:
        target = self._target
        if target is None or event.is_directory:
            return
        paths = (event.src_path, getattr(event, "dest_path", "") or "")
        if target in (os.fsdecode(path) for path in paths):
            self._on_change()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: FileWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._event(event)
        except Exception:  # a watchdog thread must not die on us
            logger.exception("file watcher callback failed")
