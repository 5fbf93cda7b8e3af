"""The Store contract: every backend must pass this suite (fixtures in conftest.py)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

from shared_store import (
    Change,
    Conflict,
    Record,
    Store,
    StoreError,
    acquire_lease,
    release_lease,
    renew_lease,
)
from shared_store.base import DEFAULT_EVENT_RETENTION, Watch
from shared_store.lease import Lease, read_lease
from tests.helpers.wait import wait_until
from tests.shared_store.store_workers import blob_value

if TYPE_CHECKING:
    from tests.shared_store.conftest import Workers

SOAK = os.environ.get("HA_SOAK") == "1"


def collect(watch: Watch, want: set[str], timeout: float = 5.0) -> list[Change]:
    """Wait on ``watch`` until every key in ``want`` has been reported; all changes seen."""
    seen: list[Change] = []
    deadline = time.monotonic() + timeout
    while not want <= {c.key for c in seen}:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"watch saw {seen}, still missing {want - {c.key for c in seen}}"
        seen.extend(watch.wait(remaining))
    return seen


# -- records -----------------------------------------------------------------------------


def test_put_get_round_trip_and_versions(store: Store) -> None:
    assert store.get("spec/groups/notepad") is None
    first = store.put("spec/groups/notepad", {"failback": "never", "owners": ["a", "b"]})
    assert first == Record("spec/groups/notepad", {"failback": "never", "owners": ["a", "b"]}, 1)
    second = store.put("spec/groups/notepad", {"failback": "immediate"})
    assert second.version == 2
    assert store.get("spec/groups/notepad") == second


def test_values_are_returned_as_stored_json(store: Store) -> None:
    record = store.put("spec/x", {"tuple": (1, 2), "n": None, "f": 1.5})
    assert record.value == {"tuple": [1, 2], "n": None, "f": 1.5}
    assert store.get("spec/x") == record
    for scalar in (0, "text", [1, "a"], True, None):
        assert store.put("spec/scalar", scalar).value == scalar


def test_compare_and_swap(store: Store) -> None:
    store.put("status/groups/g", {"owner": "n1"})
    updated = store.put("status/groups/g", {"owner": "n2"}, expect_version=1)
    assert updated.version == 2
    with pytest.raises(Conflict, match="expected version 1, found version 2"):
        store.put("status/groups/g", {"owner": "n3"}, expect_version=1)
    with pytest.raises(Conflict):
        store.put("status/groups/g", {"owner": "n3"}, expect_version=7)
    assert store.get("status/groups/g").value == {"owner": "n2"}
    with pytest.raises(Conflict, match="no record"):
        store.put("status/groups/absent", 1, expect_version=1)
    assert store.get("status/groups/absent") is None


def test_create_only(store: Store) -> None:
    assert store.put("spec/groups/g", {"n": 1}, expect_version=0).version == 1
    with pytest.raises(Conflict, match="already exists"):
        store.put("spec/groups/g", {"n": 2}, expect_version=0)
    assert store.get("spec/groups/g").value == {"n": 1}


def test_delete_and_delete_cas(store: Store) -> None:
    assert store.delete("spec/groups/g") is False
    store.put("spec/groups/g", 1)
    store.put("spec/groups/g", 2)
    with pytest.raises(Conflict):
        store.delete("spec/groups/g", expect_version=1)
    assert store.get("spec/groups/g").version == 2
    assert store.delete("spec/groups/g", expect_version=2) is True
    assert store.get("spec/groups/g") is None
    with pytest.raises(Conflict):
        store.delete("spec/groups/g", expect_version=2)
    assert store.delete("spec/groups/g", expect_version=0) is False
    # A key created again after a delete starts over at version 1.
    assert store.put("spec/groups/g", 3).version == 1


def test_list_prefix_semantics(store: Store) -> None:
    for key in ("spec/groups/b", "spec/groups/a", "spec/groups/a/sub", "spec/groups",
                "spec/groupsX", "spec/resources/r", "status/groups/a"):
        store.put(key, key)
    assert [r.key for r in store.list("spec/groups")] == [
        "spec/groups", "spec/groups/a", "spec/groups/a/sub", "spec/groups/b"]
    assert [r.key for r in store.list("spec/groups/")] == [r.key for r in store.list("spec/groups")]
    assert [r.key for r in store.list("spec/groups/b")] == ["spec/groups/b"]
    assert [r.key for r in store.list("spec/resources")] == ["spec/resources/r"]
    assert store.list("spec/none") == []
    assert [r.value for r in store.list("status")] == ["status/groups/a"]
    everything = [r.key for r in store.list("")]
    assert everything == sorted(everything) and len(everything) == 7


def test_update_read_modify_write(store: Store) -> None:
    seen: list[object] = []

    def bump(value: object) -> object:
        seen.append(value)
        return {"count": (value or {"count": 0})["count"] + 1}

    assert store.update("status/counter", bump).value == {"count": 1}
    assert store.update("status/counter", bump) == Record("status/counter", {"count": 2}, 2)
    assert seen == [None, {"count": 1}]


def test_update_gives_up_with_conflict_after_retries(store: Store) -> None:
    calls = 0

    def meddling(value: object) -> int:
        nonlocal calls
        calls += 1
        store.put("status/contended", calls)  # someone else writes between read and CAS
        return -1

    with pytest.raises(Conflict, match="lost 3 compare-and-swap races"):
        store.update("status/contended", meddling, retries=3)
    assert calls == 3
    assert store.get("status/contended").value == 3


INVALID_KEYS = [
    "", "/spec/x", "spec/", "spec//x", "spec/../x", "..", ".", "spec/.hidden", "spec/a b",
    "spec/a*", "spec/ü", "data/x", "checkpoints/r/x", "cluster", "spec/x.json", "spec\\x",
    "s/" + "x" * 201, 17, None, b"spec/x",
]


@pytest.mark.parametrize("key", INVALID_KEYS, ids=repr)
def test_invalid_keys_are_refused_with_advice(store: Store, key: object) -> None:
    for call in (lambda: store.get(key), lambda: store.put(key, 1), lambda: store.delete(key)):
        with pytest.raises(StoreError) as info:
            call()
        assert not isinstance(info.value, Conflict)
        message = str(info.value)
        assert "invalid key" in message and ("use" in message or "reserved" in message)


@pytest.mark.parametrize("prefix", ["/spec", "spec//x", "a/../b", "data", "x y"])
def test_invalid_prefixes_are_refused(store: Store, prefix: str) -> None:
    with pytest.raises(StoreError, match="invalid"):
        store.list(prefix)
    with pytest.raises(StoreError, match="invalid"):
        store.watch(prefix)


def test_events_keys_are_written_only_by_append_event(store: Store) -> None:
    with pytest.raises(StoreError, match="append_event"):
        store.put("events/000000000001", {"kind": "forged"})
    with pytest.raises(StoreError, match="append_event"):
        store.delete("events/000000000001")


@pytest.mark.parametrize(
    ("value", "expect_version"),
    [({1, 2}, None), (float("nan"), None), (object(), None), (1, -1), (1, True), (1, "1")],
    ids=["set", "nan", "object", "negative-version", "bool-version", "str-version"],
)
def test_bad_values_and_versions_are_refused(store: Store, value: object,
                                             expect_version: object) -> None:
    with pytest.raises(StoreError) as info:
        store.put("spec/x", value, expect_version=expect_version)
    assert not isinstance(info.value, Conflict)
    assert store.get("spec/x") is None


def test_closed_store_refuses_calls(store: Store) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get("spec/x")
    store.close()  # idempotent


def test_secret_is_32_bytes_and_stable(store: Store) -> None:
    assert len(store.secret()) == 32
    assert store.secret() == store.secret()


# -- watches -----------------------------------------------------------------------------


def test_watch_reports_puts_and_deletes_under_prefix(store: Store) -> None:
    with store.watch("spec/groups") as watch:
        store.put("spec/groups/a", 1)
        store.put("spec/groups", 0)  # the prefix's own record
        store.put("spec/groupsX", 1)  # not under the prefix
        store.put("spec/resources/r", 1)
        seen = collect(watch, {"spec/groups/a", "spec/groups"})
        store.delete("spec/groups/a")
        seen += collect(watch, {"spec/groups/a"})
        assert seen[-1] == Change("spec/groups/a", "delete")
        assert watch.wait(0.3) == []
    keys = {c.key for c in seen}
    assert keys == {"spec/groups/a", "spec/groups"}
    assert Change("spec/groups/a", "put") in seen


def test_watch_whole_store_ignores_application_files(store: Store) -> None:
    """The node service watches "": the editor's saves under data/ must not wake it."""
    with store.watch("") as watch:
        (store.data_dir / "notepad").mkdir(parents=True, exist_ok=True)
        (store.data_dir / "notepad" / "notes.json").write_text("{}")
        (store.checkpoints_dir / "app.json").write_text("{}")
        store.put("spec/groups/g", 1)
        store.append_event({"kind": "x"})
        seen = collect(watch, {"spec/groups/g", "events/000000000001"})
        seen += watch.wait(0.3)
    assert {c.key for c in seen} == {"spec/groups/g", "events/000000000001"}


