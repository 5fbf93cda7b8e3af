"""Process-tree helpers shared by the CLI, the node service and the tests.

A killed process whose parent is gone may stay a zombie for a while under a container's init,
so "gone" here means no longer running: vanished or a zombie.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil


def running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until none of ``procs`` runs; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if running(p)]
    while alive and time.monotonic() < deadline:
        for proc in alive:
            with contextlib.suppress(psutil.Error, ChildProcessError):
                proc.wait(timeout=0)  # reaps our own children at once
        time.sleep(0.01)  # bounded poll of other processes' states
        alive = [p for p in alive if running(p)]
    return alive


def kill_tree(pid: int, timeout: float = 5.0) -> list[int]:
    """SIGKILL a process, all its descendants and their process groups, all at once."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(proc.pid) == proc.pid and proc.pid != os.getpgid(0):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    wait_gone(tree, timeout)
    return [p.pid for p in tree]
