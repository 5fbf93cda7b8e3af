"""A live, in-memory copy of the cluster's records, fed by one store watch.

Why a mirror: every node renews its lease a few times a second, and each renewal is a store
write. Re-reading the whole store on each one (what ``api.status(store)`` does) would make an
idle dashboard busy. The mirror re-reads only the keys a watch reports, notices when a change is
a mere lease renewal (nothing on screen changes), and offers the read-only part of the Store
interface (``list``, ``get``, ``name``, ``settings``) so that ``api.status`` and ``read_snapshot``
run on it unchanged, without I/O.

Liveness is derived from ``expires_at`` and the clock (a dead node writes nothing), so the
follower also wakes when the earliest live lease would expire: a timer set by the data, not a
polling loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cluster import api
from cluster.admin.timeline import LeaseSeen
from cluster.model import Snapshot
from cluster.node.snapshot import read_snapshot
from shared_store import Change, Record, Store, StoreError, StoreUnavailable, Watch

logger = logging.getLogger(__name__)

#: Record prefixes the dashboard shows (events are followed separately, by seq).
PREFIXES = ("spec/groups", "spec/resources", "spec/nodes", "status/nodes", "status/groups",
            "status/resources")
#: Fields a lease renewal rewrites; a change to only these is invisible on screen.
LEASE_ONLY = frozenset({"expires_at", "last_seen"})
#: Events kept in memory, as many as the store keeps by default.
EVENT_MEMORY = 10_000
#: While the store is unreachable, how often to try again. No watch can report that it is
#: back (the watch is what broke), so this is a timer, and only while the store is away.
RETRY_INTERVAL = 1.0
#: Margin after a lease's expiry before re-deriving node states, so the expiry has passed.
EXPIRY_MARGIN = 0.02
#: Longest quiet wait before the store is read once, to notice that it went away: a watch does
#: not report its own directory being moved or unmounted (measured: inotify stays silent). In
#: a live cluster, lease renewals wake the follower long before this.
PROBE_INTERVAL = 2.0


def _prefix_of(key: str) -> str | None:
    return next((p for p in PREFIXES if key.startswith(p + "/")), None)


class StoreMirror:
    """Records under ``PREFIXES``, refreshed key by key; duck-types the Store's reads.

    A record that cannot be read (damaged JSON) keeps its last good value and is named in
    ``problems`` until a later read of it succeeds.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.name = store.name
        self.settings = store.settings
        self._records: dict[str, Record] = {}
        self.problems: dict[str, str] = {}  # key or prefix -> message
        self.leases: dict[tuple[str, int], LeaseSeen] = {}
        self.revision = 0  # grows on every change that can show on screen

    # -- the Store reads that read_snapshot and api.status use ---------------------------

    def list(self, prefix: str) -> list[Record]:
        start = prefix + "/"
        return [r for k, r in sorted(self._records.items()) if k.startswith(start)]

    def get(self, key: str) -> Record | None:
        return self._records.get(key)

    # -- keeping it fresh ----------------------------------------------------------------

    def reload(self) -> None:
        """Read every shown prefix again (start, and after the store came back)."""
        fresh: dict[str, Record] = {}
        for prefix in PREFIXES:
            try:
                records = self.store.list(prefix)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                # One damaged file spoils the listing: keep what we had under this prefix.
                self.problems[prefix] = str(exc)
                fresh.update((k, r) for k, r in self._records.items()
                             if k.startswith(prefix + "/"))
                continue
            self.problems.pop(prefix, None)
            for key in [k for k in self.problems if k.startswith(prefix + "/")]:
                del self.problems[key]
            fresh.update((r.key, r) for r in records)
        self._records = fresh
        for record in fresh.values():
            self._note_lease(record)
        self.revision += 1

    def apply(self, changes: Iterable[Change]) -> bool:
        """Re-read the changed keys; True if anything that can show on screen changed."""
        visible = False
        relist: set[str] = set()
        for change in changes:
            prefix = _prefix_of(change.key)
            if prefix is None:
                continue
            try:
                record = self.store.get(change.key)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                visible |= self.problems.get(change.key) != str(exc)
                self.problems[change.key] = str(exc)
                continue
            if self.problems.pop(change.key, None) is not None:
                visible = True
            if prefix in self.problems:
                relist.add(prefix)
            old = self._records.get(change.key)
            if record is None:
                visible |= self._records.pop(change.key, None) is not None
                continue
            self._records[change.key] = record
            self._note_lease(record)
            visible |= not _same_but_lease(old, record)
        if relist:
            self.reload()
            visible = True
        if visible:
            self.revision += 1
        return visible

    def _note_lease(self, record: Record) -> None:
        """Remember each node lease's last renewal: once the node is back with a new epoch,
        the record no longer says when the old lease ran out (the timeline needs it)."""
        if not record.key.startswith("status/nodes/") or not isinstance(record.value, dict):
            return
        value = record.value
        node = record.key.rsplit("/", 1)[-1]
        try:
            epoch = int(value.get("epoch") or 0)
            expires_at = float(value.get("expires_at") or 0.0)
            renewed_at = float(value.get("last_seen") or 0.0)
        except (TypeError, ValueError):
            return
        if expires_at <= 0:
            return  # released: the previous renewal of this epoch stays the last one
        ttl = float(self.settings.get("lease_ttl", 2.0))
        self.leases[(node, epoch)] = LeaseSeen(node, epoch, renewed_at or expires_at - ttl,
                                               expires_at)

    def leases_by_node(self) -> dict[str, list[LeaseSeen]]:
        found: dict[str, list[LeaseSeen]] = {}
        for lease in self.leases.values():
            found.setdefault(lease.node, []).append(lease)
        return found

    def next_expiry(self, now: float) -> float | None:
        """The earliest future ``expires_at`` of a held lease: a node's state changes then."""
        times = []
        for record in self.list("status/nodes"):
            value = record.value if isinstance(record.value, dict) else {}
            expires_at = value.get("expires_at")
            if value.get("holder") and isinstance(expires_at, int | float) and expires_at > now:
                times.append(float(expires_at))
        return min(times, default=None)


