"""Idle CPU of ``hacluster admin`` on a real cluster: 3 nodes, 20 groups, nothing happening.

The dashboard runs as its own process in a pseudo-terminal (as in a workshop); once it shows
every group online, its CPU time is sampled with psutil once a second for ``--seconds``. Two
cases: the cluster selected (nothing on screen grows with time), and a generic app selected
(its uptime ticks once a second). Nodes renew their leases all the while (3 nodes x 4 writes
per lease TTL), so the dashboard sees a store change several times a second.

Also the dashboard's latency: for ``--moves`` planned moves of a group, the time from the
store's ownership change (``claimed_at``, written with it) to the first screen that shows the new
owner in the tree (seen by the pty reader as the bytes arrive).

Prints one JSON object (CPU in percent of one core: median, p99, max of the 1 s samples, and
the mean over the whole period; latency in seconds: median, p99, max). Usage:
    python bench/admin_bench.py [--groups 20] [--seconds 20] [--moves 10]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import select
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import ptyprocess
import pyte

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import summary  # noqa: E402
from cluster import api  # noqa: E402
from shared_store import Store  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402
from tests.integration.harness import PYTHON, Cluster  # noqa: E402

NODES = ("node1", "node2", "node3")
ROWS, COLS = 120, 160


class Terminal:
    """The dashboard in a pty. One thread reads its output as it comes, stamping each chunk
    with its arrival time; another feeds the chunks to a pyte screen (pyte is slow: parsing a
    full redraw takes longer than the dashboard takes to draw it, so the arrival time, not the
    time pyte is done, says when a change reached the terminal)."""

    def __init__(self, store: Path) -> None:
        code = ("from cluster.admin import run_admin; from shared_store import open_store; "
                f"run_admin(open_store({str(store)!r}))")
        self.screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self._chunks: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        self._expect: tuple[re.Pattern[str], threading.Event, list[float]] | None = None
        self.proc = ptyprocess.PtyProcess.spawn(
            [PYTHON, "-c", code], dimensions=(ROWS, COLS),
            cwd=str(Path(__file__).resolve().parent.parent),
            env={**os.environ, "TERM": "xterm-256color"})
        for target in (self._read, self._feed):
            threading.Thread(target=target, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.proc.fd], [], [], 0.5)
                if ready:
                    data = self.proc.read(65536)
                    self._chunks.put((time.time(), data))
            except (EOFError, OSError, ValueError):
                self._chunks.put(None)
                return

    def _feed(self) -> None:
        while (item := self._chunks.get()) is not None:
            arrived, data = item
            with self._lock:
                self._stream.feed(data)
                self._check_expected(arrived)

    def _check_expected(self, arrived: float) -> None:
        if self._expect is None:
            return
        pattern, seen, when = self._expect
        if any(pattern.search(line) for line in self.screen.display):
            when.append(arrived)
            self._expect = None
            seen.set()

    def expect(self, pattern: str) -> tuple[threading.Event, list[float]]:
        """An event set (with the wall-clock time in the list) when ``pattern`` is first on
        screen, checked as each chunk of output arrives."""
        seen: threading.Event = threading.Event()
        when: list[float] = []
        with self._lock:
            self._expect = (re.compile(pattern), seen, when)
            self._check_expected(time.time())
        return seen, when

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


def stats(samples: list[float], digits: int = 2) -> dict[str, float]:
    return summary(samples, digits=digits)


def sample_cpu(pid: int, seconds: float, store: Store) -> dict[str, float]:
    """CPU of ``pid`` in 1 s samples; also how many events the cluster logged meanwhile
    (0 for a truly idle period: a false failover under load would show here)."""
    proc = psutil.Process(pid)
    first_seq = (store.events() or [{"seq": 0}])[-1]["seq"]
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
    events = len(store.events(since=first_seq))
    return {**stats(samples), "mean": round(100.0 * total / (last_at - started), 2),
            "events_meanwhile": events}


def tree_latency(cluster: Cluster, terminal: Terminal, group: str, moves: int
                 ) -> dict[str, dict[str, float]]:
    """Store ownership change -> the tree shows the new owner, for planned moves.

    Two starting points: the record file's ctime (the rename that made the change visible),
    read as soon as a 2 ms poll sees the new owner; and ``claimed_at``, the handing node's clock
    before it wrote the record, so that one also counts the node's own durable write (fsync).
    """
    store = cluster.open()
    path = store.path_for(f"status/groups/{group}")  # type: ignore[attr-defined]
    from_visible, from_claim = [], []
    for index in range(moves):
        owner = cluster.group(group)["owner"]
        target = [n for n in NODES if n != owner][index % 2]
        seen, when = terminal.expect(rf"\b{group}  \S+  on {target}\b")
        api.move_group(store, group, target)

        def claimed(target: str = target) -> tuple[float, float] | None:
            changed = os.stat(path).st_ctime
            value = store.get(f"status/groups/{group}").value
            return (changed, value["claimed_at"]) if value["owner"] == target else None

        visible_at, claimed_at = wait_until(claimed, timeout=20, interval=0.005,
                                            message="the move")
        assert seen.wait(10), f"the tree never showed {group} on {target}"
        from_visible.append(when[0] - visible_at)
        from_claim.append(when[0] - claimed_at)
        cluster.wait_online(group, owner=target, timeout=20)
    return {"from_record_visible": stats(from_visible, digits=4),
            "from_claimed_at": stats(from_claim, digits=4)}


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
    parser.add_argument("--moves", type=int, default=10)
    args = parser.parse_args()
    result: dict = {"benchmark": "admin-idle-cpu", "nodes": len(NODES), "groups": args.groups,
                    "seconds": args.seconds, "cpus": os.cpu_count(), "unit": "% of one core"}
    with tempfile.TemporaryDirectory(prefix="admin-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        # The harness's instance checker lists every process 50 times a second in this
        # process; slower here, so that it does not compete with the pty reader's timing.
        cluster.checker.interval = 0.5
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
            result["idle_cluster_selected"] = sample_cpu(terminal.proc.pid, args.seconds,
                                                         cluster.open())
            # Select the first group's app: its uptime is redrawn once a second.
            terminal.press("\x1b[B" * (2 + len(NODES) + 2))
            wait_until(lambda: "uptime" in terminal.text(), timeout=10, interval=0.1,
                       message="the app's detail with its uptime")
            time.sleep(1.0)
            result["idle_app_selected"] = sample_cpu(terminal.proc.pid, args.seconds,
                                                     cluster.open())
            result["store_writes_per_second"] = round(
                len(NODES) / (cluster.lease_ttl / 4), 1)
            if args.moves:
                result["tree_latency_s"] = tree_latency(cluster, terminal, groups[0],
                                                        args.moves)
        finally:
            if terminal is not None:
                terminal.close()
            cluster.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
