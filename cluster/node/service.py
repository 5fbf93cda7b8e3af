"""The node service: MSCS's cluster service, one per node.

It holds the node's lease, watches the store, and on every tick reads one snapshot, asks
``policy.decide`` what to do and does it: claims and hands over groups (compare-and-swap with a
fencing epoch), and tells its resource monitor to bring resources online or offline. Ticks are
level-triggered: after any crash, re-reading the store is enough to carry on.

Safety: resources run only while the lease is valid on this node's monotonic clock. When the
lease cannot be renewed before TTL minus a margin, everything is terminated first (self-fencing),
and the monitor holds its own deadline too, so a frozen service cannot leave an app running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cluster import events
from cluster.checkpoints import CheckpointSync
from cluster.discovery import NodeAnnouncer
from cluster.model import (
    Failover,
    GroupState,
    LocalResource,
    ModelError,
    ResourceSpec,
    ResourceState,
    Snapshot,
)
from cluster.monitor.client import MonitorClient
from cluster.node.snapshot import read_snapshot
from cluster.policy import (
    RUNNING,
    BringOnline,
    Claim,
    ClearTarget,
    Decision,
    HandOver,
    SetGroupState,
    TakeOffline,
    Terminate,
    decide,
)
from cluster.properties import app_environment, checkpoint_paths, resolve
from shared_store import (
    Conflict,
    Lease,
    Store,
    StoreError,
    acquire_lease,
    release_lease,
    renew_lease,
)

logger = logging.getLogger(__name__)

STOP_TIMEOUT = 30.0
SHARED = "shared"  # the monitor that hosts every resource without a monitor of its own


class NodeAlreadyRunning(Exception):
    """Another process holds this node's lease."""


