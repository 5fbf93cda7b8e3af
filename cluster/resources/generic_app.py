"""generic-app: MSCS's Generic Application resource. Failure = the process is gone.

The app runs in its own session and process group, so offline and terminate reach everything it
started. One thread per app waits on it (one waiting method per child, NOTES.md) and reports its
exit at once: failure is an event, not a poll. With `console = true` the app gets a pty (a
Textual app needs a terminal); its output is drained into a bounded ring so it never blocks, and
the master fd stays open in `master_fd` for the console host.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import pty
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from cluster.console.server import ConsoleServer
from cluster.resources.base import (
    ResourceContext,
    ResourceType,
    check_known,
    parse_argv,
    parse_bool,
    parse_seconds,
    require,
)

logger = logging.getLogger(__name__)

TYPE = "generic-app"
DEFAULT_STOP_TIMEOUT = 5.0
CONSOLE_SIZE = (24, 80)  # rows, cols: a pty starts at 0x0, which Textual cannot draw in
RING_BYTES = 256 * 1024
REAP_TIMEOUT = 5.0  # after SIGKILL; only a process stuck in the kernel takes longer

# Runs between fork and the app's exec in console mode: Popen has already called setsid(), and
# the pty must become the controlling terminal so that the app gets SIGWINCH and SIGHUP. Doing it
# in a separate interpreter avoids preexec_fn, which is unsafe in the threaded monitor.
_CTTY_LAUNCHER = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "try:\n"
    "    os.execvp(sys.argv[1], sys.argv[1:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'cannot start {sys.argv[1]}: {exc.strerror}\\r\\n')\n"
    "    os._exit(127)\n"
)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def parse_env(value: Any) -> dict[str, str]:
    """A table, or "K=V,K2=V2" from the command line."""
    if value is None:
        return {}
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep:
                raise ValueError(f"{TYPE}: env entry {item!r} has no '='; write env=KEY=VALUE,...")
            pairs.append((key.strip(), val))
    else:
        raise ValueError(f"{TYPE}: env must be a table or KEY=VALUE,KEY2=VALUE2")
    env: dict[str, str] = {}
    for key, val in pairs:
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"{TYPE}: bad environment variable name {key!r} in env")
        if isinstance(val, bool | dict | list) or val is None:
            raise ValueError(f"{TYPE}: env value of {key} must be a string, not {val!r}")
        env[key] = str(val)
    return env


class OutputRing:
    """The newest `limit` bytes of a console's output, plus listeners for live output."""

    def __init__(self, limit: int = RING_BYTES) -> None:
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[bytes], None]] = []

    def append(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            self._size += len(data)
            while self._size > self._limit and len(self._chunks) > 1:
                self._size -= len(self._chunks.popleft())
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(data)
            except Exception:
                logger.exception("console output listener failed")

    def snapshot(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)[-self._limit :]

    def add_listener(self, listener: Callable[[bytes], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[bytes], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(listener)


class GenericApp(ResourceType):
    """A program kept running; offline = SIGTERM the group, then SIGKILL after stop_timeout."""

    type_name = TYPE
    PROPS = ("command", "cwd", "env", "stop_timeout", "console", "checkpoints")

    @classmethod
    def validate(cls, props: dict[str, Any]) -> dict[str, Any]:
        check_known(TYPE, props, cls.PROPS)
        command = parse_argv(TYPE, "command", require(TYPE, props, "command", "command='app ARGS'"))
        cwd = props.get("cwd")
        if cwd is not None and (not isinstance(cwd, str) or not cwd.strip()):
            raise ValueError(f"{TYPE}: cwd must be a directory path, not {cwd!r}")
        checkpoints = props.get("checkpoints") or []
        if isinstance(checkpoints, str):
            checkpoints = [checkpoints]
        if not isinstance(checkpoints, list) or not all(
            isinstance(p, str) and p.strip() for p in checkpoints
        ):
            raise ValueError(f"{TYPE}: checkpoints must be a path or a list of paths")
        stop_timeout = props.get("stop_timeout", DEFAULT_STOP_TIMEOUT)
        return {
            "command": command,
            "cwd": cwd,
            "env": parse_env(props.get("env")),
            "stop_timeout": parse_seconds(TYPE, "stop_timeout", stop_timeout),
            "console": parse_bool(TYPE, "console", props.get("console", False)),
            "checkpoints": list(checkpoints),
        }

    def __init__(self, name: str, props: dict[str, Any], ctx: ResourceContext) -> None:
        super().__init__(name, props, ctx)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._create_time: float | None = None
        self._started_at: datetime | None = None
        self._stopping = False  # asked to stop: an exit is then not a failure
        self._terminated = False  # this instance is finished; a late online() must not start
        self._exited = threading.Event()
        self._returncode: int | None = None
        self.master_fd: int | None = None  # pty master of a console app, for the console host
        self.output = OutputRing()
        self.log_path: Path | None = None
        self.console: ConsoleServer | None = None

    # -- Online ---------------------------------------------------------------------------

    def online(self) -> None:
        with self._lock:
            if self._terminated:
                raise RuntimeError("terminated before it came online")
            if self._proc is not None:
                return
            argv = list(self.props["command"])
            env = {**os.environ, **self.ctx.env, **self.props["env"]}
            cwd = self.props["cwd"]
            if cwd is not None and not os.path.isdir(cwd):
                raise RuntimeError(f"working directory {cwd} does not exist; fix the cwd property")
            self._check_executable(argv[0], env, cwd)
            try:
                proc = self._spawn_console(argv, env, cwd) if self.props["console"] else (
                    self._spawn_logged(argv, env, cwd)
                )
            except OSError as exc:
                raise RuntimeError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
            self._proc = proc
            self._started_at = datetime.now(UTC)
            with contextlib.suppress(psutil.Error):
                self._create_time = psutil.Process(proc.pid).create_time()
        threading.Thread(target=self._watch, args=(proc,), name=f"wait-{self.name}",
                         daemon=True).start()
        logger.info("%s: started pid %d: %s", self.name, proc.pid, shlex.join(argv))

    @staticmethod
    def _check_executable(program: str, env: dict[str, str], cwd: str | None) -> None:
        """Fail online with a clear message rather than letting a console launcher die."""
        if os.sep in program:
            path = os.path.join(cwd or os.getcwd(), program)
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise RuntimeError(f"cannot start {program!r}: not an executable file")
        elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
            raise RuntimeError(f"cannot start {program!r}: command not found in PATH")

    def _spawn_logged(self, argv: list[str], env: dict[str, str], cwd: str | None):
        # Never inherit the monitor's stdout: it carries the protocol.
        log_dir = self.ctx.local_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.name}.log"
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def _spawn_console(self, argv: list[str], env: dict[str, str], cwd: str | None):
        master, slave = pty.openpty()
        try:
            rows, cols = CONSOLE_SIZE
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            env = {"TERM": "xterm-256color", **env}
            for name in ("COLUMNS", "LINES"):  # the pty's size rules, not the service's shell
                if name not in self.props["env"]:
                    env.pop(name, None)
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _CTTY_LAUNCHER, *argv], cwd=cwd, env=env,
                stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master_fd = master
        if self.ctx.console is not None:
            self.console = ConsoleServer(self.name, self.ctx.node, self.ctx.console,
                                         master_fd=lambda: self.master_fd, pid=self.pid)
            self.output.add_listener(self.console.on_output)
        threading.Thread(target=self._drain, args=(master,), name=f"pty-{self.name}",
                         daemon=True).start()
        return proc

    def _drain(self, master: int) -> None:
        """Read the console so the app never blocks on a full pty; EIO = every slave closed."""
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            self.output.append(data)
        with self._lock:
            self.master_fd = None
        if self.console is not None:
            self.console.close("the app's console closed")
        os.close(master)

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        # Wait without reaping first: the zombie pins the pid, so the group can be killed with
        # no risk of hitting a recycled pgid; then reap with Popen.wait (the only reaper).
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            unexpected = not self._stopping
        if unexpected:
            signal_group(proc.pid, signal.SIGKILL)
        self._returncode = proc.wait()
        self._exited.set()
        if unexpected:
            reason = describe_exit(self._returncode)
            logger.warning("%s: pid %d %s", self.name, proc.pid, reason)
            self.ctx.report_failure(reason)

    # -- Offline / Terminate --------------------------------------------------------------

    def offline(self) -> None:
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is None or self._exited.is_set():
            return
        pgid = proc.pid
        timeout = self.props["stop_timeout"]
        deadline = time.monotonic() + timeout
        signal_group(pgid, signal.SIGTERM)
        if self._exited.wait(timeout):
            # The leader is gone; give the rest of its group what is left of the grace period.
            while group_exists(pgid) and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            logger.warning("%s: pid %d ignored SIGTERM for %.1f s; killing its process group",
                           self.name, pgid, timeout)
        self._kill(proc)

    def terminate(self) -> None:
        with self._lock:
            self._terminated = True
            self._stopping = True
            proc = self._proc
        if proc is not None:
            self._kill(proc)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        if not self._exited.is_set():
            signal_group(proc.pid, signal.SIGKILL)  # a session leader cannot leave its group
        if not self._exited.wait(REAP_TIMEOUT):
            raise RuntimeError(f"pid {proc.pid} did not exit {REAP_TIMEOUT:.0f} s after SIGKILL")
        if group_exists(proc.pid):  # stragglers of a leader that exited on its own
            signal_group(proc.pid, signal.SIGKILL)

    # -- Checks and status ----------------------------------------------------------------

    def _status(self) -> str | None:
        proc = self._proc
        if proc is None or self._exited.is_set():
            return None
        try:
            process = psutil.Process(proc.pid)
            if self._create_time is not None and process.create_time() != self._create_time:
                return None
            return process.status()
        except psutil.NoSuchProcess:
            return None

    def looks_alive(self) -> bool:
        status = self._status()
        return status is not None and status != psutil.STATUS_ZOMBIE

    def is_alive(self) -> bool:
        # A stopped (SIGSTOP/SIGTSTP) app does not serve anyone: treat it as failed.
        return self._status() not in (
            None, psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD, psutil.STATUS_STOPPED
        )

    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and not self._exited.is_set() else None

    pgid = pid  # session leader: its pid is its group's id

    def details(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "command": shlex.join(self.props["command"]),
            "console": self.props["console"],
        }
        if self._started_at is not None:
            info["started_at"] = self._started_at.isoformat(timespec="seconds")
        if self.log_path is not None:
            info["log"] = str(self.log_path)
        if self._returncode is not None:
            info["exit"] = describe_exit(self._returncode)
        if self.console is not None:
            info["console_address"] = self.console.settings.address
            info["console_port"] = self.console.port
        return info

    @classmethod
    def admin_panel(cls, spec: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, str]]:
        """Command, pid, uptime and checkpoints (see ResourceType.admin_panel)."""
        details = status.get("details") or {}
        props = spec.get("properties") or {}
        command = details.get("command") or props.get("command") or "-"
        if isinstance(command, list | tuple):
            command = shlex.join(str(a) for a in command)
        online = status.get("state") == "online"
        rows = [("command", str(command)),
                ("pid", str(status.get("pid")) if online and status.get("pid") else "-")]
        started = details.get("started_at")
        if online and started:
            try:
                began: float | None = datetime.fromisoformat(started).timestamp()
            except ValueError:
                began = None
            rows.append(("started", str(started)))
            if began is not None:
                total = max(0, int(float(status.get("observed_at") or 0) - began))
                hours, rest = divmod(total, 3600)
                rows.append(("uptime", (f"{hours}h " if hours else "")
                             + f"{rest // 60:02d}m {rest % 60:02d}s"))
        if details.get("exit"):
            rows.append(("last exit", str(details["exit"])))
        rows.append(("console", "yes (hacluster attach)" if props.get("console") else "no"))
        paths = props.get("checkpoints") or []
        if isinstance(paths, str):
            paths = [p.strip() for p in paths.split(",") if p.strip()]
        copies = {c.get("path"): c for c in status.get("checkpoints") or []}
        for path in paths:
            copy = copies.get(path)
            if copy is None or not copy.get("files"):
                rows.append(("checkpoint", f"{path}: nothing saved yet"))
                continue
            when = copy.get("modified")
            saved = (datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S")
                     if isinstance(when, int | float) else "?")
            rows.append(("checkpoint", f"{path}: {copy['files']} file(s), {copy['bytes']} "
                         f"bytes, saved {saved} UTC"))
        if not paths:
            rows.append(("checkpoints", "none"))
        return rows
