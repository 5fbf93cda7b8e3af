"""Helpers for leaving safely: unread terminal input, recovery copies, a last-resort exit."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hanotepad.fileio import FileProblem, atomic_write

logger = logging.getLogger(__name__)


def pending_input_bytes(fd: int = 0) -> int:
    """Bytes typed into the terminal that the app has not read yet (0 if unknown)."""
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


async def wait_for_quiet_input(
    revision: Callable[[], int],
    queues_empty: Callable[[], bool],
    *,
    limit: float,
    poll: float = 0.02,
    quiet_polls: int = 3,
) -> bool:
    """Wait until typed keys have all reached the buffer; False if ``limit`` passed first.

    Quiet means, for ``quiet_polls`` polls in a row: nothing unread on the terminal,
    no message waiting in the UI's queues, and the buffer's revision unchanged.
    """
    deadline = time.monotonic() + limit
    last, quiet = revision(), 0
    while quiet < quiet_polls:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll)
        current = revision()
        calm = current == last and pending_input_bytes() == 0 and queues_empty()
        quiet = quiet + 1 if calm else 0
        last = current
    return True


def terminal_gone(fd: int = 0) -> bool:
    """True when our terminal was hung up (closed): its calls fail with EIO."""
    try:
        termios.tcgetattr(fd)
    except termios.error as error:
        return bool(error.args) and error.args[0] == errno.EIO
    return False


def write_recovery(state_dir: Path, name: str, text: str, now: float | None = None) -> Path | None:
    """Keep text that could not go to its file in ``<state_dir>/recovered/``.

    Used when the editor must exit (a signal) while its file cannot take the text:
    a conflict with a newer version on disk, an unwritable location, or an
    untitled buffer. Returns the path written, or None if even that failed.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    stem, dot, suffix = (name or "untitled.txt").rpartition(".")
    base = f"{stem}-{stamp}.{suffix}" if dot and stem else f"{name or 'untitled'}-{stamp}.txt"
    directory = state_dir / "recovered"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / base
        counter = 1
        while path.exists():
            counter += 1
            path = directory / base.replace(stamp, f"{stamp}-{counter}", 1)
        atomic_write(path, text.encode("utf-8"))
    except (OSError, FileProblem) as error:
        logger.error("could not write a recovery copy of %s: %s", name, error)
        return None
    logger.warning("kept unsaved text of %s in %s", name, path)
    return path


def exit_soon(seconds: float, code: int = 0) -> None:
    """End the process after ``seconds`` even if shutting the UI down hangs.

    After a SIGHUP the terminal is gone and restoring it can block or fail; the
    text is already saved by then, so a hard exit loses nothing.
    """
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()
