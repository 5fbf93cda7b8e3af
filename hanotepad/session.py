"""Where the user was: last file, cursor, selection, scroll, soft wrap, recent files.

Kept as one small JSON file under ``$XDG_STATE_HOME/hanotepad/`` and written
atomically, so that a copy of that directory (a cluster checkpoint, say) brings
the cursor back on another machine. An unreadable session is not an error
worth stopping for: the editor starts fresh and says so.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hanotepad.fileio import FileProblem, atomic_write

logger = logging.getLogger(__name__)

SESSION_FORMAT = 1
MAX_RECENT = 10
MAX_REMEMBERED = 50

Location = tuple[int, int]


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/hanotepad`` (``~/.local/state/hanotepad`` when unset)."""
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(state_home) / "hanotepad"


@dataclass(frozen=True)
class Place:
    """Where the user was in one file."""

    cursor: Location = (0, 0)
    anchor: Location = (0, 0)
    """The other end of the selection (equal to ``cursor`` when nothing is selected)."""
    scroll: Location = (0, 0)
    """Scroll offset (x, y) in cells."""


@dataclass(frozen=True)
class Session:
    file: str | None = None
    soft_wrap: bool = True
    recent: tuple[str, ...] = ()
    places: dict[str, Place] = field(default_factory=dict)

    def place_for(self, path: Path | str) -> Place | None:
        return self.places.get(str(path))

    def with_place(self, path: Path | str, place: Place) -> Session:
        """This session with ``path`` as the current file, at ``place``."""
        key = str(path)
        places = {k: v for k, v in self.places.items() if k != key}
        places[key] = place
        if len(places) > MAX_REMEMBERED:
            places = dict(list(places.items())[-MAX_REMEMBERED:])
        recent = (key, *(item for item in self.recent if item != key))[:MAX_RECENT]
        return replace(self, file=key, places=places, recent=recent)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SESSION_FORMAT,
            "file": self.file,
            "soft_wrap": self.soft_wrap,
            "recent": list(self.recent),
            "places": {
                path: {
                    "cursor": list(place.cursor),
                    "anchor": list(place.anchor),
                    "scroll": list(place.scroll),
                }
                for path, place in self.places.items()
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Session:
        """Parse a session; raises ValueError on anything malformed."""
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise ValueError("unknown session format")
        file = data.get("file")
        if file is not None and not isinstance(file, str):
            raise ValueError("file is not a string")
        recent = data.get("recent", [])
        if not isinstance(recent, list) or not all(isinstance(item, str) for item in recent):
            raise ValueError("recent is not a list of paths")
        places_data = data.get("places", {})
        if not isinstance(places_data, dict):
            raise ValueError("places is not a mapping")
        places = {
            str(path): Place(
                cursor=_location(item.get("cursor")),
                anchor=_location(item.get("anchor", item.get("cursor"))),
                scroll=_location(item.get("scroll", [0, 0])),
            )
            for path, item in places_data.items()
            if isinstance(item, dict)
        }
        return cls(
            file=file,
            soft_wrap=bool(data.get("soft_wrap", True)),
            recent=tuple(recent[:MAX_RECENT]),
            places=places,
        )


def _location(value: Any) -> Location:
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(item, int) and item >= 0 for item in value)
    ):
        return value[0], value[1]
    raise ValueError(f"bad location {value!r}")


class SessionStore:
    """Loads and saves the session file; saves are thread-safe and skip no-op writes."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "session.json"
        self._lock = threading.Lock()
        self._last_written: bytes | None = None

    def load(self) -> tuple[Session, str | None]:
        """The saved session, or a fresh one and a message saying why."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Session(), None
        except OSError as error:
            reason = error.strerror or str(error)
            return Session(), f"session {self.path} is unreadable ({reason}): starting fresh"
        try:
            session = Session.from_json(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as error:
            logger.warning("ignoring session %s: %s", self.path, error)
            return Session(), f"session {self.path} was damaged: starting fresh"
        self._last_written = raw
        return session, None

    def save(self, session: Session) -> bool:
        """Write the session if it changed; True if written. Raises FileProblem."""
        data = (json.dumps(session.to_json(), indent=1, sort_keys=True) + "\n").encode()
        with self._lock:
            if data == self._last_written:
                return False
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise FileProblem(
                    f"cannot keep the session in {self.directory}: {error.strerror}"
                ) from None
            try:
                atomic_write(self.path, data)
            except FileProblem as problem:
                raise FileProblem(
                    f"cannot keep the session in {self.directory}: {problem.reason}"
                ) from None
            self._last_written = data
            return True
