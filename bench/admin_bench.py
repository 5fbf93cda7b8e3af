"""Idle CPU of ``hacluster admin`` on a real cluster: 3 nodes, 20 groups, nothing happening.

The dashboard runs as its own process in a pseudo-terminal (as in a workshop); once it shows
every group online, its CPU time is sampled with psutil once a second for ``--seconds``. Two
cases: the cluster selected (nothing on screen grows with time), and a generic app selected
(its uptime ticks once a second). Nodes renew their leases all the while (3 nodes x 4 writes
per lease TTL), so the dashboard sees a store change several times a second.

Prints one JSON object (percent of one core: median, p99, max of the 1 s samples, and the mean
over the whole period). Usage:
    python bench/admin_bench.py [--groups 20] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import ptyprocess
import pyte

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster import api  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402
from tests.integration.harness import PYTHON, Cluster  # noqa: E402

NODES = ("node1", "node2", "node3")
ROWS, COLS = 120, 160


class Terminal:
    """The dashboard in a pty; a thread keeps reading its output into a pyte screen."""

    def __init__(self, store: Path) -> None:
        code = ("from cluster.admin import run_admin; from shared_store import open_store; "
                f"run_admin(open_store({str(store)!r}))")
        self.screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self.proc = ptyprocess.PtyProcess.spawn(
            [PYTHON, "-c", code], dimensions=(ROWS, COLS),
            cwd=str(Path(__file__).resolve().parent.parent),
            env={**os.environ, "TERM": "xterm-256color"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.proc.fd], [], [], 0.5)
                if ready:
                    data = self.proc.read(65536)
                    with self._lock:
                        self._stream.feed(data)
            except (EOFError, OSError, ValueError):
                return

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def press(self, keys: str) -> None:
        self.proc.write(keys.encode())

    def close(self) -> None:
        if self.proc.isalive():
            self.proc.write(b"q")
            deadline = time.monotonic() + 5
            while self.proc.isalive() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.proc.isalive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.close(force=True)


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"n": len(samples), "median": round(statistics.median(ordered), 2),
            "p99": round(p99, 2), "max": round(ordered[-1], 2)}


def sample_cpu(pid: int, seconds: float) -> dict[str, float]:
    proc = psutil.Process(pid)
    samples = []
    first = proc.cpu_times()
    started = time.monotonic()
    last, last_at = first, started
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        now_times, now_at = proc.cpu_times(), time.monotonic()
        used = (now_times.user + now_times.system) - (last.user + last.system)
        samples.append(100.0 * used / (now_at - last_at))
        last, last_at = now_times, now_at
    total = (last.user + last.system) - (first.user + first.system)
    return {**stats(samples), "mean": round(100.0 * total / (last_at - started), 2)}


def create_groups(cluster: Cluster, count: int) -> list[str]:
    store = cluster.open()
    names = []
    for index in range(count):
        group = f"b{index:02d}"
        api.create_group(store, api.build_group(store, group, NODES))
        command = f"sleep {200000 + index}.{os.getpid()}"
        api.create_resource(store, api.build_resource(store, f"{group}-app", group,
                                                      "generic-app", {"command": command}))
        names.append(group)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    result: dict = {"benchmark": "admin-idle-cpu", "nodes": len(NODES), "groups": args.groups,
                    "seconds": args.seconds, "cpus": os.cpu_count(), "unit": "% of one core"}
    with tempfile.TemporaryDirectory(prefix="admin-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        terminal: Terminal | None = None
        try:
            cluster.start_nodes(*NODES)
            groups = create_groups(cluster, args.groups)
            for group in groups:
                cluster.wait_online(group, timeout=60)
            terminal = Terminal(cluster.store)
            last = groups[-1]
            wait_until(lambda: f"{last}  online" in terminal.text(), timeout=30, interval=0.1,
                       message="the dashboard to show every group online")
            time.sleep(2.0)  # let the start-up work (first paint, event history) finish
            result["idle_cluster_selected"] = sample_cpu(terminal.proc.pid, args.seconds)
            # Select the first group's app: its uptime is redrawn once a second.
            terminal.press("\x1b[B" * (2 + len(NODES) + 2))
            wait_until(lambda: "uptime" in terminal.text(), timeout=10, interval=0.1,
                       message="the app's detail with its uptime")
            time.sleep(1.0)
            result["idle_app_selected"] = sample_cpu(terminal.proc.pid, args.seconds)
            result["store_writes_per_second"] = round(
                len(NODES) / (cluster.lease_ttl / 4), 1)
        finally:
            if terminal is not None:
                terminal.close()
            cluster.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
