"""`python -m cluster.monitor`: the resource monitor process, started by the node service.

It shields the node service from misbehaving resources, as MSCS's resmon.exe did. Commands come
as JSON lines on stdin, events leave as JSON lines on stdout, logs go to stderr. When stdin ends
(the service died, even by SIGKILL), on SIGTERM/SIGHUP, or when the parent dies (PDEATHSIG), it
terminates every resource it hosts and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import selectors
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from cluster.console.server import ConsoleSettings
from cluster.monitor.host import ResourceHost
from cluster.monitor.protocol import (
    MAX_LINE,
    LineSplitter,
    ProtocolError,
    encode,
    error_event,
    parse_command,
)

logger = logging.getLogger("cluster.monitor")

PR_SET_PDEATHSIG = 1


class EventWriter:
    """Serialises every event write to the protocol fd under one lock."""

    def __init__(self, fd: int, on_broken: Any) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._broken = False
        self._on_broken = on_broken

    def __call__(self, message: dict[str, Any]) -> None:
        data = encode(message)
        with self._lock:
            if self._broken:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as exc:  # the service is gone: stop, as on stdin EOF
                self._broken = True
                logger.warning("cannot write events (%s); stopping", exc)
                self._on_broken()


def set_parent_death_signal(sig: int) -> bool:
    """Linux prctl(PR_SET_PDEATHSIG): a second line of defence behind stdin EOF."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def isolate_stdio() -> tuple[int, int]:
    """Move the protocol pipes to private fds; fds 0/1 become /dev/null and stderr.

    A resource that prints, or a child that inherits fd 1, can then never corrupt the event
    stream, and no child holds the command pipe open after the service dies.
    """
    cmd_fd, event_fd = os.dup(0), os.dup(1)  # dup'ed fds are not inherited by children
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return cmd_fd, event_fd


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster.monitor",
                                     description="hacluster resource monitor (internal)")
    parser.add_argument("--node", required=True)
    parser.add_argument("--local-dir", required=True, type=Path)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--parent-pid", type=int, default=None,
                        help="exit at once if this process is no longer the parent")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--address", default="127.0.0.1",
                        help="where consoles of interactive apps listen")
    parser.add_argument("--secret-file", type=Path, default=None,
                        help="the cluster secret that console clients must prove")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level.upper(),
        format=f"%(asctime)s monitor[{args.node}:{os.getpid()}] %(levelname)s %(name)s: "
               "%(message)s")
    cmd_fd, event_fd = isolate_stdio()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: None)  # the byte on wake_w does the work
    # Ctrl-C in the node's terminal reaches the whole process group: the service decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not set_parent_death_signal(signal.SIGTERM):
        logger.warning("PR_SET_PDEATHSIG unavailable; relying on stdin EOF alone")
    if args.parent_pid is not None and os.getppid() != args.parent_pid:
        logger.error("parent %d already gone; exiting", args.parent_pid)
        return 1

    emit = EventWriter(event_fd, on_broken=lambda: os.write(wake_w, b"!"))
    console = None
    if args.secret_file is not None:
        try:
            secret = args.secret_file.read_bytes()  # exactly what store.secret() gave
        except OSError as exc:
            logger.error("cannot read the cluster secret (%s): consoles are disabled", exc)
        else:
            console = ConsoleSettings(address=args.address, secret=secret)
    host = ResourceHost(args.node, args.local_dir, args.data_dir, emit, console=console)
    emit({"event": "hello", "pid": os.getpid()})
    reason = serve(cmd_fd, wake_r, host, emit)
    logger.info("stopping (%s): terminating hosted resources", reason)
    host.close()
    logger.info("stopped")
    return 0


def serve(cmd_fd: int, wake_fd: int, host: ResourceHost, emit: EventWriter) -> str:
    """Read commands until EOF, shutdown, a signal or a broken event pipe; return why."""
    splitter = LineSplitter(MAX_LINE)
    with selectors.DefaultSelector() as selector:
        selector.register(cmd_fd, selectors.EVENT_READ)
        selector.register(wake_fd, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fd == wake_fd:
                    data = b""
                    with contextlib.suppress(BlockingIOError):
                        data = os.read(wake_fd, 64)
                    # The signal module writes the signal number; EventWriter writes b"!".
                    return "signal" if data.strip(b"!") else "event pipe closed"
                data = os.read(cmd_fd, 65536)
                if not data:
                    return "stdin closed"
                for item in splitter.feed(data):
                    if isinstance(item, ProtocolError):
                        emit(error_event(str(item)))
                        continue
                    if dispatch(item, host, emit):
                        return "shutdown requested"


def dispatch(line: bytes, host: ResourceHost, emit: EventWriter) -> bool:
    """Obey one command line; True for shutdown. Nothing here may stop the monitor."""
    try:
        cmd = parse_command(line)
    except ProtocolError as exc:
        logger.warning("bad command: %s", exc)
        emit(error_event(str(exc)))
        if exc.resource is not None:  # a refused online: the service must not wait for it
            host.reject(exc.resource, str(exc))
        return False
    if cmd.op == "shutdown":
        return True
    try:
        host.handle(cmd)
    except Exception as exc:  # a bug must cost one command, not every hosted resource
        logger.exception("command %s failed", cmd.op)
        emit(error_event(f"{cmd.op} {cmd.resource or ''}: internal error: {exc}"))
    return False


if __name__ == "__main__":
    sys.exit(main())