def test_watch_times_out_empty(store: Store) -> None:
    with store.watch("status") as watch:
        started = time.monotonic()
        assert watch.wait(0.05) == []
        assert time.monotonic() - started >= 0.04


def test_watch_buffers_changes_between_waits(store: Store) -> None:
    keys = {f"status/nodes/n{i}" for i in range(20)}
    with store.watch("status/nodes") as watch:
        for key in sorted(keys):
            store.put(key, 1)
        seen = collect(watch, keys)
    assert {c.key for c in seen} == keys
    assert all(c.kind == "put" for c in seen)


def test_watch_sees_changes_from_another_process(store: Store, workers: Workers) -> None:
    with store.watch("spec") as watch:
        workers.run("put", store.url, "spec/groups/remote", '{"from": "child"}')
        seen = collect(watch, {"spec/groups/remote"}, timeout=10)
        assert Change("spec/groups/remote", "put") in seen
        workers.run("delete", store.url, "spec/groups/remote")
        seen = collect(watch, {"spec/groups/remote"}, timeout=10)
        assert seen[-1] == Change("spec/groups/remote", "delete")
    assert store.get("spec/groups/remote") is None


def test_watch_wait_blocks_in_another_thread(store: Store) -> None:
    results: list[list[Change]] = []
    with store.watch("status") as watch:
        waiter = threading.Thread(target=lambda: results.append(watch.wait(10)))
        waiter.start()
        store.put("status/groups/g", 1)
        waiter.join(10)
    assert not waiter.is_alive()
    assert results and Change("status/groups/g", "put") in results[0]


