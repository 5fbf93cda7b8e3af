"""DocumentFile: what may be written, and what changed on disk behind our back."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from hanotepad.document import DiskChange, DocumentFile, SaveStatus, Snapshot
from hanotepad.fileio import atomic_write, read_text_file


def open_document(path: Path) -> DocumentFile:
    return DocumentFile.from_loaded(read_text_file(path))


def external_write(path: Path, text: str) -> None:
    """Another program saving the file the way careful editors do (temp + rename)."""
    temp = path.with_name(path.name + ".other")
    temp.write_text(text)
    os.replace(temp, path)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("first\n")
    return path


def test_a_save_writes_the_snapshot(notes: Path) -> None:
    doc = open_document(notes)
    outcome = doc.save(Snapshot(doc.generation, 1, "first\nsecond\n"))
    assert outcome.status is SaveStatus.SAVED
    assert outcome.size == len("first\nsecond\n")
    assert notes.read_text() == "first\nsecond\n"
    assert doc.saved_revision == 1
    assert doc.is_saved(doc.generation, 1)


def test_an_older_snapshot_never_overwrites_a_newer_one(notes: Path) -> None:
    doc = open_document(notes)
    doc.save(Snapshot(doc.generation, 5, "newer"))
    outcome = doc.save(Snapshot(doc.generation, 4, "older"))
    assert outcome.status is SaveStatus.UP_TO_DATE
    assert notes.read_text() == "newer"


def test_concurrent_saves_leave_the_newest_revision(notes: Path) -> None:
    doc = open_document(notes)
    revisions = list(range(1, 41))
    random.Random(7).shuffle(revisions)
    threads = [
        threading.Thread(target=doc.save, args=(Snapshot(doc.generation, r, f"revision {r}"),))
        for r in revisions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert notes.read_text() == "revision 40"


def test_a_foreign_change_is_a_conflict_and_is_not_overwritten(notes: Path) -> None:
    doc = open_document(notes)
    external_write(notes, "written on another node")
    outcome = doc.save(Snapshot(doc.generation, 1, "my older buffer"))
    assert outcome.status is SaveStatus.CONFLICT
    assert notes.read_text() == "written on another node"


def test_an_in_place_foreign_write_is_a_conflict_too(notes: Path) -> None:
    doc = open_document(notes)
    with open(notes, "a") as file:  # same inode, new size and mtime
        file.write("appended by someone\n")
    assert doc.save(Snapshot(doc.generation, 1, "mine")).status is SaveStatus.CONFLICT
    assert notes.read_text() == "first\nappended by someone\n"


def test_a_touch_without_new_content_is_not_a_conflict(notes: Path) -> None:
    doc = open_document(notes)
    os.utime(notes, ns=(1_000_000_000, 1_000_000_000))
    assert doc.save(Snapshot(doc.generation, 1, "mine")).status is SaveStatus.SAVED
    assert notes.read_text() == "mine"


def test_a_file_created_by_someone_else_is_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "new.txt"
    doc = open_document(path)
    path.write_text("theirs")
    assert doc.save(Snapshot(doc.generation, 1, "mine")).status is SaveStatus.CONFLICT
    assert path.read_text() == "theirs"


def test_a_missing_file_is_created_on_the_first_save(tmp_path: Path) -> None:
    path = tmp_path / "new.txt"
    doc = open_document(path)
    outcome = doc.save(Snapshot(doc.generation, 1, "hello"))
    assert (outcome.status, outcome.recreated) == (SaveStatus.SAVED, False)
    assert path.read_text() == "hello"


def test_an_explicit_save_creates_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.txt"
    doc = open_document(path)
    assert doc.save(Snapshot(doc.generation, 0, "")).status is SaveStatus.UP_TO_DATE
    assert not path.exists()
    assert doc.save(Snapshot(doc.generation, 0, ""), force=True).status is SaveStatus.SAVED
    assert path.read_text() == ""


def test_a_deleted_file_is_written_again_and_says_so(notes: Path) -> None:
    doc = open_document(notes)
    notes.unlink()
    outcome = doc.save(Snapshot(doc.generation, 1, "still here"))
    assert (outcome.status, outcome.recreated) == (SaveStatus.SAVED, True)
    assert notes.read_text() == "still here"


def test_a_failed_save_keeps_the_revision_unsaved(tmp_path: Path) -> None:
    doc = open_document(tmp_path / "gone" / "notes.txt")
    outcome = doc.save(Snapshot(doc.generation, 1, "text"))
    assert outcome.status is SaveStatus.FAILED
    assert outcome.message is not None and "does not exist" in outcome.message
    assert not doc.is_saved(doc.generation, 1)


def test_the_byte_order_mark_survives_saves(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfold")
    doc = open_document(path)
    doc.save(Snapshot(doc.generation, 1, "new"))
    assert path.read_bytes() == b"\xef\xbb\xbfnew"


def test_check_disk_ignores_our_own_saves(notes: Path) -> None:
    doc = open_document(notes)
    doc.save(Snapshot(doc.generation, 1, "mine"))
    assert doc.check_disk().change is DiskChange.UNCHANGED


def test_check_disk_reads_a_foreign_version(notes: Path) -> None:
    doc = open_document(notes)
    external_write(notes, "theirs")
    check = doc.check_disk()
    assert check.change is DiskChange.MODIFIED
    assert check.loaded is not None and check.loaded.text == "theirs"


def test_check_disk_adopts_identical_content(notes: Path) -> None:
    doc = open_document(notes)
    external_write(notes, "first\n")
    assert doc.check_disk().change is DiskChange.UNCHANGED
    assert doc.save(Snapshot(doc.generation, 1, "mine")).status is SaveStatus.SAVED


def test_check_disk_reports_deletion_and_unreadable_content(notes: Path) -> None:
    doc = open_document(notes)
    notes.write_bytes(b"\x00\x01binary")
    check = doc.check_disk()
    assert check.change is DiskChange.UNREADABLE
    assert check.message is not None and "binary" in check.message
    notes.unlink()
    assert doc.check_disk().change is DiskChange.DELETED
    assert doc.check_disk().change is DiskChange.UNCHANGED  # already known


def test_adopting_a_new_version_retires_older_snapshots(notes: Path) -> None:
    doc = open_document(notes)
    old_generation = doc.generation
    external_write(notes, "theirs")
    loaded = read_text_file(notes)
    doc.adopt(loaded)
    assert doc.save(Snapshot(old_generation, 9, "stale buffer")).status is SaveStatus.UP_TO_DATE
    assert notes.read_text() == "theirs"
    assert doc.save(Snapshot(doc.generation, 1, "edited")).status is SaveStatus.SAVED


def test_overruling_the_disk_lets_the_user_keep_their_text(notes: Path) -> None:
    doc = open_document(notes)
    external_write(notes, "theirs")
    assert doc.save(Snapshot(doc.generation, 1, "mine")).status is SaveStatus.CONFLICT
    doc.overrule_disk()
    assert doc.save(Snapshot(doc.generation, 1, "mine")).status is SaveStatus.SAVED
    assert notes.read_text() == "mine"


def test_a_check_waits_for_a_save_in_progress(notes: Path) -> None:
    """The lock orders them: a check never sees our own save half-recorded."""
    doc = open_document(notes)
    results = []
    big = "x" * 2_000_000
    saver = threading.Thread(target=lambda: doc.save(Snapshot(doc.generation, 1, big)))
    saver.start()
    for _ in range(20):
        results.append(doc.check_disk().change)
    saver.join()
    results.append(doc.check_disk().change)
    assert set(results) == {DiskChange.UNCHANGED}
    atomic_write(notes, b"foreign")
    assert doc.check_disk().change is DiskChange.MODIFIED
