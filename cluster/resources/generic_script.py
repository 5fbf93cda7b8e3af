"""generic-script: MSCS's Generic Script resource, with OCF resource-agent exit codes.

The script is called as `SCRIPT ACTION` with ACTION one of online, offline, looks-alive,
is-alive, terminate, in its own process group, with the node's environment plus
HACLUSTER_RESOURCE=<name>. Each call must finish within `timeout` seconds (default 30), or its
whole process group is killed and the call counts as an error. `terminate` first kills any call
still in flight (a hung online must not outlive it), then runs `SCRIPT terminate`; processes the
script leaves behind are its own to stop in offline and terminate.

Exit codes (as OCF resource agents, Pacemaker's `ocf_exitcodes`):

    0  success: online/offline done, or looks-alive/is-alive: running
    7  not running: looks-alive/is-alive fail; offline and terminate count it as success
    1  generic error          2  invalid argument     3  unimplemented
    4  insufficient privilege 5  not installed        6  not configured
    any other code, a signal or a timeout: error

An error from online or offline fails the resource (the monitor then terminates it); an error
from looks-alive/is-alive fails it too. The last line of the script's stderr is the message.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import threading
from typing import Any

from cluster.resources.base import (
    ResourceType,
    check_known,
    parse_argv,
    parse_seconds,
    require,
)

logger = logging.getLogger(__name__)

TYPE = "generic-script"
DEFAULT_TIMEOUT = 30.0
STDERR_GRACE = 0.2  # s to collect stderr after the script exits
OCF_SUCCESS = 0
OCF_NOT_RUNNING = 7
OCF_NAMES = {
    1: "generic error",
    2: "invalid argument",
    3: "unimplemented",
    4: "insufficient privilege",
    5: "not installed",
    6: "not configured",
    7: "not running",
}


class ScriptError(RuntimeError):
    """The script failed an action; the message says which, how and the script's last words."""


class GenericScript(ResourceType):
    type_name = TYPE
    PROPS = ("script", "timeout")

    @classmethod
    def validate(cls, props: dict[str, Any]) -> dict[str, Any]:
        check_known(TYPE, props, cls.PROPS)
        script = parse_argv(TYPE, "script", require(TYPE, props, "script", "script=/path/agent"))
        timeout = parse_seconds(TYPE, "timeout", props.get("timeout", DEFAULT_TIMEOUT))
        return {"script": script, "timeout": timeout}

    def __init__(self, name, props, ctx) -> None:
        super().__init__(name, props, ctx)
        self._lock = threading.Lock()
        self._running: set[int] = set()  # pgids of calls in flight, killed by terminate()
        self._terminated = False

    def _call(self, action: str) -> int:
        """Run one action; return its exit code, or raise ScriptError on timeout or spawn error.

        Waits for the script to exit, not for its pipes to close: an online script may leave a
        daemon behind that keeps stderr open (and lives on in the script's process group).
        """
        argv = [*self.props["script"], action]
        env = {**os.environ, **self.ctx.env, "HACLUSTER_RESOURCE": self.name}
        timeout = self.props["timeout"]
        with self._lock:
            if self._terminated and action != "terminate":
                raise ScriptError(f"{action}: resource was terminated")
            try:
                proc = subprocess.Popen(
                    argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, start_new_session=True,
                )
            except OSError as exc:
                raise ScriptError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
            self._running.add(proc.pid)
        last_lines: collections.deque[str] = collections.deque(maxlen=1)
        reader = threading.Thread(target=self._read_stderr, args=(proc, action, last_lines),
                                  name=f"script-{self.name}", daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            raise ScriptError(f"script {action} timed out after {timeout:g} s") from None
        finally:
            with self._lock:
                self._running.discard(proc.pid)
        reader.join(STDERR_GRACE)  # returns at once unless a daemon holds stderr open
        if code not in (OCF_SUCCESS, OCF_NOT_RUNNING):
            if code < 0:
                how = f"was killed by signal {-code}"
            else:
                how = f"failed with exit code {code} ({OCF_NAMES.get(code, 'error')})"
            last = last_lines[0] if last_lines else ""
            raise ScriptError(f"script {action} {how}" + (f": {last}" if last else ""))
        return code

    def _read_stderr(self, proc: subprocess.Popen[bytes], action: str,
                     last_lines: collections.deque[str]) -> None:
        assert proc.stderr is not None
        with proc.stderr:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    last_lines.append(line)
                    logger.info("%s: script %s: %s", self.name, action, line)

    def online(self) -> None:
        if self._call("online") == OCF_NOT_RUNNING:
            raise ScriptError("script online returned 7 (not running)")

    def offline(self) -> None:
        self._call("offline")  # 0 and 7 both mean it is down

    def terminate(self) -> None:
        with self._lock:
            self._terminated = True
            in_flight = list(self._running)
        for pgid in in_flight:  # a hung online/check must not outlive terminate
            _kill_group(pgid)
        try:
            self._call("terminate")
        except ScriptError as exc:
            logger.warning("%s: %s", self.name, exc)  # terminate must not raise

    def looks_alive(self) -> bool:
        return self._call("looks-alive") == OCF_SUCCESS

    def is_alive(self) -> bool:
        return self._call("is-alive") == OCF_SUCCESS

    def details(self) -> dict[str, Any]:
        return {"script": " ".join(self.props["script"]), "timeout": self.props["timeout"]}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
