"""Checkpoints: MSCS registry checkpointing for files.

While a resource is online, the node service keeps a copy of a node-local directory (say the
editor's session state) in the shared store; before the resource comes online on another node,
that copy is restored there. Files only, small ones (session state), copied whole, each write
atomic (temp file + fsync + rename + directory fsync), so a reader of either side never sees a
half-written file. Editors' temp and swap files are skipped.

Deletions are mirrored only when watchdog reports them: a full `flush()` never deletes from the
store, so starting on an empty directory that was never restored cannot wipe a checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

logger = logging.getLogger(__name__)

TMP_PREFIX = ".hacluster-tmp-"
DEBOUNCE = 0.075  # s of quiet before a burst of writes is copied
MAX_DELAY = 0.5  # s: under continuous writes, copy at least this often
MAX_FILE_BYTES = 16 * 1024 * 1024
_TEMP_RE = re.compile(
    r"(^\.#|^#.*#$|^\.hacluster-|~$|[.-](tmp|temp|swp|swx|part)$|\.tmp\.|^tmp[a-z0-9_]{8}$)",
    re.IGNORECASE,
)
_WATCHED_EVENTS = {"created", "modified", "moved", "deleted", "closed"}


def is_temp_name(name: str) -> bool:
    """Temp/swap files of editors and atomic savers (and our own): never checkpointed."""
    return bool(_TEMP_RE.search(name))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_copy(src: Path, dst: Path) -> bool:
    """Copy src over dst atomically unless dst already has the same bytes; True if written."""
    data = src.read_bytes()
    with contextlib.suppress(OSError):
        if dst.is_file() and dst.stat().st_size == len(data) and dst.read_bytes() == data:
            return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f"{TMP_PREFIX}{dst.name}.{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(OSError):
            shutil.copymode(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(dst.parent)
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    _fsync_dir(path.parent)


def _files(root: Path) -> dict[Path, Path]:
    """Regular, small, non-temp files under root, by path relative to root."""
    found: dict[Path, Path] = {}
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not is_temp_name(d)]
        for name in filenames:
            path = Path(dirpath, name)
            if is_temp_name(name) or path.is_symlink() or not path.is_file():
                continue
            try:
                size = path.stat().st_size
            except OSError:  # vanished meanwhile
                continue
            if size > MAX_FILE_BYTES:
                logger.warning("checkpoint: skipping %s (larger than %d bytes)", path,
                               MAX_FILE_BYTES)
                continue
            found[path.relative_to(root)] = path
    return found


class CheckpointSync:
    """Keep `store_path` a copy of the directory `local_path` while a resource is online."""

    def __init__(self, local_path: Path, store_path: Path, debounce: float = DEBOUNCE) -> None:
        self.local_path = Path(local_path)
        self.store_path = Path(store_path)
        self.debounce = debounce
        self._cond = threading.Condition()
        self._io_lock = threading.Lock()  # one copier at a time: sync thread, flush, restore
        self._pending: set[Path] = set()
        self._first_event = 0.0
        self._last_event = 0.0
        self._stopping = False
        self._observer: Observer | None = None
        self._thread: threading.Thread | None = None

    # -- Restore (before online, on the new owner) -----------------------------------------

    def restore(self) -> int:
        """Make local_path a copy of the checkpoint; a no-op when the store has nothing.
        Returns the number of files written."""
        stored = _files(self.store_path)
        if not stored:
            return 0
        written = 0
        with self._io_lock:
            self.local_path.mkdir(parents=True, exist_ok=True)
            for rel, src in stored.items():
                written += atomic_copy(src, self.local_path / rel)
            for rel, path in _files(self.local_path).items():
                if rel not in stored:
                    _remove(path)
        logger.info("checkpoint: restored %s from %s (%d file(s) written)", self.local_path,
                    self.store_path, written)
        return written

    # -- Watch (while online) --------------------------------------------------------------

    def start(self) -> None:
        """Watch local_path and copy changes into the store (idempotent)."""
        if self._observer is not None:
            return
        self.local_path.mkdir(parents=True, exist_ok=True)
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._sync_loop, daemon=True,
                                        name=f"checkpoint-{self.local_path.name}")
        self._thread.start()
        observer = Observer()
        observer.schedule(_Handler(self), str(self.local_path), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self.flush()  # what was written before the watch began

    def flush(self) -> int:
        """Copy every changed local file into the store now; returns the number written."""
        written = 0
        with self._io_lock:
            for rel, src in _files(self.local_path).items():
                written += self._copy(src, rel)
        return written

    def stop(self) -> None:
        """Stop watching after copying what is pending and a final full flush (idempotent)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(5.0)
        self._stop_thread()
        self.flush()

    def delete(self) -> None:
        """Remove the checkpoint from the store (the resource is gone for good)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(5.0)
        self._stop_thread(drain=False)
        if not self.store_path.exists():
            return
        # Rename first: nobody ever restores from a half-deleted tree.
        doomed = self.store_path.with_name(f"{TMP_PREFIX}{self.store_path.name}.deleting")
        with self._io_lock:
            _remove(doomed)
            os.replace(self.store_path, doomed)
            _remove(doomed)

    # -- Internals -----------------------------------------------------------------------------

    def note(self, path: str | bytes) -> None:
        """A watchdog event touched `path`: copy (or delete) it after the debounce."""
        path = Path(os.fsdecode(path))
        try:
            rel = path.relative_to(self.local_path)
        except ValueError:
            return
        if rel == Path(".") or any(is_temp_name(part) for part in rel.parts):
            return
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first_event = now
            self._last_event = now
            self._pending.add(rel)
            self._cond.notify_all()

    def _sync_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                while self._pending and not self._stopping:
                    due = min(self._last_event + self.debounce, self._first_event + MAX_DELAY)
                    if due <= time.monotonic():
                        break
                    self._cond.wait(due - time.monotonic())
                batch, self._pending = self._pending, set()
                stopping = self._stopping
            for rel in sorted(batch):
                try:
                    self._sync(rel)
                except OSError as exc:
                    logger.warning("checkpoint: cannot copy %s: %s", rel, exc)
            if stopping:
                return

    def _stop_thread(self, drain: bool = True) -> None:
        with self._cond:
            self._stopping = True
            if not drain:
                self._pending.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def _sync(self, rel: Path) -> None:
        local = self.local_path / rel
        with self._io_lock:
            if local.is_symlink():
                return
            if local.is_file():
                self._copy(local, rel)
            elif local.is_dir():  # a directory moved in arrives as one event
                for sub_rel, src in _files(local).items():
                    self._copy(src, rel / sub_rel)
            else:
                stored = self.store_path / rel
                if stored.exists():
                    logger.debug("checkpoint: %s deleted locally; removing it", rel)
                    _remove(stored)

    def _copy(self, src: Path, rel: Path) -> int:
        """Under _io_lock. A file that vanishes meanwhile is skipped: its delete event follows."""
        try:
            if src.stat().st_size > MAX_FILE_BYTES:
                logger.warning("checkpoint: skipping %s (larger than %d bytes)", src,
                               MAX_FILE_BYTES)
                return 0
            return int(atomic_copy(src, self.store_path / rel))
        except FileNotFoundError:
            return 0


class _Handler(FileSystemEventHandler):
    """Accepts both shapes of an atomic save: moved (inotify) and deleted + created (polling)."""

    def __init__(self, sync: CheckpointSync) -> None:
        self._sync = sync

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _WATCHED_EVENTS:
            return
        self._sync.note(event.src_path)
        dest = getattr(event, "dest_path", "")
        if dest:
            self._sync.note(dest)