class NodeService:
    def __init__(self, store: Store, name: str, local_dir: Path, address: str = "127.0.0.1",
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.name = name
        self.local_dir = Path(local_dir)
        self.address = address
        self.clock = clock
        self.ttl = float(store.settings.get("lease_ttl", 2.0))
        self.renew_interval = self.ttl / 4
        self.fence_margin = self.ttl / 4
        self.lease_key = f"status/nodes/{name}"
        self.lease: Lease | None = None
        self.fence_deadline = 0.0  # monotonic: resources must be gone by then without a renewal
        self.renew_due = 0.0
        self.joining = True
        self.stopping = False
        self.stop_deadline = float("inf")
        self.exit_code = 0
        self._done = False
        self._wake = threading.Event()
        self._inbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.local: dict[str, LocalResource] = {}
        self._stop_requested: set[str] = set()  # offline/terminate asked: an exit is no failure
        self._fail_requested: set[str] = set()  # "resource fail": the stop counts as a failure
        self._checkpoints: dict[str, list[CheckpointSync]] = {}
        self._owned: dict[str, int] = {}  # group -> owner_epoch this node holds it with
        self._problems_seen: set[str] = set()
        # Resource monitors by name: SHARED hosts most resources; a resource with
        # separate_monitor = true gets one of its own, named after it (MSCS).
        self.monitors: dict[str, MonitorClient] = {}
        self._hosted_by: dict[str, str] = {}  # resource -> monitor name
        self.placeholders = {"data": str(store.data_dir), "local": str(self.local_dir),
                             "node": name}

    # --- lifecycle -----------------------------------------------------------------------

    def run(self) -> int:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        self._join()
        self.monitors[SHARED] = self._start_monitor(SHARED)
        announcer = self._announce()
        watch = self.store.watch("")
        watcher = threading.Thread(target=self._watch_loop, args=(watch,), daemon=True,
                                   name="store-watch")
        watcher.start()
        self._event("node-up", f"{self.name} joined the cluster (epoch {self.lease.epoch})"
                    if self.lease else f"{self.name} joined")
        try:
            while not self._done:
                self._tick()
        finally:
            watch.close()
            if announcer is not None:
                announcer.close()
            self._shutdown()
        return self.exit_code

    def request_stop(self) -> None:
        """Graceful stop (SIGTERM): drain the groups to other nodes, then leave."""
        if not self.stopping:
            logger.info("stop requested: moving groups away before leaving")
            self.stopping = True
            self.stop_deadline = time.monotonic() + STOP_TIMEOUT
            self.renew_due = 0.0
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())

    def _join(self) -> None:
        now = self.clock()
        current = self.store.get(self.lease_key)
        if current is not None and isinstance(current.value, dict):
            holder = current.value.get("holder")
            expires_at = float(current.value.get("expires_at") or 0)
            if holder == self.name and expires_at > now:
                pid = current.value.get("pid")
                raise NodeAlreadyRunning(
                    f"node {self.name} is already running (pid {pid}, lease valid for "
                    f"{expires_at - now:.1f} s); stop it first or choose another name")
        started = time.monotonic()
        self.lease = acquire_lease(self.store, self.lease_key, self.name, self.ttl, now,
                                   extra=self._lease_extra())
        self._lease_renewed(started)
        logger.info("joined cluster %s as %s (epoch %d)", self.store.name, self.name,
                    self.lease.epoch)

    def _announce(self) -> NodeAnnouncer | None:
        """Zeroconf presence, for discovery only: liveness is the lease, never this."""
        try:
            announcer = NodeAnnouncer(self.store.name, self.name, self.store.url, self.address)
            announcer.start()
            return announcer
        except Exception as exc:  # discovery is a convenience: never a reason not to run
            logger.warning("cannot announce %s over zeroconf: %s", self.name, exc)
            return None

    def _lease_extra(self) -> dict[str, Any]:
        return {"address": self.address, "pid": os.getpid(), "joining": self.joining,
                "stopping": self.stopping, "local_dir": str(self.local_dir),
                "last_seen": self.clock()}

    def _lease_renewed(self, started_mono: float) -> None:
        self.fence_deadline = started_mono + self.ttl - self.fence_margin
        self.renew_due = started_mono + self.renew_interval
        for monitor in self.monitors.values():
            # A monitor fences on its own if the service freezes (SIGSTOP) past the deadline.
            monitor.lease(self.ttl - self.fence_margin)

    def _start_monitor(self, key: str) -> MonitorClient:
        log_name = "monitor.log" if key == SHARED else f"monitor-{key}.log"
        log = open(self.local_dir / log_name, "ab")  # noqa: SIM115 - held by the monitor
        secret_file = self.local_dir / ".console-secret"
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.store.secret())
        client = MonitorClient(
            node=self.name, local_dir=self.local_dir, data_dir=self.store.data_dir,
            on_event=self._on_monitor_event,
            on_exit=lambda code: self._on_monitor_exit(key, code), stderr=log,
            address=self.address, secret_file=secret_file)
        log.close()
        client.send({"op": "lease", "valid_for": self.ttl - self.fence_margin})
        return client

    def _watch_loop(self, watch: Any) -> None:
        while not watch.closed:
            try:
                changes = watch.wait(1.0)
            except StoreError as exc:
                logger.warning("store watch failed (%s); relying on timed ticks", exc)
                time.sleep(self.renew_interval)  # the watch is gone, ticks still run
                continue
            if any(c.key != self.lease_key and not c.key.startswith("events/")
                   for c in changes):
                self._wake.set()

    def _shutdown(self) -> None:
        for syncs in self._checkpoints.values():
            for sync in syncs:
                sync.stop()
        self._checkpoints.clear()
        for monitor in self.monitors.values():
            monitor.shutdown(timeout=10.0)
        if self.lease is not None and self.stopping:
            try:
                release_lease(self.store, self.lease, extra={"pid": None, "stopping": False})
                self._event("node-down", f"{self.name} left the cluster (graceful stop)")
            except StoreError as exc:
                logger.warning("could not release the lease: %s", exc)
        logger.info("node service stopped")

    # --- the tick --------------------------------------------------------------------------

    def _tick(self) -> None:
        self._wake.clear()  # before reading: a change from now on wakes the next tick
        self._drain_inbox()
        mono = time.monotonic()
        if self.lease is not None and mono >= self.fence_deadline:
            self._self_fence()
        if mono >= self.renew_due or self.lease is None:
            self._renew()
        decision = Decision()
        if self.lease is not None:
            try:
                snap = self._read_snapshot()
            except StoreError as exc:
                logger.warning("cannot read the store: %s", exc)
                snap = None
            if snap is not None:
                try:
                    self._handle_requests(snap)
                    decision = decide(snap, self.name, self.clock())
                    self._execute(snap, decision)
                except Exception:  # a bad record or a bug costs one tick, never the node
                    logger.exception("tick failed; deciding again shortly")
                    decision = Decision(wake_at=self.clock() + 1.0)
                if self.joining:
                    self.joining = False
                    self.renew_due = 0.0
                if self.stopping and self._drained(snap):
                    self._done = True
                    return
        if self.stopping and time.monotonic() >= self.stop_deadline:
            logger.warning("groups did not move away in %.0f s: terminating them", STOP_TIMEOUT)
            self._terminate_all("the node is stopping")
            self._done = True
            return
        self._sleep(decision)

    def _sleep(self, decision: Decision) -> None:
        mono = time.monotonic()
        until = min(self.renew_due, self.fence_deadline if self.lease else self.renew_due)
        timeout = until - mono
        if decision.wake_at != float("inf"):
            timeout = min(timeout, decision.wake_at - self.clock())
        if self._inbox.empty():
            self._wake.wait(max(0.0, timeout))

    def _renew(self) -> None:
        started = time.monotonic()
        now = self.clock()
        try:
            if self.lease is not None and self.lease.expires_at > now:
                self.lease = renew_lease(self.store, self.lease, self.ttl, now,
                                         extra=self._lease_extra())
            else:
                self.lease = acquire_lease(self.store, self.lease_key, self.name, self.ttl, now,
                                           extra=self._lease_extra())
                logger.info("lease acquired again (epoch %d)", self.lease.epoch)
            self._lease_renewed(started)
        except Conflict:
            logger.error("another process took the lease of %s; fencing", self.name)
            self._self_fence()
            self.renew_due = started + self.renew_interval
        except StoreError as exc:
            logger.warning("lease renewal failed: %s", exc)
            self.renew_due = started + min(0.1, self.renew_interval)

    def _self_fence(self) -> None:
        running = [r for r, loc in self.local.items() if loc.state in RUNNING]
        logger.error("lease of %s not renewed in time: terminating %s (self-fencing)",
                     self.name, ", ".join(running) or "nothing")
        self._terminate_all("self-fencing: lease not renewed in time")
        self.lease = None
        self._owned.clear()

    def _terminate_all(self, reason: str) -> None:
        for name, loc in list(self.local.items()):
            monitor = self._monitor_of(name)
            if loc.state in RUNNING and monitor is not None:
                self._stop_requested.add(name)
                monitor.terminate(name)
                self.local[name] = replace(loc, state=ResourceState.OFFLINE_PENDING)
        logger.info("terminated every resource: %s", reason)

    def _read_snapshot(self) -> Snapshot:
        problems: list[str] = []
        snap = read_snapshot(self.store, self.local, problems)
        for problem in problems:
            if problem not in self._problems_seen:
                self._problems_seen.add(problem)
                logger.error("ignoring an unreadable record: %s", problem)
        return snap

    def _drained(self, snap: Snapshot) -> bool:
        owns = any(st.owner == self.name for g, st in snap.group_status.items()
                   if g in snap.groups and st.state != GroupState.OFFLINE.value)
        return not owns and not any(loc.state in RUNNING for loc in self.local.values())

    # --- acting ----------------------------------------------------------------------------

    def _execute(self, snap: Snapshot, decision: Decision) -> None:
        for group, status in snap.group_status.items():
            if status.owner == self.name:
                self._owned[group] = status.owner_epoch
            else:
                self._owned.pop(group, None)
        if decision.actions:
            logger.info("%s", decision.sentence())
        for action in decision.actions:
            try:
                self._act(snap, action)
            except Conflict:
                logger.info("lost a race on %s; deciding again", action.group)
                self._wake.set()
                return
            except (StoreError, ModelError, OSError) as exc:
                logger.error("%s failed: %s", action.kind, exc)

    def _act(self, snap: Snapshot, action: Any) -> None:
        now = self.clock()
        match action:
            case Claim():
                status = snap.group_status_of(action.group)
                failovers = status.failovers
                if action.failover:
                    failovers = (*failovers, Failover(now, action.previous_owner, self.name,
                                                      action.reason, True))
                my_epoch = self.lease.epoch if self.lease else None
                if action.previous_owner == self.name:  # re-claimed under a new lease
                    new = replace(status, owner_epoch=status.owner_epoch + 1,
                                  owner_node_epoch=my_epoch)
                else:
                    new = replace(status, owner=self.name, owner_epoch=status.owner_epoch + 1,
                                  state=GroupState.PENDING.value, target=None,
                                  failovers=failovers[-50:], failed_at=None, claimed_at=now,
                                  owner_node_epoch=my_epoch)
                self.store.put(f"status/groups/{action.group}", new.to_record(),
                               expect_version=status.version)
                self._owned[action.group] = new.owner_epoch
                self._reset_resources(snap, action.group, new.owner_epoch)
                kind = "group-failover" if action.failover else "group-claimed"
                self._event(kind, action.reason if action.failover
                            else f"{self.name} claimed {action.group} ({action.reason})",
                            group=action.group)
            case HandOver():
                status = snap.group_status_of(action.group)
                entry = Failover(now, self.name, action.to, action.reason, action.failure)
                new = replace(status, owner=action.to, owner_epoch=status.owner_epoch + 1,
                              state=(GroupState.PENDING if action.to else GroupState.OFFLINE).value,
                              target=None, failovers=(*status.failovers, entry)[-50:],
                              claimed_at=now,
                              owner_node_epoch=snap.nodes[action.to].epoch
                              if action.to in snap.nodes else None)
                self.store.put(f"status/groups/{action.group}", new.to_record(),
                               expect_version=status.version)
                self._owned.pop(action.group, None)
                kind = "group-failover" if action.failure else "group-moved"
                text = (f"{action.group} moved from {self.name} to {action.to} ({action.reason})"
                        if action.to else f"{self.name} released {action.group} ({action.reason})")
                self._event(kind, text, group=action.group)
            case SetGroupState():
                status = snap.group_status_of(action.group)
                new = replace(status, state=action.state.value,
                              failed_at=now if action.failed else status.failed_at)
                self.store.put(f"status/groups/{action.group}", new.to_record(),
                               expect_version=status.version)
                self._event("group-state", f"{action.group} is {action.state.value} on "
                            f"{self.name}" + (f" ({action.reason})" if action.failed else ""),
                            group=action.group)
            case ClearTarget():
                status = snap.group_status_of(action.group)
                self.store.put(f"status/groups/{action.group}",
                               replace(status, target=None).to_record(),
                               expect_version=status.version)
                self._event("group-move-cancelled", action.reason, group=action.group)
            case BringOnline():
                self._bring_online(snap, snap.resources[action.resource], action)
            case TakeOffline():
                self._stop(action.resource, graceful=True)
            case Terminate():
                self._stop(action.resource, graceful=False)
                self._event("resource-terminated", f"{action.resource} terminated on "
                            f"{self.name}: {action.reason}", resource=action.resource)

    def _reset_resources(self, snap: Snapshot, group: str, owner_epoch: int) -> None:
        """A new owner starts each resource's restart count afresh (MSCS counts per node)."""
        for res in snap.group_resources(group):
            self._write_resource(res, owner_epoch, state=ResourceState.OFFLINE.value,
                                 pid=None, failures=[], node=self.name)

    def _monitor_of(self, resource: str) -> MonitorClient | None:
        return self.monitors.get(self._hosted_by.get(resource, SHARED))

    def _bring_online(self, snap: Snapshot, res: ResourceSpec, action: BringOnline) -> None:
        key = res.name if res.policy.separate_monitor else SHARED
        if key not in self.monitors:
            self.monitors[key] = self._start_monitor(key)
        monitor = self.monitors[key]
        self._hosted_by[res.name] = key
        props = resolve(dict(res.properties), self.placeholders)
        syncs = [CheckpointSync(Path(p), self._checkpoint_store_path(res.name, p))
                 for p in checkpoint_paths(props)]
        for sync in syncs:
            sync.restore()  # restored on the new owner before online, as MSCS did
        self._checkpoints[res.name] = syncs
        self._stop_requested.discard(res.name)
        self.local[res.name] = LocalResource(res.name, ResourceState.ONLINE_PENDING,
                                             since=self.clock())
        network_name = next((str(r.properties.get("name")) for r in snap.group_resources(res.group)
                             if r.type == "network-name" and r.properties.get("name")), None)
        env = app_environment(self.placeholders, self.address, self.store.name, network_name)
        monitor.online(res.name, res.type, props, env,
                            {"pending_timeout": res.policy.pending_timeout,
                             "looks_alive_interval": res.policy.looks_alive_interval,
                             "is_alive_interval": res.policy.is_alive_interval})
        if action.restart:
            self._event("resource-restart", f"restarting {res.name} on {self.name} "
                        f"({action.reason})", resource=res.name, group=res.group)

    def _checkpoint_store_path(self, resource: str, local_path: str) -> Path:
        return self.store.checkpoints_dir / resource / Path(local_path).name

    def _stop(self, resource: str, graceful: bool) -> None:
        monitor = self._monitor_of(resource)
        self._stop_requested.add(resource)
        loc = self.local.get(resource)
        if loc is not None:
            self.local[resource] = replace(loc, state=ResourceState.OFFLINE_PENDING)
        if monitor is None:
            return
        if graceful:
            monitor.offline(resource)
        else:
            monitor.terminate(resource)

    # --- monitor reports -------------------------------------------------------------------

    def _on_monitor_event(self, event: dict[str, Any]) -> None:
        self._inbox.put(event)
        self._wake.set()

    def _on_monitor_exit(self, key: str, returncode: int | None) -> None:
        self._inbox.put({"event": "monitor-exit", "monitor": key, "returncode": returncode})
        self._wake.set()

    def _drain_inbox(self) -> None:
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                self._handle_monitor_event(event)
            except StoreError as exc:
                logger.warning("could not record a monitor report: %s", exc)

    def _handle_monitor_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "monitor-exit":
            self._monitor_died(str(event.get("monitor")), event.get("returncode"))
            return
        if kind == "error":
            logger.warning("monitor: %s", event.get("message"))
            return
        if kind != "state":
            return
        name = str(event.get("resource"))
        try:
            state = ResourceState(event.get("state"))
        except ValueError:
            logger.warning("monitor reported an unknown state: %r", event)
            return
        now = self.clock()
        requested = name in self._stop_requested
        pid = event.get("pid")
        error = event.get("error")
        if state == ResourceState.FAILED and requested:
            state = ResourceState.OFFLINE  # we asked it to stop: its end is no failure
        if name in self._fail_requested and state in (ResourceState.OFFLINE,
                                                      ResourceState.FAILED):
            self._fail_requested.discard(name)
            state, error = ResourceState.FAILED, "simulated failure (hacluster resource fail)"
        self.local[name] = LocalResource(name, state, pid=pid, error=error, since=now)
        if state in (ResourceState.OFFLINE, ResourceState.FAILED):
            self._stop_requested.discard(name)
            for sync in self._checkpoints.pop(name, []):
                sync.stop()
        elif state == ResourceState.ONLINE:
            for sync in self._checkpoints.get(name, []):
                sync.start()
        self._record_resource_state(name, state, pid, error, event.get("details") or {})

    def _record_resource_state(self, name: str, state: ResourceState, pid: int | None,
                               error: str | None, details: dict[str, Any]) -> None:
        record = self.store.get(f"spec/resources/{name}")
        spec = None
        if record is not None:
            with contextlib.suppress(ModelError):
                spec = ResourceSpec.from_record(name, record.value, record.version)
        owner_epoch = self._owned.get(spec.group) if spec is not None else None
        if spec is None or owner_epoch is None:
            logger.debug("%s is %s here (not owned by %s)", name, state.value, self.name)
            return  # fenced or stale: never write over the owner's records
        changes: dict[str, Any] = {"state": state.value, "pid": pid, "node": self.name,
                                   "details": details}
        if state == ResourceState.FAILED:
            changes["last_error"] = error
            self._write_resource(spec, owner_epoch, failed_at=self.clock(), **changes)
            self._event("resource-failed", f"{name} failed on {self.name}: {error}",
                        resource=name, group=spec.group)
        else:
            self._write_resource(spec, owner_epoch, **changes)
            self._event("resource-state", f"{name} is {state.value} on {self.name}"
                        + (f" (pid {pid})" if pid and state == ResourceState.ONLINE else ""),
                        resource=name, group=spec.group)

    def _write_resource(self, spec: ResourceSpec, owner_epoch: int,
                        failed_at: float | None = None, **changes: Any) -> None:
        """Read-modify-write of the resource's status; failures older than its restart
        period are dropped."""
        group, period, now = spec.group, spec.policy.restart_period, self.clock()

        def update(current: Any) -> Any:
            value = dict(current) if isinstance(current, dict) else {}
            value.update(changes, owner_epoch=owner_epoch, group=group)
            failures = [t for t in value.get("failures", []) if t > now - period]
            if failed_at is not None:
                failures.append(failed_at)
            value["failures"] = failures
            value["updated_at"] = now
            return value

        self.store.update(f"status/resources/{spec.name}", update)

    def _monitor_died(self, key: str, returncode: int | None) -> None:
        """MSCS: the service kills what a dead monitor hosted, marks it failed, starts anew."""
        dead = self.monitors.pop(key, None)
        if dead is None or self._done:
            return
        pgids = dead.hosted_pgids()
        logger.error("resource monitor %s exited (code %s): killing %d hosted process group(s)",
                     key, returncode, len(pgids))
        for pgid in pgids.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self._event("monitor-died", f"the resource monitor of {self.name} died; "
                    "its resources are treated as failed")
        if key == SHARED:
            self.monitors[SHARED] = self._start_monitor(SHARED)
        for name, loc in list(self.local.items()):
            if loc.state in RUNNING and self._hosted_by.get(name, SHARED) == key:
                self._handle_monitor_event({"event": "state", "resource": name,
                                            "state": ResourceState.FAILED.value, "pid": None,
                                            "error": "its resource monitor died"})

    # --- requests and events ---------------------------------------------------------------

    def _handle_requests(self, snap: Snapshot) -> None:
        """Administrator requests addressed to the owner, e.g. ``resource fail`` (MSCS
        "Initiate Failure"): the resource is terminated and handled as a real failure."""
        for record in self.store.list("requests"):
            value = record.value if isinstance(record.value, dict) else {}
            resource = value.get("resource")
            spec = snap.resources.get(str(resource))
            if spec is None or snap.group_status_of(spec.group).owner != self.name:
                continue
            try:
                self.store.delete(record.key, expect_version=record.version)
            except (Conflict, StoreError):
                continue
            monitor = self._monitor_of(spec.name)
            if value.get("op") == "fail" and monitor is not None:
                loc = self.local.get(spec.name)
                if loc is not None and loc.state in RUNNING:
                    self._fail_requested.add(spec.name)
                    monitor.terminate(spec.name)
                    self._event("resource-fail-requested",
                                f"simulated failure of {spec.name} on {self.name}",
                                resource=spec.name, group=spec.group)

    def _event(self, kind: str, message: str, **where: Any) -> None:
        try:
            events.append(self.store, kind, message, node=self.name, **where)
        except StoreError as exc:
            logger.warning("could not append an event: %s", exc)