def test_close_wakes_a_waiter_and_later_waits_raise(store: Store) -> None:
    watch = store.watch("status")
    results: list[list[Change]] = []
    waiter = threading.Thread(target=lambda: results.append(watch.wait(None)))
    waiter.start()
    wait_until(lambda: waiter.is_alive(), message="waiter thread started")
    watch.close()
    waiter.join(10)
    assert results == [[]]
    with pytest.raises(StoreError, match="closed"):
        watch.wait(0)


def test_watches_are_independent(store: Store) -> None:
    first, second = store.watch("spec"), store.watch("spec")
    second.close()  # closing one must not stop the other
    store.put("spec/groups/g", 1)
    assert {c.key for c in collect(first, {"spec/groups/g"})} == {"spec/groups/g"}
    first.close()


def test_watch_coalesces_changes_of_one_key() -> None:
    watch = Watch("status")
    watch._deliver([Change("status/a", "put"), Change("status/b", "put")])
    watch._deliver([Change("status/a", "delete"), Change("other/x", "put")])
    assert watch.wait(0) == [Change("status/b", "put"), Change("status/a", "delete")]
    assert watch.wait(0) == []


def test_store_close_stops_its_watches(store: Store) -> None:
    watch = store.watch("status")
    store.close()
    assert watch.closed


# -- events ------------------------------------------------------------------------------


def test_append_event_assigns_seq_and_time(store: Store) -> None:
    first = store.append_event({"kind": "node-up", "node": "n1", "seq": 999})
    second = store.append_event({"kind": "note", "time": "2020-01-01T00:00:00+00:00"})
    assert second == first + 1
    events = store.events()
    assert [e["seq"] for e in events] == [first, second]
    assert events[0]["kind"] == "node-up" and events[0]["node"] == "n1"
    stamped = datetime.fromisoformat(events[0]["time"])
    assert stamped.utcoffset() is not None and stamped.utcoffset().total_seconds() == 0
    assert events[1]["time"] == "2020-01-01T00:00:00+00:00"
    assert store.events(since=first) == [events[1]]
    assert store.events(since=second) == []
    assert store.events(limit=1) == [events[0]]


def test_bad_events_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="must be a dict"):
        store.append_event(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="JSON"):
        store.append_event({"kind": object()})
    with pytest.raises(StoreError, match="since"):
        store.events(since=-1)
    assert store.events() == []


