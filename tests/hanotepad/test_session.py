"""The session file: where the user was, kept across restarts (and machines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanotepad.fileio import FileProblem
from hanotepad.session import (
    MAX_RECENT,
    MAX_REMEMBERED,
    Place,
    Session,
    SessionStore,
    default_state_dir,
)


def test_the_state_dir_follows_xdg_state_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_state_dir() == tmp_path / "state" / "hanotepad"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / ".local" / "state" / "hanotepad"


def test_a_session_round_trips(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "state")
    session = Session(soft_wrap=False).with_place(
        "/data/notes.txt", Place(cursor=(3, 4), anchor=(3, 1), scroll=(0, 2))
    )
    assert store.save(session)
    loaded, problem = SessionStore(tmp_path / "state").load()
    assert problem is None
    assert loaded == session
    assert loaded.file == "/data/notes.txt"
    assert loaded.place_for(Path("/data/notes.txt")) == Place((3, 4), (3, 1), (0, 2))


def test_an_unchanged_session_is_not_rewritten(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    session = Session().with_place("/a", Place())
    assert store.save(session)
    mtime = store.path.stat().st_mtime_ns
    assert not store.save(session)
    assert store.path.stat().st_mtime_ns == mtime


def test_recent_files_are_most_recent_first_and_capped() -> None:
    session = Session()
    for index in range(MAX_RECENT + 5):
        session = session.with_place(f"/f{index}", Place())
    session = session.with_place("/f3", Place(cursor=(1, 1)))
    assert session.recent[0] == "/f3"
    assert len(session.recent) == MAX_RECENT
    assert len(set(session.recent)) == MAX_RECENT


def test_remembered_places_are_capped() -> None:
    session = Session()
    for index in range(MAX_REMEMBERED + 10):
        session = session.with_place(f"/f{index}", Place())
    assert len(session.places) == MAX_REMEMBERED
    assert f"/f{MAX_REMEMBERED + 9}" in session.places


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"format": 99}',
        b'{"format": 1, "places": {"/a": {"cursor": [-1, 0]}}}',
        b"\xff\xfe",
    ],
)
def test_a_damaged_session_starts_fresh_with_a_message(tmp_path: Path, content: bytes) -> None:
    store = SessionStore(tmp_path)
    store.path.write_bytes(content)
    session, problem = store.load()
    assert session == Session()
    assert problem is not None and "starting fresh" in problem


def test_an_unwritable_state_dir_is_a_clear_problem(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("a file where the folder should be")
    store = SessionStore(tmp_path / "state" / "hanotepad")
    with pytest.raises(FileProblem, match="cannot keep the session in"):
        store.save(Session())


def test_the_file_is_plain_json(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.save(Session().with_place("/a", Place(cursor=(1, 2))))
    data = json.loads(store.path.read_text())
    assert data["places"]["/a"]["cursor"] == [1, 2]
    assert data["file"] == "/a"
