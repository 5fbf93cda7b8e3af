"""Fixtures for the editor's tests: the app under ``run_test()``, and the real editor in a pty.

``PtyEditor`` runs ``python -m hanotepad`` in a pseudo-terminal (ptyprocess), reads the
screen with pyte, and types through the pty like a user. Every editor a test starts is
killed (whole process group) when the test ends, pass or fail.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import ptyprocess
import pyte
import pytest

from hanotepad.app import HaNotepadApp, make_app
from tests.helpers.wait import wait_until, wait_until_async

ROWS, COLUMNS = 24, 80


class PtyEditor:
    """One hanotepad process in a pty, with its screen mirrored by pyte."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = ptyprocess.PtyProcess.spawn(
            [sys.executable, "-m", "hanotepad", *args],
            env=env,
            cwd=str(cwd),
            dimensions=(ROWS, COLUMNS),
        )
        self.spawned_at = time.monotonic()
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.mirror = True
        """Feed output to the pyte screen. Off while typing fast: parsing every frame costs
        the test more CPU than the editor uses, and would starve the editor on a small box."""
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def _read(self) -> None:
        fd = self.proc.fd
        while not self._stop.is_set():
            try:
                readable, _, _ = select.select([fd], [], [], 0.05)
                if not readable:
                    continue
                data = os.read(fd, 65536)
            except OSError:  # EIO once the editor is gone, EBADF once closed
                return
            if not data:
                return
            if self.mirror:
                with self._lock:
                    self._stream.feed(data)

    def hang_up(self) -> None:
        """Close the terminal (the pty's master side), as closing a terminal window does."""
        self._stop.set()
        self._reader.join(timeout=2)
        self.proc.fileobj.close()

    def display(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def wait_for_text(self, text: str, timeout: float = 10.0) -> str:
        return wait_until(
            lambda: text in self.display() and self.display(),
            timeout=timeout,
            message=f"{text!r} on the editor's screen",
        )

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait for the first full screen: status bar (line:col) and footer are drawn."""
        wait_until(
            lambda: all(part in self.display() for part in ("Ln ", "Col ", "palette")),
            timeout=timeout,
            message="the editor's first screen",
        )

    def type(self, text: str | bytes) -> float:
        """Write to the pty; returns the monotonic time of the write."""
        data = text.encode() if isinstance(text, str) else text
        self.proc.write(data)
        return time.monotonic()

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        """Wait for the process to end; returns its exit status (None if signalled)."""
        wait_until(lambda: not self.proc.isalive(), timeout=timeout, message="the editor to exit")
        return self.proc.exitstatus

    def close(self) -> None:
        """Kill the editor's whole process group and release the pty."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._stop.set()
        self._reader.join(timeout=2)
        with suppress(Exception):  # already closed
            self.proc.close(force=True)


@pytest.fixture
def editor_env(tmp_path: Path) -> dict[str, str]:
    """Environment for an editor process: its own state dir, a known terminal."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEXTUAL", "XDG_", "HANOTEPAD"))
    }
    env.update(
        TERM="xterm-256color",
        XDG_STATE_HOME=str(tmp_path / "state"),
        HOME=str(tmp_path),
        HANOTEPAD_LOG=str(tmp_path / "editor.log"),
    )
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    return env


@pytest.fixture
def spawn_editor(tmp_path: Path, editor_env: dict[str, str]) -> Iterator[Callable[..., PtyEditor]]:
    """Start hanotepad in a pty: ``spawn_editor("notes.txt")``; all are killed at teardown."""
    editors: list[PtyEditor] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> PtyEditor:
        editor = PtyEditor(list(args), env or editor_env, tmp_path)
        editors.append(editor)
        return editor

    yield spawn
    for editor in editors:
        editor.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "hanotepad"


@pytest.fixture
def run_editor(state_dir: Path) -> Callable[..., Any]:
    """``async with run_editor(path) as (app, pilot)``: the app under run_test(), loaded."""

    @asynccontextmanager
    async def run(
        path: Path | str | None, *, size: tuple[int, int] = (80, 24), **options: Any
    ) -> AsyncIterator[tuple[HaNotepadApp, Any]]:
        options.setdefault("state_dir", state_dir)
        app = make_app(path, **options)
        async with app.run_test(size=size) as pilot:
            await wait_until_async(lambda: app.ready, message="the editor to load its file")
            await pilot.pause()
            yield app, pilot

    return run
