"""Fixtures for the shared-store tests: a store per backend, and worker processes.

The contract suite asks for ``store`` / ``make_store``; a later backend (etcd) plugs in by adding
its name to BACKENDS and a branch in ``make_store``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared_store import Store, init_store, open_store

ROOT = Path(__file__).resolve().parents[2]

WORKERS = Path(__file__).with_name("store_workers.py")
BACKENDS = ["directory", "directory-polling"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(backend: str, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Create a fresh store of the current backend; all are closed at teardown."""
    opened: list[Store] = []

    def make(settings: dict | None = None, name: str = "test") -> Store:
        path = tmp_path / f"store{len(opened)}"
        init_store(path, name=name, settings=settings or {}).close()
        url = path.as_uri() + ("?watch=poll" if backend == "directory-polling" else "")
        store = open_store(url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


class Workers:
    """Starts store_workers.py processes in their own process groups; kills them all at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, role: str, *args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WORKERS), role, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            cwd=ROOT,
        )
        self.started.append(proc)
        return proc

    def start_together(self, role: str, argsets: list[tuple[object, ...]]
                       ) -> list[subprocess.Popen[str]]:
        """Start workers that wait at a barrier ("ready"), then release them all at once."""
        procs = [self.start(role, *args) for args in argsets]
        for proc in procs:
            line = proc.stdout.readline()
            assert line.strip() == "ready", f"worker did not start: {line!r}"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return procs

    def result(self, proc: subprocess.Popen[str], timeout: float = 30) -> dict:
        """Wait for a worker to finish successfully; its one line of JSON output."""
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"worker failed ({proc.returncode}): {err}"
        return json.loads(out.strip().splitlines()[-1])

    def run(self, role: str, *args: object, timeout: float = 30) -> dict:
        return self.result(self.start(role, *args), timeout)

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:  # still ours: poll() has not reaped it, so the pid is not reused
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=10)

    def cleanup(self) -> None:
        for proc in self.started:
            self.kill(proc)


@pytest.fixture
def workers() -> Iterator[Workers]:
    w = Workers()
    try:
        yield w
    finally:
        w.cleanup()
