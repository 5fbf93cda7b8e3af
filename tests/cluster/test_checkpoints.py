"""CheckpointSync on real directories with a real inotify watch."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.events import FileCreatedEvent, FileDeletedEvent, FileMovedEvent

from cluster.checkpoints import CheckpointSync, _Handler, is_temp_name
from tests.helpers.wait import wait_until


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "local" / "state" / "hanotepad", tmp_path / "store" / "checkpoints" / "app"


@pytest.fixture
def sync(dirs) -> Iterator[CheckpointSync]:
    s = CheckpointSync(*dirs)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_local_changes_appear_in_the_store(sync, dirs) -> None:
    local, store = dirs
    (local / "session.json").write_text('{"cursor": [1, 2]}')
    wait_until(lambda: tree(store) == {"session.json": '{"cursor": [1, 2]}'},
               message="the new file in the store")
    atomic_write(local / "session.json", '{"cursor": [3, 4]}')  # arrives as a moved event
    wait_until(lambda: tree(store) == {"session.json": '{"cursor": [3, 4]}'},
               message="the atomic save in the store")
    (local / "recent").mkdir()
    (local / "recent" / "files").write_text("a.txt")
    wait_until(lambda: tree(store).get("recent/files") == "a.txt", message="a nested file")
    (local / "session.json").unlink()
    wait_until(lambda: tree(store) == {"recent/files": "a.txt"}, message="the deletion")
    assert not any(is_temp_name(p.name) for p in store.rglob("*"))


def test_a_directory_moved_in_is_copied_whole(sync, dirs, tmp_path: Path) -> None:
    local, store = dirs
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "f").write_text("1")
    (outside / "g").write_text("2")
    os.replace(outside, local / "moved")
    wait_until(lambda: tree(store) == {"moved/deep/f": "1", "moved/g": "2"},
               message="the moved directory's files")


def test_stop_copies_what_is_pending(dirs) -> None:
    local, store = dirs
    s = CheckpointSync(local, store, debounce=10.0)  # nothing would be copied for 10 s
    s.start()
    (local / "last-words").write_text("bye")
    s.stop()
    assert tree(store) == {"last-words": "bye"}
    s.stop()  # idempotent


def test_start_copies_existing_files_and_flush_never_deletes(dirs) -> None:
    local, store = dirs
    local.mkdir(parents=True)
    (local / "a").write_text("A")
    store.mkdir(parents=True)
    (store / "only-in-store").write_text("keep")
    s = CheckpointSync(local, store)
    assert s.flush() == 1
    assert s.flush() == 0  # unchanged files are not rewritten
    assert tree(store) == {"a": "A", "only-in-store": "keep"}


def test_restore_replaces_local_content(dirs, tmp_path: Path) -> None:
    local, store = dirs
    store.mkdir(parents=True)
    (store / "session.json").write_text("from store")
    (store / "sub").mkdir()
    (store / "sub" / "x").write_text("x")
    fresh = tmp_path / "node2" / "state" / "hanotepad"
    assert CheckpointSync(fresh, store).restore() == 2
    assert tree(fresh) == {"session.json": "from store", "sub/x": "x"}
    (fresh / "session.json").write_text("stale local")
    (fresh / "leftover").write_text("old")
    CheckpointSync(fresh, store).restore()
    assert tree(fresh) == {"session.json": "from store", "sub/x": "x"}


def test_restore_with_nothing_stored_leaves_local_alone(dirs) -> None:
    local, store = dirs
    local.mkdir(parents=True)
    (local / "mine").write_text("keep")
    assert CheckpointSync(local, store).restore() == 0
    assert tree(local) == {"mine": "keep"}


def test_delete_removes_the_checkpoint(sync, dirs) -> None:
    local, store = dirs
    (local / "f").write_text("1")
    wait_until(lambda: tree(store) == {"f": "1"}, message="the copy")
    sync.delete()
    assert not store.exists()
    assert list(store.parent.iterdir()) == []
    sync.delete()  # nothing left to delete: no error


def test_handler_accepts_the_polling_shape_of_an_atomic_save(dirs) -> None:
    """PollingObserver reports os.replace as deleted + created (NOTES.md), inotify as moved:
    either way the file is copied, and only a file really gone is deleted from the store."""
    local, store = dirs
    local.mkdir(parents=True)
    store.mkdir(parents=True)
    (local / "f").write_text("v2")
    (store / "f").write_text("v1")
    (store / "gone").write_text("deleted locally while nobody watched")
    s = CheckpointSync(local, store)
    handler = _Handler(s)
    handler.dispatch(FileDeletedEvent(str(local / "gone")))
    handler.dispatch(FileDeletedEvent(str(local / "f")))
    handler.dispatch(FileCreatedEvent(str(local / "f")))
    handler.dispatch(FileMovedEvent(str(local / "f.tmp"), str(local / "f")))
    s.start()  # the sync thread works through what the handler noted
    s.stop()
    assert tree(store) == {"f": "v2"}


@pytest.mark.parametrize(
    ("name", "temp"),
    [("session.json", False), ("notes.txt", False), ("session.json.tmp", True),
     (".#notes.txt", True), ("notes.txt~", True), (".notes.txt.swp", True),
     ("tmpab12cd_3", True), (".hacluster-tmp-x.1234", True), ("a.tmp.123", True),
     ("#notes#", True), ("template", False)],
)
def test_temp_names(name: str, temp: bool) -> None:
    assert is_temp_name(name) is temp
