"""A real terminal for end-to-end tests: a command in a pty, its screen mirrored by pyte.

    with Terminal([sys.executable, "-m", "cluster", "attach", "g", "--store", s]) as term:
        term.wait_for_text("Ln 1, Col 1")
        term.send(b"hello")
        term.resize(30, 100)

The command runs in a new session with the pty as its controlling terminal (so it gets SIGWINCH
on resize and SIGHUP on hang-up, as under a terminal emulator). A reader thread feeds everything
the command writes into a pyte screen and keeps the raw bytes, so tests can look at what a person
would see and at what crossed the wire. With ``answer_in_band_resize`` the terminal says "yes" to
Textual's in-band resize query, as modern terminals (kitty, foot, ghostty) do: a relay that lets
the query through then breaks pty resizes, which a test can see. ``close()`` kills the command's
whole process group and reaps it, even when a test failed half way.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from types import TracebackType

import pyte

from tests.helpers.wait import wait_until

# Same technique as the console host (cluster/resources/generic_app.py): make the pty the
# controlling terminal in a fresh interpreter, never with preexec_fn in a threaded process.
_CTTY_LAUNCHER = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)
IN_BAND_RESIZE_QUERY = b"\x1b[?2048$p"
IN_BAND_RESIZE_SUPPORTED = b"\x1b[?2048;2$y"  # DECRPM: mode known, currently reset


class Terminal:
    """One command in a pty of ``rows`` x ``cols``, read by a pyte screen."""

    def __init__(self, argv: list[str], rows: int = 24, cols: int = 80,
                 env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
                 answer_in_band_resize: bool = False) -> None:
        self.rows, self.cols = rows, cols
        self.answer_in_band_resize = answer_in_band_resize
        self.in_band_queries_answered = 0
        master, slave = os.openpty()
        try:
            self._set_winsize(slave, rows, cols)
            full_env = {**os.environ, "TERM": "xterm-256color", **(env or {})}
            for name in ("COLUMNS", "LINES"):
                full_env.pop(name, None)
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _CTTY_LAUNCHER, *argv], stdin=slave,
                stdout=slave, stderr=slave, env=full_env, cwd=cwd, start_new_session=True)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master_fd: int | None = master
        self.pgid = self.proc.pid  # session leader
        self.screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self.screen)
        self._raw = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="terminal-reader", daemon=True)
        self._reader.start()

    @staticmethod
    def _set_winsize(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    # --- reading --------------------------------------------------------------------------

    def _read(self) -> None:
        fd = self.master_fd
        assert fd is not None
        tail = b""
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([fd], [], [], 0.05)
                if not readable:
                    continue
                data = os.read(fd, 65536)
            except OSError:  # EIO once every slave fd is closed, EBADF once we closed it
                return
            if not data:
                return
            with self._lock:
                self._raw += data
                self._stream.feed(data)
            if self.answer_in_band_resize:
                window = tail + data
                count = window.count(IN_BAND_RESIZE_QUERY)
                tail = window[-(len(IN_BAND_RESIZE_QUERY) - 1):]
                for _ in range(count):
                    self.in_band_queries_answered += 1
                    self.send(IN_BAND_RESIZE_SUPPORTED)

    def text(self) -> str:
        """The screen as a person sees it: ``rows`` lines of ``cols`` characters."""
        with self._lock:
            return "\n".join(self.screen.display)

    def line(self, n: int) -> str:
        """Row ``n`` of the screen (negative counts from the bottom)."""
        with self._lock:
            return self.screen.display[n]

    def lines(self) -> list[str]:
        with self._lock:
            return list(self.screen.display)

    def cursor(self) -> tuple[int, int]:
        """The terminal cursor as (row, column), zero-based."""
        with self._lock:
            return self.screen.cursor.y, self.screen.cursor.x

    def cells(self, row: int) -> list[pyte.screens.Char]:
        """Row ``row`` as pyte characters (with colours and attributes)."""
        with self._lock:
            line = self.screen.buffer[row]
            return [line[col] for col in range(self.screen.columns)]

    def raw(self) -> bytes:
        """Every byte the command wrote to the terminal so far."""
        with self._lock:
            return bytes(self._raw)

    def wait_for_text(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` is on the screen; returns the screen."""
        def shown() -> str | None:
            screen = self.text()
            return screen if text in screen else None
        try:
            return wait_until(shown, timeout=timeout, interval=0.02,
                              message=f"{text!r} on the terminal")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- screen ---\n{self.text()}") from None

    def wait_for_raw(self, data: bytes, since: int = 0, timeout: float = 10.0) -> int:
        """Wait until ``data`` was written to the terminal at or after offset ``since`` of
        ``raw()`` (for text that is on screen only briefly); returns where it starts."""
        def found() -> int | None:
            at = self.raw().find(data, since)
            return at + 1 if at >= 0 else None
        try:
            return wait_until(found, timeout=timeout, interval=0.02,
                              message=f"{data!r} written to the terminal") - 1
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- screen ---\n{self.text()}") from None

    # --- writing and control ----------------------------------------------------------------

    def send(self, data: bytes | str) -> None:
        """Type: write to the pty master as a terminal emulator does."""
        fd = self.master_fd
        if fd is None:
            raise RuntimeError("the terminal is closed")
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:
            view = view[os.write(fd, view):]

    def resize(self, rows: int, cols: int) -> None:
        """Resize the window: the kernel sends SIGWINCH to the foreground process group."""
        fd = self.master_fd
        if fd is None:
            raise RuntimeError("the terminal is closed")
        with self._lock:
            self.screen.resize(rows, cols)
        self.rows, self.cols = rows, cols
        self._set_winsize(fd, rows, cols)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the command (the session leader) to exit; its exit code."""
        return self.proc.wait(timeout)

    def hang_up(self) -> None:
        """Close the master side, as closing a terminal window does (SIGHUP to the session)."""
        self._stop.set()
        self._reader.join(timeout=2)
        fd, self.master_fd = self.master_fd, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Kill the command's process group, close the pty and reap: never leaves anything."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.hang_up()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        # Anything that left the group but kept the session (none of ours do) goes too.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and _session_members(self.pgid):
            for pid in _session_members(self.pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (zombies excluded)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            if os.getsid(pid) != sid:
                continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (ProcessLookupError, PermissionError, FileNotFoundError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            members.append(pid)
    return members
