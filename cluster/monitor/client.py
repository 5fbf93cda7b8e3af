"""MonitorClient: the node service's end of the resource monitor.

Creating a client starts `python -m cluster.monitor` with pipes for commands and events. A reader
thread parses events and calls `on_event(event)`; when the monitor process ends, it calls
`on_exit(returncode)` — for a crash as for a requested shutdown. The client remembers the last
process group of each resource (`hosted_pgids`), because when a monitor dies its apps live on in
their own sessions, and the service must kill them (MSCS: the cluster service cleans up after a
dead resource monitor).

The reader thread is also the thread that spawns the monitor: Linux sends PR_SET_PDEATHSIG when
the *thread* that forked a child ends, and this thread lives exactly as long as the monitor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from cluster.monitor.protocol import FAILED, OFFLINE, encode

logger = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]
ExitCallback = Callable[[int | None], None]


class MonitorError(RuntimeError):
    """The monitor process could not be started or did not become ready."""


class MonitorClient:
    def __init__(self, node: str, local_dir: Path | str, data_dir: Path | str, *,
                 on_event: EventCallback | None = None, on_exit: ExitCallback | None = None,
                 stderr: IO[Any] | int | None = None, log_level: str = "INFO",
                 python: str | None = None, address: str | None = None,
                 secret_file: Path | str | None = None) -> None:
        """Start the monitor. `stderr` is a file, an fd, subprocess.DEVNULL or None (inherit);
        the caller may close its own file object once the constructor returns."""
        self.node = node
        self._on_event = on_event
        self._on_exit = on_exit
        self._argv = [
            python or sys.executable, "-m", "cluster.monitor", "--node", node,
            "--local-dir", str(local_dir), "--data-dir", str(data_dir),
            "--parent-pid", str(os.getpid()), "--log-level", log_level,
        ]
        if address is not None:
            self._argv += ["--address", address]
        if secret_file is not None:
            self._argv += ["--secret-file", str(secret_file)]
        self._stderr = stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawn_error: BaseException | None = None
        self._spawned = threading.Event()
        self._hello = threading.Event()
        self._exited = threading.Event()
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._pgids: dict[str, int] = {}
        self._states: dict[str, dict[str, Any]] = {}
        self.returncode: int | None = None
        self._reader = threading.Thread(target=self._run, name=f"monitor-{node}", daemon=True)
        self._reader.start()
        self._spawned.wait()
        if self._spawn_error is not None:
            raise MonitorError(f"cannot start the resource monitor: {self._spawn_error}")

    # -- Process ---------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and not self._exited.is_set() and self._proc.poll() is None

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait for the monitor's hello; raise MonitorError if it exits or takes too long."""
        if not self._hello.wait(timeout):
            state = "exited" if self._exited.is_set() else "is silent"
            raise MonitorError(f"the resource monitor {state} (no hello within {timeout:g} s)")

    def wait_exit(self, timeout: float | None = None) -> int | None:
        self._exited.wait(timeout)
        return self.returncode

    def shutdown(self, timeout: float = 10.0) -> int | None:
        """Ask the monitor to terminate everything and exit; past `timeout`, SIGKILL it and
        kill the process groups it hosted. Returns its exit code."""
        self.send({"op": "shutdown"})
        if self._proc is not None and self._proc.stdin is not None:
            with self._write_lock, contextlib.suppress(OSError):
                self._proc.stdin.close()  # EOF: the second way to say the same
        if not self._exited.wait(timeout):
            logger.error("resource monitor %s did not exit within %g s; killing it", self.pid,
                         timeout)
            self.kill()
            self.kill_hosted()
            self._exited.wait(5.0)
        self._reader.join(5.0)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the monitor (a crash). The apps it hosted survive: see kill_hosted()."""
        if self._proc is not None and not self._exited.is_set():
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGKILL)

    # -- Commands ----------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> bool:
        """Write one command; False (and a warning) when the monitor is gone — on_exit tells."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return False
        data = encode(message)
        with self._write_lock:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (OSError, ValueError) as exc:  # BrokenPipe, or stdin already closed
                logger.warning("resource monitor gone; dropped %s (%s)", message.get("op"), exc)
                return False
        return True

    def online(self, resource: str, type: str, props: dict[str, Any],
               env: dict[str, str] | None = None, timing: dict[str, float] | None = None) -> bool:
        message: dict[str, Any] = {"op": "online", "resource": resource, "type": type,
                                   "props": props, "env": env or {}}
        if timing:
            message["timing"] = timing
        return self.send(message)

    def offline(self, resource: str) -> bool:
        return self.send({"op": "offline", "resource": resource})

    def terminate(self, resource: str) -> bool:
        return self.send({"op": "terminate", "resource": resource})

    def lease(self, valid_for: float) -> bool:
        return self.send({"op": "lease", "valid_for": valid_for})

    def ping(self, id: Any = None) -> bool:
        return self.send({"op": "ping", "id": id})

    # -- What the monitor told us --------------------------------------------------------------

    def hosted_pgids(self) -> dict[str, int]:
        """Last known process group of each resource that may still be running."""
        with self._state_lock:
            return dict(self._pgids)

    def states(self) -> dict[str, dict[str, Any]]:
        """Last state event of each resource."""
        with self._state_lock:
            return dict(self._states)

    def kill_hosted(self) -> dict[str, int]:
        """SIGKILL every hosted process group (after the monitor died); returns them."""
        pgids = self.hosted_pgids()
        for pgid in pgids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        return pgids

    # -- Reader thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._proc = subprocess.Popen(
                self._argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            )
        except OSError as exc:
            self._spawn_error = exc
            self._exited.set()
            return
        finally:
            self._spawned.set()
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                logger.warning("resource monitor sent a bad line: %r", raw[:200])
                continue
            if isinstance(event, dict):
                self._note(event)
                self._callback(self._on_event, event)
        self.returncode = self._proc.wait()
        self._exited.set()
        level = logging.INFO if self.returncode == 0 else logging.ERROR
        logger.log(level, "resource monitor %d exited with code %s", self._proc.pid,
                   self.returncode)
        self._callback(self._on_exit, self.returncode)

    def _note(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "hello":
            self._hello.set()
        elif kind == "state" and isinstance(event.get("resource"), str):
            name = event["resource"]
            with self._state_lock:
                self._states[name] = event
                pgid = event.get("pgid")
                if isinstance(pgid, int) and pgid > 1:
                    self._pgids[name] = pgid
                elif event.get("state") in (OFFLINE, FAILED):
                    self._pgids.pop(name, None)

    @staticmethod
    def _callback(callback: Callable[..., None] | None, arg: Any) -> None:
        if callback is None:
            return
        try:
            callback(arg)
        except Exception:
            logger.exception("monitor client callback failed")
