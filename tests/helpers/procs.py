"""Process cleanup for tests that start real processes: kill whole trees and groups by PID.

    @pytest.fixture
    def procs() -> Iterator[ProcessTracker]:
        with ProcessTracker() as tracker:
            yield tracker

    def test_x(procs):
        proc = procs.track(subprocess.Popen([...], start_new_session=True))
        procs.track_group(pgid_reported_by_the_monitor)

At teardown (even after a failed assertion) every tracked process, every descendant it has then
or had when `track_tree` saw it, and every tracked process group gets SIGKILL, and the tracker
waits until they are gone. psutil.Process objects remember their start time, so a recycled PID
is never killed by mistake. The test runner's own process and process group are never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from types import TracebackType
from typing import Any

import psutil


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie (psutil.pid_exists is True for zombies)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_alive(pgid: int) -> bool:
    """True if any non-zombie process is in process group `pgid`."""
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class ProcessTracker:
    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}
        self._pgids: set[int] = set()
        self._protected = {os.getpid(), *(p.pid for p in psutil.Process().parents())}

    def track(self, target: int | subprocess.Popen[Any] | psutil.Process) -> psutil.Process | None:
        """Remember one process (and, at teardown, its descendants). Returns it, or None if
        it is already gone."""
        pid = target.pid if isinstance(target, subprocess.Popen | psutil.Process) else target
        try:
            proc = target if isinstance(target, psutil.Process) else psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None
        if proc.pid not in self._protected:
            self._procs.setdefault(proc.pid, proc)
        return proc

    def track_tree(self, pid: int) -> list[psutil.Process]:
        """Remember a process and its descendants now: they survive it if it dies first."""
        root = self.track(pid)
        if root is None:
            return []
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        return [root, *(c for c in children if self.track(c) is not None)]

    def track_group(self, pgid: int | None) -> None:
        if pgid and pgid > 1 and pgid != os.getpgrp():
            self._pgids.add(pgid)

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL everything tracked; wait until gone. Returns the PIDs still alive (none,
        unless stuck in the kernel)."""
        victims: dict[int, psutil.Process] = {}
        for proc in self._procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running():
                    victims[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        victims.setdefault(child.pid, child)
        for pgid in self._pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        for pid, proc in victims.items():
            if pid in self._protected:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self._procs.clear()
        self._pgids.clear()
        # A zombie is dead enough: an orphan's zombie waits for PID 1, which may be slow to reap.
        deadline = time.monotonic() + timeout
        while True:
            psutil.wait_procs(list(victims.values()), timeout=0)  # reaps our own children
            alive = [pid for pid, proc in victims.items() if _running(proc)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.01)

    def __enter__(self) -> ProcessTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill_all()