def _same_but_lease(old: Record | None, new: Record) -> bool:
    if old is None or not new.key.startswith("status/nodes/"):
        return old is not None and old.value == new.value
    if not isinstance(old.value, dict) or not isinstance(new.value, dict):
        return old.value == new.value
    return _without_lease(old.value) == _without_lease(new.value)


def _without_lease(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in LEASE_ONLY}


@dataclass(frozen=True)
class ClusterView:
    """What the dashboard shows, as of ``now``: one immutable value per update."""

    status: dict[str, Any]  # the ``hacluster status --json`` shape
    snapshot: Snapshot
    now: float
    leases: dict[str, list[LeaseSeen]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    local_dirs: dict[str, str] = field(default_factory=dict)  # node -> its local directory


class Follower:
    """Follows the store from a worker thread; reports through the callbacks it is given.

    ``on_view(view)`` after a visible change, ``on_events(events)`` for new events (oldest
    first), ``on_health(problem or None)`` when the store becomes unreachable or recovers.
    """

    def __init__(self, store: Store, on_view: Callable[[ClusterView], None],
                 on_events: Callable[[list[dict[str, Any]]], None],
                 on_health: Callable[[str | None], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.mirror = StoreMirror(store)
        self.on_view = on_view
        self.on_events = on_events
        self.on_health = on_health
        self.clock = clock
        self.last_seq = 0
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._lock = threading.Lock()
        self._shown: tuple[int, frozenset[str]] | None = None

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            watch = self._watch
        if watch is not None:
            watch.close()  # wakes the thread blocked in wait()

    def run(self) -> None:
        """The loop: blocks in ``Watch.wait`` until the store changes or a lease expires."""
        unreachable: str | None = None
        while not self._stop.is_set():
            try:
                if self._watch is None:
                    self._open()
                    if self._stop.is_set():
                        break
                    if unreachable is not None:
                        unreachable = None
                        self.on_health(None)
                    self._publish(force=True)
                now = self.clock()
                expiry = self.mirror.next_expiry(now)
                timeout = PROBE_INTERVAL if expiry is None else min(
                    PROBE_INTERVAL, expiry - now + EXPIRY_MARGIN)
                assert self._watch is not None
                changes = self._watch.wait(timeout)
                if self._stop.is_set():
                    break
                self._step(changes)
            except Exception as exc:  # noqa: BLE001 - shown in the banner; the loop goes on
                if self._stop.is_set():
                    break  # stop() closed the watch under us: not the store's fault
                if not isinstance(exc, StoreError):
                    logger.exception("error while following the store")
                self._drop_watch()
                problem = str(exc) if isinstance(exc, StoreError) else f"dashboard error: {exc!r}"
                if problem != unreachable:
                    unreachable = problem
                    logger.warning("store trouble: %s", problem)
                    self.on_health(problem)
                self._stop.wait(RETRY_INTERVAL)
        self._drop_watch()

    def _open(self) -> None:
        watch = self.store.watch("")  # opened before reading: no change slips in between
        with self._lock:
            self._watch = watch
        if self._stop.is_set():
            return  # stop() came first; run() drops the watch on its way out
        self.mirror.reload()
        self._read_events()

    def _drop_watch(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _step(self, changes: list[Change]) -> None:
        if not changes:
            # A lease may have run out, or the store gone: read the node records again (a
            # listing raises StoreUnavailable when the store's directory is not there).
            listed = self.store.list("status/nodes")
            self.mirror.apply([Change(r.key, "put") for r in listed]
                              + [Change(r.key, "delete") for r in self.mirror.list("status/nodes")
                                 if r.key not in {x.key for x in listed}])
        if any(c.key.startswith("events/") for c in changes):
            self._read_events()
        self.mirror.apply(changes)
        self._publish()

    def _read_events(self) -> None:
        new = self.store.events(since=self.last_seq)
        if new:
            new = new[-EVENT_MEMORY:]
            self.last_seq = int(new[-1].get("seq") or self.last_seq)
            self.on_events(new)

    def _publish(self, force: bool = False) -> None:
        """Post a view if something visible changed: a record, or a node's liveness."""
        now = self.clock()
        alive = frozenset(
            r.key for r in self.mirror.list("status/nodes")
            if isinstance(r.value, dict) and r.value.get("holder")
            and isinstance(r.value.get("expires_at"), int | float) and r.value["expires_at"] > now)
        shown = (self.mirror.revision, alive)
        if not force and shown == self._shown:
            return
        self._shown = shown
        problems: list[str] = []
        snapshot = read_snapshot(self.mirror, problems=problems)  # type: ignore[arg-type]
        status = api.status(self.mirror, now)  # type: ignore[arg-type]
        local_dirs = {r.key.rsplit("/", 1)[-1]: str(r.value["local_dir"])
                      for r in self.mirror.list("status/nodes")
                      if isinstance(r.value, dict) and r.value.get("local_dir")}
        self.on_view(ClusterView(status=status, snapshot=snapshot, now=now,
                                 leases=self.mirror.leases_by_node(),
                                 problems=tuple([*self.mirror.problems.values(), *problems]),
                                 local_dirs=local_dirs))