def test_events_from_four_processes_are_unique_and_ordered(store: Store,
                                                          workers: Workers) -> None:
    per_writer = 100
    procs = workers.start_together("append-events",
                                   [(store.url, f"w{i}", per_writer) for i in range(4)])
    returned = [workers.result(p)["seqs"] for p in procs]
    events = store.events()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, 4 * per_writer + 1))  # unique, increasing, no gaps
    assert sorted(s for r in returned for s in r) == seqs
    # They really ran at once: at least one writer's events interleave with another's.
    assert any(max(r) - min(r) + 1 > per_writer for r in returned), returned
    for i, writer_seqs in enumerate(returned):
        mine = [e for e in events if e["writer"] == f"w{i}"]
        assert [e["seq"] for e in mine] == writer_seqs
        assert [e["n"] for e in mine] == list(range(per_writer))  # each writer's order kept


def test_wait_events_wakes_on_an_append_by_another_process(store: Store,
                                                           workers: Workers) -> None:
    since = store.append_event({"kind": "before"})
    assert store.wait_events(since - 1, timeout=5)[0]["kind"] == "before"  # no wait needed
    started = time.monotonic()
    assert store.wait_events(since, timeout=0.1) == []
    assert time.monotonic() - started >= 0.09
    proc = workers.start("append-events", store.url, "remote", 1)
    proc.stdin.write("go\n")  # no barrier: it appends as soon as it has started (~0.1 s)
    proc.stdin.flush()
    found = store.wait_events(since, timeout=20)
    assert [(e["writer"], e["seq"]) for e in found] == [("remote", since + 1)]
    workers.result(proc)


def test_event_log_is_pruned_in_batches(make_store) -> None:
    store = make_store(settings={"event_retention": 20})
    for n in range(43):
        store.append_event({"kind": "tick", "n": n})
    seqs = [e["seq"] for e in store.events()]
    # Pruned at seq 42 to the newest 20 (23..42), then 43 appended: between 20 and 20 + batch.
    assert seqs == list(range(23, 44))
    assert store.append_event({"kind": "tick"}) == 44  # numbering continues after pruning
    assert [e["seq"] for e in store.events()] == list(range(25, 45))
    assert [e["seq"] for e in store.events(since=5)] == list(range(25, 45))  # since was pruned
    assert [e["seq"] for e in store.events(since=30)] == list(range(31, 45))
    assert [e["seq"] for e in store.events(since=30, limit=3)] == [31, 32, 33]
    assert [e["seq"] for e in store.events(since=5, limit=2)] == [25, 26]
    assert store.events(since=44) == [] and store.events(since=1000) == []
    assert [e["n"] for e in store.events(since=40, limit=3)] == [40, 41, 42]
    assert store.event_retention == 20


def test_default_event_retention_is_ten_thousand(store: Store) -> None:
    assert store.event_retention == DEFAULT_EVENT_RETENTION == 10_000


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="appends 11,000 events (~10 s); run with HA_SOAK=1")
def test_event_log_keeps_the_newest_ten_thousand(store: Store) -> None:
    for n in range(11_000):
        store.append_event({"kind": "soak", "n": n})
    seqs = [e["seq"] for e in store.events()]
    assert seqs == list(range(1_001, 11_001))


# -- leases (fake clock) -----------------------------------------------------------------


def test_lease_acquire_renew_expire_takeover_release(store: Store) -> None:
    key, ttl = "status/nodes/n1", 2.0
    lease = acquire_lease(store, key, "node1", ttl, now=100.0, extra={"address": "127.0.0.1"})
    assert (lease.holder, lease.epoch, lease.expires_at) == ("node1", 1, 102.0)
    stored = store.get(key).value
    assert stored == {"holder": "node1", "epoch": 1, "expires_at": 102.0,
                      "acquired_at": 100.0, "address": "127.0.0.1"}

    with pytest.raises(Conflict, match="held by 'node1'"):
        acquire_lease(store, key, "node2", ttl, now=101.9)

    lease = renew_lease(store, lease, ttl, now=101.5)
    assert (lease.epoch, lease.expires_at, lease.extra) == (1, 103.5, {"address": "127.0.0.1"})
    with pytest.raises(Conflict):
        acquire_lease(store, key, "node2", ttl, now=103.4)

    # Expired (expires_at <= now): another node takes over with a higher epoch.
    taken = acquire_lease(store, key, "node2", ttl, now=103.5)
    assert (taken.holder, taken.epoch) == ("node2", 2)
    with pytest.raises(Conflict, match="lost"):
        renew_lease(store, lease, ttl, now=103.6)  # node1 learns it lost the lease
    assert release_lease(store, lease) is False  # and cannot release node2's lease

    assert release_lease(store, taken, extra={"state": "down"}) is True
    released = read_lease(store, key)
    assert (released.holder, released.epoch, released.expires_at) == (None, 2, 0.0)
    assert released.extra == {"state": "down"} and not released.is_valid(104.0)

    again = acquire_lease(store, key, "node1", ttl, now=104.0)
    assert again.epoch == 3 and again.is_valid(105.9) and not again.is_valid(106.0)


