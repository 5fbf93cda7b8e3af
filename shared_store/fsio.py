"""Crash-safe file primitives for the directory backend.

Every write goes to a temp file in the target's directory, is fsynced, renamed over the target
and the directory fsynced, so that a reader (or a reboot) sees the old file or the new one,
never a torn one. Temp files are hidden (leading '.') so that readers can ignore them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import time

from shared_store.errors import StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

TMP_MARK = ".tmp-"
#: A temp file older than this belongs to a writer that died: no write takes a minute.
STALE_TMP_SECONDS = 60.0

# Errors that mean "the storage is not there" rather than "you asked for something wrong".
_UNAVAILABLE = {
    errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.ENODEV, errno.ENXIO, errno.EHOSTDOWN,
    errno.EHOSTUNREACH, errno.ETIMEDOUT, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOMEDIUM,
}


def store_error(exc: OSError, path: str | os.PathLike[str], action: str) -> StoreError:
    """Turn an OSError into a StoreError (or StoreUnavailable) that names the file."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in _UNAVAILABLE:
        return StoreUnavailable(
            f"cannot {action} {path}: {reason}; check that the store's filesystem is mounted, "
            f"writable and has free space"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StoreError(
            f"cannot {action} {path}: permission denied; run as the user who owns the store "
            f"or fix its permissions (chown/chmod)"
        )
    if exc.errno == errno.ENOTDIR:
        return StoreError(
            f"cannot {action} {path}: a parent of it is a file, not a directory; "
            f"move that file out of the store"
        )
    if exc.errno == errno.EISDIR:
        return StoreError(
            f"cannot {action} {path}: it is a directory where a record file belongs; "
            f"move that directory out of the store"
        )
    return StoreError(f"cannot {action} {path}: {reason}")


def is_temp_name(name: str) -> bool:
    """True for our temp files (and any other hidden file), which readers ignore."""
    return name.startswith(".")


def temp_path(path: str) -> str:
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(directory: str) -> None:
    """Make a rename, create or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: str) -> None:
    """Create ``directory`` and missing parents (mode 0700), each durably."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent != directory:
        ensure_dir(parent)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise
        return
    fsync_dir(parent)


def write_temp(path: str, data: bytes) -> str:
    """Write ``data`` durably to a new temp file beside ``path``; returns the temp's path."""
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(tmp)
        raise
    os.close(fd)
    return tmp


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    tmp = write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_dir(os.path.dirname(path))


def atomic_create(path: str, data: bytes) -> None:
    """Create ``path`` with ``data`` atomically; FileExistsError if it exists (never overwrites).

    A hard link publishes the complete file under its final name in one step, and unlike
    os.replace it refuses to replace an existing file, also on NFS.
    """
    tmp = write_temp(path, data)
    try:
        os.link(tmp, path)
    finally:
        _unlink_quietly(tmp)
    fsync_dir(os.path.dirname(path))


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def sweep_stale_temps(directory: str, now: float | None = None) -> int:
    """Remove temp files left in ``directory`` by writers that died; returns how many."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(".") and TMP_MARK in entry.name):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_SECONDS:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue  # gone already, or not ours to remove
    if removed:
        logger.info("removed %d stale temp file(s) in %s", removed, directory)
    return removed
