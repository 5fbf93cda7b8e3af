"""Reading and writing files safely: validation, atomic writes, disk stamps.

Everything here is plain blocking I/O without a screen; the app calls it from
worker threads. Problems are raised as ``FileProblem`` with a one-line message
that says what to do, and a failed write never touches the existing file.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SIZE_LIMIT = 50_000_000
"""Files larger than this are refused: a terminal editor is the wrong tool for them."""

TEMP_SUFFIX = ".hanotepad-tmp"
"""Suffix of the temporary files of atomic writes (watchers and checkpointers may skip them)."""

_UMASK = os.umask(0)
os.umask(_UMASK)


class FileProblem(Exception):
    """A file cannot be opened or saved; the message says why and what to do."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        """The cause alone ("the disk is full"), for callers that phrase their own message."""


@dataclass(frozen=True)
class DiskStamp:
    """Identity of one version of a file: cheap stat fields plus a content digest.

    The stat fields tell quickly that nothing changed; the digest settles it when
    they differ (a touch, or the same text written by another editor).
    """

    inode: int
    size: int
    mtime_ns: int
    digest: str

    def same_stat(self, st: os.stat_result) -> bool:
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (self.inode, self.size, self.mtime_ns)


@dataclass(frozen=True)
class LoadedFile:
    """A text file as read from disk (or a file that does not exist yet)."""

    path: Path
    text: str
    encoding: str
    """``utf-8``, or ``utf-8-sig`` when the file starts with a byte order mark (kept on save)."""
    stamp: DiskStamp | None
    """None when the file does not exist yet."""
    read_only: bool
    warning: str | None = None
    """Something the user should know, though the file did open."""


def digest_of(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def stat_or_none(path: Path) -> os.stat_result | None:
    """The file's stat, or None if it (or a folder on its path) does not exist."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def human_size(size: int) -> str:
    """'532 B', '12.4 kB', '10.0 MB'."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB"):
        value /= 1000
        if value < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} GB"


def encode(text: str, encoding: str) -> bytes:
    data = text.encode("utf-8")
    if encoding == "utf-8-sig":
        return codecs.BOM_UTF8 + data
    return data


def read_text_file(path: Path, size_limit: int = SIZE_LIMIT) -> LoadedFile:
    """Read a UTF-8 text file, or explain why it cannot be edited.

    A missing file is fine (it opens empty and is created on the first save);
    a directory, special file, binary or undecodable file, or a file over
    ``size_limit`` raises ``FileProblem``.
    """
    path = Path(os.path.abspath(path))
    name = path.name or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return LoadedFile(path, "", "utf-8", None, False, _creation_warning(path))
    except NotADirectoryError:
        raise FileProblem(
            f"cannot open {path}: {_first_non_directory(path)} is a file, not a folder; "
            "choose another path"
        ) from None
    except PermissionError:
        raise FileProblem(f"cannot open {path}: permission denied; open another file") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileProblem(f"{path} is a folder: open a file inside it (ctrl+o)")
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(f"{path} is not a regular file: open a text file instead")
    if st.st_size > size_limit:
        raise FileProblem(
            f"{name} is {human_size(st.st_size)}, over the {human_size(size_limit)} limit: "
            "nothing was changed; open a smaller file"
        )
    try:
        with open(path, "rb") as file:
            fst = os.fstat(file.fileno())
            data = file.read(size_limit + 1)
    except PermissionError:
        raise FileProblem(f"cannot open {path}: permission denied; open another file") from None
    except OSError as error:
        raise FileProblem(f"cannot open {path}: {error.strerror}; open another file") from None
    if len(data) > size_limit:
        raise FileProblem(
            f"{name} grew over the {human_size(size_limit)} limit while being read: "
            "nothing was changed; open a smaller file"
        )
    text, encoding = _decode(data, name)
    stamp = DiskStamp(fst.st_ino, fst.st_size, fst.st_mtime_ns, digest_of(data))
    return LoadedFile(path, text, encoding, stamp, _is_read_only(path, fst))


def _decode(data: bytes, name: str) -> tuple[str, str]:
    if b"\0" in data:
        raise FileProblem(
            f"{name} looks binary (it contains NUL bytes): nothing was changed; open a text file"
        )
    encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        encoding = "utf-8-sig"
    try:
        return data.decode("utf-8"), encoding
    except UnicodeDecodeError as error:
        raise FileProblem(
            f"{name} is not UTF-8 text (bad byte at offset {error.start}): nothing was changed; "
            "convert it to UTF-8 (e.g. iconv) or open another file"
        ) from None


def _is_read_only(path: Path, st: os.stat_result) -> bool:
    # A file whose mode grants nobody write access is treated as read-only even
    # for root, who could write it anyway: the mode states the owner's intent.
    return not os.access(path, os.W_OK) or not st.st_mode & 0o222


def _creation_warning(path: Path) -> str | None:
    parent = path.parent
    if not parent.exists():
        return f"folder {parent} does not exist: this file cannot be saved there; use save as (f12)"
    if not parent.is_dir():
        return f"{parent} is not a folder: this file cannot be saved there; use save as (f12)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable: use save as (f12) to save elsewhere"
    return None


def _first_non_directory(path: Path) -> Path:
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return path.parent


def atomic_write(path: Path, data: bytes) -> DiskStamp:
    """Replace ``path`` with ``data`` atomically: temp file, fsync, rename, dir fsync.

    Readers see the old or the new content, never a mix, even if this process is
    killed half-way. Keeps the file's permissions; writes through symlinks.
    Returns the stamp of the new version, taken from the temp file itself so that
    a later writer cannot be mistaken for us.
    """
    target = Path(os.path.realpath(path))
    directory = target.parent
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise _save_problem(path, error) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise FileProblem(f"cannot save {path}: it is not a regular file; use save as (f12)")
    try:
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=directory
        )
    except OSError as error:
        raise _save_problem(path, error) from None
    try:
        try:
            mode = stat.S_IMODE(existing.st_mode) if existing else 0o666 & ~_UMASK
            os.fchmod(fd, mode)
            if existing is not None and os.geteuid() == 0:
                os.fchown(fd, existing.st_uid, existing.st_gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            written = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp_name, target)
    except BaseException as error:
        _unlink_quietly(temp_name)
        if isinstance(error, OSError):
            raise _save_problem(path, error) from None
        raise
    fsync_directory(directory)
    return DiskStamp(written.st_ino, written.st_size, written.st_mtime_ns, digest_of(data))


def fsync_directory(directory: Path) -> None:
    """Make a rename durable; best effort (some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        logger.warning("could not remove temporary file %s", name)


def _save_problem(path: Path, error: OSError) -> FileProblem:
    parent = Path(path).parent
    code = error.errno
    if code == errno.ENOENT:
        reason = f"folder {parent} does not exist"
    elif code == errno.ENOTDIR:
        reason = f"{_first_non_directory(Path(path))} is not a folder"
    elif code in (errno.EACCES, errno.EPERM):
        reason = f"permission denied in {parent}"
    elif code == errno.EROFS:
        reason = "the file system is read-only"
    elif code in (errno.ENOSPC, errno.EDQUOT):
        reason = "the disk is full"
    else:
        reason = error.strerror or str(error)
    return FileProblem(
        f"cannot save {path}: {reason}; your text is kept: use save as (f12)", reason
    )


def remove_stale_temp_files(path: Path, older_than: float, now: float) -> int:
    """Remove temp files our atomic writes left next to ``path`` after a kill.

    Only files older than ``older_than`` seconds: a young one may belong to an
    editor writing right now (another node of a cluster, for instance).
    """
    target = Path(os.path.realpath(path))
    removed = 0
    try:
        candidates = list(target.parent.glob(f".{target.name}.*{TEMP_SUFFIX}"))
    except OSError:
        return 0
    for candidate in candidates:
        try:
            if now - candidate.stat().st_mtime > older_than:
                candidate.unlink()
                removed += 1
        except OSError:
            continue
    return removed
