"""Reading files that may be bad input, and atomic writes that never damage a file."""

from __future__ import annotations

import codecs
import errno
import os
import stat
import time
from pathlib import Path

import pytest

from hanotepad import fileio
from hanotepad.fileio import (
    SIZE_LIMIT,
    TEMP_SUFFIX,
    FileProblem,
    atomic_write,
    encode,
    human_size,
    read_text_file,
    remove_stale_temp_files,
)


def temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.endswith(TEMP_SUFFIX)]


def test_reads_utf8_text_with_its_stamp(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("héllo\nworld\n", encoding="utf-8")
    loaded = read_text_file(path)
    assert loaded.text == "héllo\nworld\n"
    assert loaded.encoding == "utf-8"
    assert not loaded.read_only
    assert loaded.stamp is not None
    assert loaded.stamp.same_stat(os.stat(path))
    assert loaded.stamp.size == len("héllo\nworld\n".encode())


def test_a_byte_order_mark_is_kept_on_save(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(codecs.BOM_UTF8 + b"text")
    loaded = read_text_file(path)
    assert (loaded.text, loaded.encoding) == ("text", "utf-8-sig")
    assert encode(loaded.text, loaded.encoding) == codecs.BOM_UTF8 + b"text"


def test_a_missing_file_opens_empty(tmp_path: Path) -> None:
    loaded = read_text_file(tmp_path / "new.txt")
    assert (loaded.text, loaded.stamp, loaded.warning) == ("", None, None)


def test_a_missing_file_in_a_missing_folder_opens_with_a_warning(tmp_path: Path) -> None:
    loaded = read_text_file(tmp_path / "nowhere" / "new.txt")
    assert loaded.text == ""
    assert loaded.warning is not None
    assert "does not exist" in loaded.warning and "save as" in loaded.warning


def test_a_path_through_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(FileProblem, match="plain is a file, not a folder"):
        read_text_file(tmp_path / "plain" / "notes.txt")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="is a folder: open a file inside it"):
        read_text_file(tmp_path)


def test_a_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(FileProblem, match="looks binary"):
        read_text_file(path)


def test_an_undecodable_file_is_refused_with_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(FileProblem, match=r"not UTF-8 text \(bad byte at offset 3\)"):
        read_text_file(path)


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with open(path, "wb") as file:
        file.truncate(SIZE_LIMIT + 1)  # sparse: costs no disk
    with pytest.raises(FileProblem, match=r"over the 50.0 MB limit"):
        read_text_file(path)


def test_a_special_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(FileProblem, match="not a regular file"):
        read_text_file(fifo)


def test_a_file_without_write_permission_opens_read_only(tmp_path: Path) -> None:
    path = tmp_path / "locked.txt"
    path.write_text("do not touch")
    path.chmod(0o444)
    assert read_text_file(path).read_only


def test_atomic_write_replaces_content_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("old")
    path.chmod(0o640)
    stamp = atomic_write(path, b"new content")
    assert path.read_bytes() == b"new content"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stamp.same_stat(os.stat(path))
    assert temp_files(tmp_path) == []


def test_atomic_write_creates_a_file_with_the_umask_mode(tmp_path: Path) -> None:
    path = tmp_path / "fresh.txt"
    atomic_write(path, b"x")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~fileio._UMASK


def test_atomic_write_goes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_a_failed_write_leaves_the_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("precious")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", disk_full)
    with pytest.raises(FileProblem, match="the disk is full; your text is kept"):
        atomic_write(path, b"new text")
    assert path.read_text() == "precious"
    assert temp_files(tmp_path) == []


def test_writing_into_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileProblem, match="does not exist") as caught:
        atomic_write(tmp_path / "missing" / "notes.txt", b"x")
    assert caught.value.reason.startswith("folder ")


def test_writing_over_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileProblem, match="not a regular file"):
        atomic_write(tmp_path / "folder", b"x")
    assert (tmp_path / "folder").is_dir()


def test_stale_temp_files_are_removed_and_young_ones_kept(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    old = tmp_path / f".notes.txt.abc{TEMP_SUFFIX}"
    young = tmp_path / f".notes.txt.def{TEMP_SUFFIX}"
    other = tmp_path / f".other.txt.abc{TEMP_SUFFIX}"
    for temp in (old, young, other):
        temp.write_text("partial")
    now = time.time()
    os.utime(old, (now - 3600, now - 3600))
    os.utime(other, (now - 3600, now - 3600))
    assert remove_stale_temp_files(path, older_than=60, now=now) == 1
    assert not old.exists()
    assert young.exists() and other.exists()


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (12_400, "12.4 kB"), (10_000_000, "10.0 MB"),
     (3_200_000_000, "3.2 GB")],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text
