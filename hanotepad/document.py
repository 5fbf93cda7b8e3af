"""The link between the text being edited and its file on disk.

``DocumentFile`` decides whether a snapshot of the buffer may be written, and
whether the file changed on disk behind our back. It is called from worker
threads and, on exit, from the UI thread; one lock orders saves and disk
checks, so a check never sees our own save half-recorded, and an older snapshot
never overwrites a newer one.

The file may be shared with another copy of the editor (after a cluster
failover, the editor runs again on another node). Hence the rule: never write
over a version of the file we have not seen. Each save first compares the file
with the stamp of the version we last read or wrote; if it changed, the save
is refused as a conflict and the user decides.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hanotepad.fileio import (
    SIZE_LIMIT,
    DiskStamp,
    FileProblem,
    LoadedFile,
    atomic_write,
    digest_of,
    encode,
    read_text_file,
    stat_or_none,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """The buffer's text at one revision of one loaded document."""

    generation: int
    revision: int
    text: str


class SaveStatus(enum.Enum):
    SAVED = "saved"
    UP_TO_DATE = "up-to-date"
    """Nothing to do: this revision (or a newer one) is already on disk."""
    CONFLICT = "conflict"
    """The file changed on disk since we last saw it; nothing was written."""
    FAILED = "failed"


@dataclass(frozen=True)
class SaveOutcome:
    status: SaveStatus
    path: Path
    generation: int
    revision: int
    size: int = 0
    duration: float = 0.0
    message: str | None = None
    recreated: bool = False
    """The file had been deleted on disk and was written again."""


class DiskChange(enum.Enum):
    UNCHANGED = "unchanged"
    MODIFIED = "modified"
    DELETED = "deleted"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class DiskCheck:
    change: DiskChange
    path: Path
    generation: int
    loaded: LoadedFile | None = None
    message: str | None = None


class DocumentFile:
    """Saves snapshots of one document to its file, and watches for foreign changes."""

    def __init__(
        self,
        path: Path,
        *,
        encoding: str = "utf-8",
        stamp: DiskStamp | None = None,
        size_limit: int = SIZE_LIMIT,
    ) -> None:
        self.path = Path(os.path.abspath(path))
        self.encoding = encoding
        self.size_limit = size_limit
        self._lock = threading.Lock()
        self._stamp = stamp
        self._generation = 0
        self._saved_revision = 0

    @classmethod
    def from_loaded(cls, loaded: LoadedFile, size_limit: int = SIZE_LIMIT) -> DocumentFile:
        return cls(loaded.path, encoding=loaded.encoding, stamp=loaded.stamp, size_limit=size_limit)

    @property
    def generation(self) -> int:
        """Incremented each time the buffer is replaced by a version read from disk."""
        return self._generation

    @property
    def saved_revision(self) -> int:
        """The newest revision of the current generation known to be on disk."""
        return self._saved_revision

    @property
    def stamp(self) -> DiskStamp | None:
        return self._stamp

    def is_saved(self, generation: int, revision: int) -> bool:
        return generation == self._generation and revision <= self._saved_revision

    def save(self, snapshot: Snapshot, *, force: bool = False) -> SaveOutcome:
        """Write the snapshot unless it is stale or the file changed underneath.

        ``force`` writes even when the revision is already saved (an explicit
        save, which creates a missing file).
        """
        started = time.monotonic()
        with self._lock:
            if snapshot.generation != self._generation or (
                snapshot.revision <= self._saved_revision and not force
            ):
                return self._outcome(SaveStatus.UP_TO_DATE, snapshot)
            try:
                foreign, recreated = self._changed_underneath()
            except FileProblem as problem:
                return self._outcome(SaveStatus.FAILED, snapshot, message=str(problem))
            if foreign:
                return self._outcome(
                    SaveStatus.CONFLICT, snapshot, message=f"{self.path.name} changed on disk"
                )
            data = encode(snapshot.text, self.encoding)
            try:
                self._stamp = atomic_write(self.path, data)
            except FileProblem as problem:
                logger.warning("%s", problem)
                return self._outcome(SaveStatus.FAILED, snapshot, message=str(problem))
            self._saved_revision = max(self._saved_revision, snapshot.revision)
            duration = time.monotonic() - started
            logger.debug("saved %s revision %d in %.3f s", self.path, snapshot.revision, duration)
            return self._outcome(
                SaveStatus.SAVED,
                snapshot,
                size=len(data),
                duration=duration,
                recreated=recreated,
            )

    def _outcome(self, status: SaveStatus, snapshot: Snapshot, **details: object) -> SaveOutcome:
        return SaveOutcome(
            status, self.path, snapshot.generation, snapshot.revision, **details  # type: ignore[arg-type]
        )

    def _changed_underneath(self) -> tuple[bool, bool]:
        """(someone else's version is on disk, the file was deleted). Caller holds the lock."""
        try:
            st = stat_or_none(self.path)
        except OSError as error:
            raise FileProblem(
                f"cannot check {self.path}: {error.strerror}; your text is kept"
            ) from None
        known = self._stamp
        if st is None:
            # Deleted (or never created): writing loses nobody's text.
            return False, known is not None
        if known is None:
            return True, False  # created by someone else since we opened it
        if known.same_stat(st):
            return False, False
        digest = self._digest_on_disk()
        if digest == known.digest:
            # Same content (touched, or written identically elsewhere): adopt it.
            self._stamp = DiskStamp(st.st_ino, st.st_size, st.st_mtime_ns, digest)
            return False, False
        return True, False

    def _digest_on_disk(self) -> str | None:
        try:
            with open(self.path, "rb") as file:
                data = file.read(self.size_limit + 1)
        except OSError:
            return None
        return digest_of(data)

    def check_disk(self) -> DiskCheck:
        """Compare the file with the version we last saw; read it if it changed."""
        with self._lock:
            generation = self._generation
            st = stat_or_none(self.path)
            known = self._stamp
            if st is None:
                if known is None:
                    return DiskCheck(DiskChange.UNCHANGED, self.path, generation)
                self._stamp = None  # the next save recreates it
                return DiskCheck(DiskChange.DELETED, self.path, generation)
            if known is not None and known.same_stat(st):
                return DiskCheck(DiskChange.UNCHANGED, self.path, generation)
            try:
                loaded = read_text_file(self.path, self.size_limit)
            except FileProblem as problem:
                return DiskCheck(DiskChange.UNREADABLE, self.path, generation, message=str(problem))
            if known is not None and loaded.stamp is not None and (
                loaded.stamp.digest == known.digest
            ):
                self._stamp = loaded.stamp
                return DiskCheck(DiskChange.UNCHANGED, self.path, generation)
            return DiskCheck(DiskChange.MODIFIED, self.path, generation, loaded)

    def adopt(self, loaded: LoadedFile) -> int:
        """The buffer now holds ``loaded``: start a new generation at revision 0."""
        with self._lock:
            self._stamp = loaded.stamp
            self.encoding = loaded.encoding
            self._generation += 1
            self._saved_revision = 0
            return self._generation

    def overrule_disk(self) -> None:
        """The user chose to keep their text: the version now on disk may be overwritten."""
        with self._lock:
            st = stat_or_none(self.path)
            if st is None:
                self._stamp = None
                return
            digest = self._digest_on_disk() or ""
            self._stamp = DiskStamp(st.st_ino, st.st_size, st.st_mtime_ns, digest)

    def reload(self) -> LoadedFile:
        """Read the file as it is now (for a reload the user asked for)."""
        with self._lock:
            return read_text_file(self.path, self.size_limit)
