"""The file watcher: any event naming the file, in inotify and polling shapes."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanotepad.fileio import atomic_write
from hanotepad.watcher import FileWatcher, filesystem_type, should_poll
from tests.helpers.wait import wait_until


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def watched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Calls]]:
    path = tmp_path / "notes.txt"
    path.write_text("v1")
    calls = Calls()
    watcher = FileWatcher(calls, polling=request.param)
    watcher.watch(path)
    assert watcher.mode == ("polling" if request.param else "inotify")
    yield path, calls
    watcher.stop()


def test_an_atomic_replace_is_reported(watched: tuple[Path, Calls]) -> None:
    path, calls = watched
    atomic_write(path, b"v2")
    wait_until(lambda: calls.count > 0, message="a change event")


def test_an_in_place_write_is_reported(watched: tuple[Path, Calls]) -> None:
    path, calls = watched
    with open(path, "a") as file:
        file.write("more")
    wait_until(lambda: calls.count > 0, message="a change event")


def test_a_deletion_is_reported(watched: tuple[Path, Calls]) -> None:
    path, calls = watched
    path.unlink()
    wait_until(lambda: calls.count > 0, message="a change event")


def test_other_files_in_the_folder_are_ignored(watched: tuple[Path, Calls]) -> None:
    path, calls = watched
    other = path.with_name("other.txt")
    other.write_text("noise")
    atomic_write(other, b"more noise")
    # A change to the watched file afterwards is seen; by then the noise would have been too.
    atomic_write(path, b"v2")
    wait_until(lambda: calls.count > 0, message="the watched file's event")
    assert calls.count <= 2  # moved (+ maybe modified), never the other file's events


def test_switching_files_follows_the_new_one(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "one.txt", tmp_path / "b" / "two.txt"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text("x")
    calls = Calls()
    watcher = FileWatcher(calls, polling=False)
    try:
        watcher.watch(first)
        watcher.watch(second)
        assert watcher.target == os.path.realpath(second)
        atomic_write(second, b"y")
        wait_until(lambda: calls.count > 0, message="the new file's event")
    finally:
        watcher.stop()


def test_filesystem_type_uses_the_longest_mount_point(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /mnt/shared rw,relatime shared:9 - nfs4 server:/export rw\n"
        "41 22 0:51 / /mnt/shared\\040space rw - cifs //srv/x rw\n"
    )
    assert filesystem_type(Path("/mnt/shared/data/notes.txt"), str(mountinfo)) == "nfs4"
    assert filesystem_type(Path("/mnt/shared space/a"), str(mountinfo)) == "cifs"
    assert filesystem_type(Path("/mnt/sharedother/a"), str(mountinfo)) == "ext4"
    assert filesystem_type(Path("/x"), str(tmp_path / "missing")) is None


def test_the_environment_can_force_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANOTEPAD_WATCH", "poll")
    assert should_poll(tmp_path / "notes.txt")
    monkeypatch.setenv("HANOTEPAD_WATCH", "inotify")
    assert not should_poll(tmp_path / "notes.txt")
