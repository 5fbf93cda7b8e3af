"""Worker processes for the shared-store tests: ``python store_workers.py ROLE URL [ARGS]``.

Each role is a real, separate process using the public store API, so that the tests exercise
cross-process locking, watching and crash safety rather than threads sharing one object.
Results go to stdout as one JSON line.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from shared_store import Conflict, open_store


def put(url: str, key: str, value: str) -> None:
    """Write one record (``value`` is JSON)."""
    with open_store(url) as store:
        record = store.put(key, json.loads(value))
    print(json.dumps({"version": record.version}), flush=True)


def delete(url: str, key: str) -> None:
    with open_store(url) as store:
        print(json.dumps({"deleted": store.delete(key)}), flush=True)


def start_barrier() -> None:
    """Say "ready" and wait for the test's "go", so that workers really run at once."""
    print("ready", flush=True)
    sys.stdin.readline()


def append_events(url: str, writer: str, count: str) -> None:
    """Append ``count`` events tagged with ``writer``; print the seqs assigned."""
    with open_store(url) as store:
        start_barrier()
        seqs = [store.append_event({"kind": "test", "writer": writer, "n": n})
                for n in range(int(count))]
    print(json.dumps({"seqs": seqs}), flush=True)


def cas_counter(url: str, key: str, seconds: str) -> None:
    """Increment ``key`` with compare-and-swap until ``seconds`` pass; print the successes."""
    successes = conflicts = 0
    with open_store(url) as store:
        start_barrier()
        deadline = time.monotonic() + float(seconds)
        while time.monotonic() < deadline:
            current = store.get(key)
            try:
                store.put(key, (current.value if current else 0) + 1,
                          expect_version=current.version if current else 0)
            except Conflict:
                conflicts += 1
                continue
            successes += 1
    print(json.dumps({"successes": successes, "conflicts": conflicts}), flush=True)


def blob_value(round_no: int, size: int) -> dict:
    blob = (f"{round_no:08d}" * (size // 8 + 1))[:size]
    return {"round": round_no, "blob": blob, "sha256": hashlib.sha256(blob.encode()).hexdigest()}


def big_writer(url: str, round_no: str, size: str, keys: str) -> None:
    """Write big records and events in a loop until killed; says "ready" after the first."""
    with open_store(url) as store:
        n = 0
        while True:
            key = f"status/crash/k{n % int(keys)}"
            store.put(key, blob_value(int(round_no), int(size)))
            store.append_event({"kind": "crash-test", "round": int(round_no), "n": n})
            if n == 0:
                print("ready", flush=True)
            n += 1


def die_mid_write(url: str, key: str, value: str, stage: str) -> None:
    """Put ``key`` but SIGKILL this process at ``stage`` of the atomic write:
    "before-rename" (temp file written and fsynced) or "before-dir-sync" (renamed)."""
    import os
    import signal

    from shared_store import fsio

    def die(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if stage == "before-rename":
        fsio.os.replace = die  # type: ignore[assignment]
    else:
        fsio.fsync_dir = die  # type: ignore[assignment]
    with open_store(url) as store:
        store.put(key, json.loads(value))


ROLES = {
    "put": put,
    "delete": delete,
    "append-events": append_events,
    "cas-counter": cas_counter,
    "big-writer": big_writer,
    "die-mid-write": die_mid_write,
}

if __name__ == "__main__":
    ROLES[sys.argv[1]](*sys.argv[2:])