def test_lease_reacquisition_by_holder_bumps_epoch(store: Store) -> None:
    first = acquire_lease(store, "status/groups/g", "node1", 2.0, now=10.0)
    second = acquire_lease(store, "status/groups/g", "node1", 2.0, now=10.5)
    assert (first.epoch, second.epoch) == (1, 2)
    with pytest.raises(Conflict):
        renew_lease(store, first, 2.0, now=11.0)  # the older handle is stale
    assert renew_lease(store, second, 2.0, now=11.0).expires_at == 13.0


def test_lease_cas_race_is_a_conflict(store: Store) -> None:
    lease = acquire_lease(store, "status/groups/g", "node1", 2.0, now=0.0)
    store.put("status/groups/g", {**store.get("status/groups/g").value, "note": "x"})
    with pytest.raises(Conflict):
        renew_lease(store, lease, 2.0, now=1.0)


def test_lease_bad_input(store: Store) -> None:
    with pytest.raises(StoreError, match="must not set"):
        acquire_lease(store, "status/l", "n1", 2.0, 0.0, extra={"epoch": 99})
    with pytest.raises(StoreError, match="ttl"):
        acquire_lease(store, "status/l", "n1", 0, 0.0)
    with pytest.raises(StoreError, match="holder"):
        acquire_lease(store, "status/l", "", 2.0, 0.0)
    store.put("status/l", {"holder": 5, "epoch": 1, "expires_at": 0})
    with pytest.raises(StoreError, match="malformed"):
        acquire_lease(store, "status/l", "n1", 2.0, 0.0)
    assert isinstance(Lease.from_record(store.put("status/m", {"holder": None, "epoch": 0,
                                                               "expires_at": 0})), Lease)


# -- concurrency and crashes (real processes) --------------------------------------------


@pytest.mark.slow
def test_concurrent_cas_increments_lose_nothing(store: Store, workers: Workers) -> None:
    seconds = 10 if SOAK else 3
    procs = workers.start_together("cas-counter",
                                   [(store.url, "status/counter", seconds)] * 4)
    results = [workers.result(p, timeout=seconds + 60) for p in procs]
    total = sum(r["successes"] for r in results)
    final = store.get("status/counter")
    assert total > 0 and all(r["successes"] > 0 for r in results)
    assert final.value == total
    assert final.version == total


@pytest.mark.slow
def test_sigkilled_writers_never_leave_a_torn_record(store: Store, workers: Workers) -> None:
    rounds = 300 if SOAK else 30
    rng = random.Random(1234)
    for round_no in range(rounds):
        proc = workers.start("big-writer", store.url, round_no, 400_000, 3)
        line = proc.stdout.readline()  # "ready": it has written once; now it writes in a loop
        assert line.strip() == "ready", proc.stderr.read() if proc.poll() is not None else line
        time.sleep(rng.uniform(0, 0.05))  # a random moment of the write loop, not a sync
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    records = store.list("status/crash")
    assert [r.key for r in records] == ["status/crash/k0", "status/crash/k1", "status/crash/k2"]
    for record in records:
        value = record.value
        assert value == blob_value(value["round"], 400_000)  # whole, and checksum matches
    events = store.events()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= rounds
    assert store.put("status/crash/k0", "after").version == records[0].version + 1


def test_watches_come_and_go_while_changes_flow(store: Store) -> None:
    """Opening and closing watches while the observer is delivering must not deadlock."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            store.put(f"status/flow/k{n % 5}", n)
            n += 1

    def churn(i: int) -> None:
        try:
            for n in range(60):  # new directories: each watch schedules, evictions unschedule
                store.watch(f"spec/churn{i}/{n}").close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    flowing = store.watch("status")  # keeps the observer dispatching the writer's changes
    threads = [threading.Thread(target=writer, daemon=True)]
    threads += [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(60)
    stop.set()
    threads[0].join(60)
    flowing.close()
    assert not any(t.is_alive() for t in threads), "watch()/close() deadlocked"
    assert not errors
    with store.watch("status/flow") as watch:  # and the hub still works afterwards
        store.put("status/flow/after", 1)
        assert Change("status/flow/after", "put") in collect(watch, {"status/flow/after"})
