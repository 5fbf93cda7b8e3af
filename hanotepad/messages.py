"""Messages the editor's workers and widgets send to the app (dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from hanotepad.document import DiskCheck, DocumentFile, SaveOutcome
from hanotepad.fileio import LoadedFile


@dataclass
class FileLoaded(Message):
    loaded: LoadedFile


@dataclass
class LoadFailed(Message):
    path: Path
    problem: str


@dataclass
class SaveStarted(Message):
    """The autosave thread began writing a snapshot."""


@dataclass
class SaveDone(Message):
    outcome: SaveOutcome
    explicit: bool = False
    """A save the user asked for (ctrl+s, keep mine), not an autosave."""


@dataclass
class SavedAs(Message):
    """A save-as finished; on success ``target`` becomes the edited file."""

    target: DocumentFile
    outcome: SaveOutcome


@dataclass
class SessionSaved(Message):
    problem: str | None


@dataclass
class DiskEvent(Message):
    """The watcher saw an event naming the file: look again (coalesced)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DiskEvent)


@dataclass
class DiskChecked(Message):
    check: DiskCheck


@dataclass
class Reloaded(Message):
    """The user chose to reload: the file as read, or why it could not be."""

    path: Path
    loaded: LoadedFile | None
    problem: str | None


@dataclass
class FindRequested(Message):
    query: str
    backward: bool = False


@dataclass
class ReplaceRequested(Message):
    query: str
    replacement: str
    everywhere: bool = False


@dataclass
class FindClosed(Message):
    pass
