"""Shared-store benchmark: prints ONE JSON object with latency and throughput figures.

    .venv/bin/python bench/store_bench.py            # full run (~1 min)
    .venv/bin/python bench/store_bench.py --quick    # fewer samples, for a smoke test

Measures, on a fresh DirectoryStore in a temp directory:
- CAS put and get latency (one process, small records);
- append_event latency, and events(since=last) on a 10,000-event log;
- watch notification latency for a change made by ANOTHER process, inotify and polling,
  measured from the writer's put() start and from its return (CLOCK_MONOTONIC is system-wide);
- total CAS ops/s with 4 writer processes, for both lock scopes (one lock per top-level
  directory vs one for the store), with the writers in one top-level directory or in four,
  and with all four contending for one key (median of 3 runs of 2 s).
Latencies are in milliseconds: p50, p99 and max over all samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import figures  # bench/figures.py, beside this script

from shared_store import Conflict, DirectoryStore, init_store, open_store


def summary(samples_s: list[float]) -> dict:
    return figures.summary(samples_s, digits=3, scale=1000.0)


def timed(fn, count: int) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    return samples


# -- children (same file, run as: store_bench.py --child ROLE ...) ----------------------


def child_writer(url: str, count: int, gap_max: float) -> None:
    """Put keys bench/w/k<n> at random gaps; print when each put started and returned."""
    rng = random.Random(7)
    times = []
    with open_store(url) as store:
        print("ready", flush=True)
        sys.stdin.readline()  # the parent's watch is open
        for n in range(count):
            time.sleep(rng.uniform(0.005, gap_max))  # random phase against the poll interval
            started = time.monotonic()
            store.put(f"status/w/k{n}", {"n": n})
            times.append((n, started, time.monotonic()))
    print(json.dumps(times), flush=True)


def child_cas(root: str, lock_scope: str, key: str, seconds: float) -> None:
    """CAS-increment ``key`` for ``seconds``; print successes and conflicts."""
    done = lost = 0
    with DirectoryStore(root, lock_scope=lock_scope) as store:
        print("ready", flush=True)
        sys.stdin.readline()  # start together
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            current = store.get(key)
            try:
                store.put(key, (current.value if current else 0) + 1,
                          expect_version=current.version if current else 0)
                done += 1
            except Conflict:
                lost += 1
    print(json.dumps({"ops": done, "conflicts": lost}), flush=True)


# -- parent ------------------------------------------------------------------------------


class Children:
    """Child processes in their own process groups, killed on exit whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, __file__, "--child", *map(str, args)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        self.procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)


def bench_latency(store, quick: bool) -> dict:
    count = 300 if quick else 3000
    put_samples = []
    for i in range(count):
        current = store.get("status/bench/cas")
        started = time.perf_counter()
        store.put("status/bench/cas", {"i": i}, expect_version=current.version if current else 0)
        put_samples.append(time.perf_counter() - started)
    get_samples = timed(lambda i: store.get("status/bench/cas"), count)
    event_samples = timed(lambda i: store.append_event({"kind": "bench", "i": i}), count)
    return {"cas_put_ms": summary(put_samples), "get_ms": summary(get_samples),
            "append_event_ms": summary(event_samples)}


def bench_big_log(root: Path, quick: bool) -> dict:
    with open_store(root) as store:
        have = len(store.events())
        for i in range(have, 10_000):
            store.append_event({"kind": "fill", "i": i})
        last = store.events()[-1]["seq"]
        since_last = timed(lambda i: store.events(since=last), 20 if quick else 100)
        appends = timed(lambda i: store.append_event({"kind": "more"}), 20 if quick else 100)
    return {"events_in_log": 10_000, "events_since_last_ms": summary(since_last),
            "append_event_ms": summary(appends)}


def bench_watch(root: Path, polling: bool, children: Children, quick: bool) -> dict:
    count = 40 if quick else (300 if polling else 500)
    with open_store(root, polling=polling) as store:
        writer = children.start("writer", store.url, count, 0.1 if polling else 0.02)
        woke: dict[str, float] = {}
        with store.watch("status/w") as watch:
            writer.stdin.write("go\n")
            writer.stdin.flush()
            deadline = time.monotonic() + 120
            while len(woke) < count and time.monotonic() < deadline:
                for change in watch.wait(1.0):
                    woke.setdefault(change.key, time.monotonic())
        times = json.loads(writer.stdout.readline())
        writer.wait(30)
        for n in range(count):
            store.delete(f"status/w/k{n}")
    missed = [n for n, _, _ in times if f"status/w/k{n}" not in woke]
    late = [n for n, _, r in times if n not in missed and woke[f"status/w/k{n}"] - r > 0.2]
    return {
        "from_put_start_ms": summary([woke[f"status/w/k{n}"] - s for n, s, _ in times
                                      if n not in missed]),
        "from_put_return_ms": summary([woke[f"status/w/k{n}"] - r for n, _, r in times
                                       if n not in missed]),
        "missed": len(missed),
        "over_200ms": len(late),
    }


def bench_throughput(root: Path, lock_scope: str, layout: str, children: Children,
                     seconds: float) -> dict:
    keys = {
        "one-top-dir": [f"status/tp/w{i}" for i in range(4)],
        "four-top-dirs": [f"tp{i}/w" for i in range(4)],
        "one-key": ["status/tp/shared"] * 4,
    }[layout]
    procs = [children.start("cas", root, lock_scope, key, seconds) for key in keys]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [json.loads(proc.stdout.readline()) for proc in procs]
    for proc in procs:
        proc.wait(30)
    ops = sum(r["ops"] for r in results)
    return {"ops_per_s": round(ops / seconds), "conflicts": sum(r["conflicts"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        role, *rest = args.child
        if role == "writer":
            child_writer(rest[0], int(rest[1]), float(rest[2]))
        else:
            child_cas(rest[0], rest[1], rest[2], float(rest[3]))
        return

    tmp = Path(tempfile.mkdtemp(prefix="store-bench-"))
    children = Children()
    try:
        root = tmp / "store"
        with init_store(root, name="bench", settings={}) as store:
            latency = bench_latency(store, args.quick)
        seconds, runs = (1.0, 1) if args.quick else (2.0, 3)
        throughput = {}
        for scope in ("top", "store"):
            for layout in ("one-top-dir", "four-top-dirs", "one-key"):
                results = [bench_throughput(root, scope, layout, children, seconds)
                           for _ in range(runs)]
                rates = sorted(r["ops_per_s"] for r in results)
                throughput[f"{scope}/{layout}"] = {
                    "ops_per_s_median": statistics.median(rates), "min": rates[0],
                    "max": rates[-1], "runs": runs, "seconds_each": seconds,
                    "conflicts_total": sum(r["conflicts"] for r in results)}
        result = {
            "benchmark": "shared_store DirectoryStore",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "kernel": platform.release(), "loadavg_1m": os.getloadavg()[0],
                        "filesystem": _fs_type(tmp)},
            **latency,
            "watch_latency_other_process": {
                "inotify": bench_watch(root, False, children, args.quick),
                "polling_0.1s": bench_watch(root, True, children, args.quick),
            },
            "cas_ops_4_writer_processes": throughput,
            "big_log": bench_big_log(root, args.quick),
        }
        print(json.dumps(result))
    finally:
        children.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _fs_type(path: Path) -> str:
    """The filesystem type holding ``path`` (from /proc/mounts), for the record."""
    best, fs = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
        for line in mounts:
            _, mount_point, fs_type, *_ = line.split()
            if str(path).startswith(mount_point) and len(mount_point) > len(best):
                best, fs = mount_point, fs_type
    return fs


if __name__ == "__main__":
    main()
