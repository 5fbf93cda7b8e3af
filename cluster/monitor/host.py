"""ResourceHost: the resources one monitor hosts, their worker threads and their health checks.

MSCS semantics: Online and Offline run in a worker thread per call, so one slow resource never
blocks the others or the pipe; the state goes to "online-pending"/"offline-pending" at once. A
pending state that outlasts PendingTimeout, a failed LooksAlive/IsAlive, an exception, or a
failure the resource reports itself all end the same way: Terminate, then "failed".

Every command bumps the resource's generation; a worker whose generation is stale when it
finishes drops its result, so the newest command wins (level-triggered, like the node service).
Terminate never waits for a hung Online; Online and Offline wait for a Terminate in progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.console.server import ConsoleSettings
from cluster.monitor.protocol import (
    FAILED,
    OFFLINE,
    OFFLINE_PENDING,
    ONLINE,
    ONLINE_PENDING,
    Command,
    Timing,
    error_event,
    state_event,
)
from cluster.resources import ResourceContext, ResourceType, UnknownResourceType, get_type

logger = logging.getLogger(__name__)

TERMINATING = "terminating"  # internal only: a Terminate runs, the final state follows it
ACTIVE = (ONLINE_PENDING, ONLINE, OFFLINE_PENDING, TERMINATING)
IDLE_WAKE = 1.0  # s between checker passes when nothing is due sooner


@dataclass(eq=False)
class _Slot:
    name: str
    state: str = OFFLINE
    error: str | None = None
    gen: int = 0
    request: tuple[type[ResourceType], dict[str, Any], dict[str, str]] | None = None
    resource: ResourceType | None = None  # the newest instance
    resource_gen: int = 0  # the generation that created it
    live: bool = False  # its online() was called and no offline/terminate has finished since
    timing: Timing = field(default_factory=Timing)
    pending_since: float | None = None
    next_looks: float = 0.0
    next_is: float = 0.0
    check_started: float | None = None  # a LooksAlive/IsAlive call is running since
    check_kind: str = ""
    terminations: int = 0  # terminates in progress; online/offline wait for them
    op_lock: threading.Lock = field(default_factory=threading.Lock)  # online/offline in turn


class ResourceHost:
    def __init__(self, node: str, local_dir: Path, data_dir: Path,
                 emit: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.monotonic,
                 console: ConsoleSettings | None = None) -> None:
        self.node = node
        self.console = console
        self.local_dir = Path(local_dir)
        self.data_dir = Path(data_dir)
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._slots: dict[str, _Slot] = {}
        self._closed = False
        # Fencing: once the service sends {"op": "lease"}, resources run only until the
        # deadline it gives, unless renewed; a frozen (SIGSTOPped) service cannot renew.
        self._lease_valid_for: float | None = None
        self._lease_deadline: float | None = None
        self._checker = threading.Thread(target=self._check_loop, name="checker", daemon=True)
        self._checker.start()

    # -- Commands (called from the protocol reader; none of them blocks) -------------------

    def handle(self, cmd: Command) -> None:
        if cmd.op == "online":
            self.online(cmd)
        elif cmd.op == "offline":
            self.offline(cmd.resource or "")
        elif cmd.op == "terminate":
            self.terminate(cmd.resource or "")
        elif cmd.op == "lease":
            self.lease(cmd.valid_for or 0.0)
        elif cmd.op == "ping":
            self._emit({"event": "pong", "id": cmd.id})

    def lease(self, valid_for: float) -> None:
        with self._cond:
            self._lease_valid_for = valid_for
            self._lease_deadline = self._clock() + valid_for
            self._cond.notify_all()

    def online(self, cmd: Command) -> None:
        name = cmd.resource or ""
        try:
            cls = get_type(cmd.type or "")
            props = cls.validate(cmd.props)
        except (UnknownResourceType, ValueError) as exc:
            self.reject(name, str(exc))
            return
        except Exception as exc:  # a third-party validate() may raise anything
            self.reject(name, f"invalid properties: {exc}")
            return
        request = (cls, props, dict(cmd.env))
        with self._lock:
            if self._closed:
                return
            if self._lease_deadline is not None and self._clock() >= self._lease_deadline:
                self._reject_locked(name, "the node's lease has expired (fenced); not starting "
                                    "until the node service renews it")
                return
            slot = self._slots.setdefault(name, _Slot(name))
            if slot.state in (ONLINE, ONLINE_PENDING):
                if slot.request != request:
                    self._emit(error_event(
                        f"{name} is already {slot.state} with other settings; "
                        "take it offline first to apply new ones"))
                self._emit_state(slot)
                return
            slot.gen += 1
            gen = slot.gen
            slot.request = request
            slot.timing = cmd.timing
            self._set(slot, ONLINE_PENDING, pending=True)
        self._spawn(self._run_online, slot, gen, name=f"online-{name}")

    def offline(self, name: str) -> None:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None or self._closed:
                self._emit(state_event(name, OFFLINE))
                return
            if slot.state in (OFFLINE, FAILED):  # a failed resource was already terminated
                self._set(slot, OFFLINE)
                return
            if slot.state == OFFLINE_PENDING:
                self._emit_state(slot)
                return
            slot.gen += 1
            gen = slot.gen
            self._set(slot, OFFLINE_PENDING, pending=True)
        self._spawn(self._run_offline, slot, gen, name=f"offline-{name}")

    def terminate(self, name: str) -> None:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                self._emit(state_event(name, OFFLINE))
                return
            if slot.state in (OFFLINE, FAILED):
                self._set(slot, OFFLINE)
                return
            gen, resource = self._begin_terminate(slot)
        self._spawn(self._finish_terminate, slot, gen, resource, OFFLINE, None,
                    name=f"terminate-{name}")

    def close(self, timeout: float = 20.0) -> None:
        """Terminate everything hosted (shutdown, stdin EOF, SIGTERM) and wait, up to timeout."""
        with self._lock:
            self._closed = True
            self._cond.notify_all()
            jobs = []
            for slot in self._slots.values():
                if slot.state in ACTIVE:
                    gen, resource = self._begin_terminate(slot)
                    jobs.append((slot, gen, resource))
        threads = [self._spawn(self._finish_terminate, slot, gen, resource, OFFLINE, None,
                               name=f"terminate-{slot.name}") for slot, gen, resource in jobs]
        deadline = self._clock() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - self._clock()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            logger.error("still terminating after %.0f s: %s", timeout, ", ".join(stuck))

    def states(self) -> dict[str, str]:
        with self._lock:
            return {name: slot.state for name, slot in self._slots.items()}

    # -- Workers ---------------------------------------------------------------------------

    def _run_online(self, slot: _Slot, gen: int) -> None:
        with slot.op_lock:
            with self._cond:
                if not self._wait_terminations(slot, gen) or slot.request is None:
                    return
                stale = slot.resource if slot.live else None
            # An earlier online finished after being superseded (online, offline, online in
            # quick succession): that instance still runs and must stop before a new one.
            if stale is not None and _call(stale.offline, "offline failed"):
                _call(stale.terminate, "terminate failed")
            with self._cond:
                if stale is not None and slot.resource is stale:
                    slot.live = False
                if slot.gen != gen:
                    return
                cls, props, env = slot.request
                box: list[ResourceType] = []
                ctx = ResourceContext(
                    node=self.node, local_dir=self.local_dir, data_dir=self.data_dir, env=env,
                    console=self.console,
                    report_failure=lambda reason: self._spawn(
                        self._on_report, slot, box, reason, name=f"failed-{slot.name}"),
                )
                try:
                    resource = cls(slot.name, props, ctx)
                except Exception as exc:
                    self._set(slot, FAILED, error=f"cannot create resource: {exc}")
                    return
                box.append(resource)
                slot.resource, slot.resource_gen, slot.live = resource, gen, True
            error = _call(resource.online, "online failed")
            with self._lock:
                if slot.gen != gen:
                    return  # a newer command took over; its worker stops this instance
                if error is None:
                    now = self._clock()
                    slot.next_looks = now + slot.timing.looks_alive_interval
                    slot.next_is = now + slot.timing.is_alive_interval
                    slot.check_started = None
                    self._set(slot, ONLINE)
                    return
        self._fail(slot, gen, error)

    def _run_offline(self, slot: _Slot, gen: int) -> None:
        with slot.op_lock:
            with self._cond:
                if not self._wait_terminations(slot, gen):
                    return
                resource = slot.resource if slot.live else None
            error = _call(resource.offline, "offline failed") if resource else None
            with self._lock:
                if error is None and resource is not None and slot.resource is resource:
                    slot.live = False
                if slot.gen != gen:
                    return
                if error is None:
                    self._set(slot, OFFLINE)
                    return
        self._fail(slot, gen, error)

    def _on_report(self, slot: _Slot, box: list[ResourceType], reason: str) -> None:
        """The event path: an instance says it failed by itself (a generic app exited)."""
        with self._lock:
            current = bool(box) and slot.resource is box[0] and (
                slot.state == ONLINE
                or (slot.state == ONLINE_PENDING and slot.resource_gen == slot.gen))
            gen = slot.gen
        if current:
            self._fail(slot, gen, reason)
        else:
            logger.info("%s: ignoring a failure report from a stale instance: %s", slot.name,
                        reason)

    def _begin_terminate(self, slot: _Slot) -> tuple[int, ResourceType | None]:
        """Under the lock: supersede every worker of this slot and stop its checks."""
        slot.gen += 1
        slot.state = TERMINATING
        slot.pending_since = None
        slot.terminations += 1
        return slot.gen, slot.resource

    def _wait_terminations(self, slot: _Slot, gen: int) -> bool:
        """Under the lock: wait until no terminate runs (the old instance must be dead before
        a new one starts); False if a newer command took over meanwhile."""
        while slot.terminations and slot.gen == gen:
            self._cond.wait()
        return slot.gen == gen

    def _fail(self, slot: _Slot, gen: int, error: str) -> None:
        """Terminate, then report failed, unless a newer command has taken over."""
        with self._lock:
            if slot.gen != gen or slot.state not in ACTIVE:
                return
            logger.warning("%s failed: %s", slot.name, error)
            new_gen, resource = self._begin_terminate(slot)
        self._finish_terminate(slot, new_gen, resource, FAILED, error)

    def _finish_terminate(self, slot: _Slot, gen: int, resource: ResourceType | None,
                          final_state: str, error: str | None) -> None:
        if resource is not None:
            problem = _call(resource.terminate, "terminate failed")
            if problem:
                logger.error("%s: %s", slot.name, problem)
                error = f"{error}; {problem}" if error else problem
                final_state = FAILED
        with self._lock:
            if resource is not None and slot.resource is resource:
                slot.live = False
            slot.terminations -= 1
            self._cond.notify_all()
            if slot.gen == gen:
                self._set(slot, final_state, error=error)

    # -- Health checks -----------------------------------------------------------------------

    def _check_loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = self._clock()
                actions, wake = self._due(now)
                if not actions:
                    self._cond.wait(max(0.0, min(wake - now, IDLE_WAKE)))
                    continue
            for action in actions:
                action()

    def _due(self, now: float) -> tuple[list[Callable[[], Any]], float]:
        """Under the lock: what is due now (timeouts, checks) and when to look again."""
        actions: list[Callable[[], Any]] = []
        wake = now + IDLE_WAKE
        if self._lease_deadline is not None:
            if now >= self._lease_deadline:
                actions.extend(self._fence())
            else:
                wake = min(wake, self._lease_deadline)
        for slot in self._slots.values():
            if slot.state in (ONLINE_PENDING, OFFLINE_PENDING) and slot.pending_since is not None:
                timeout = slot.timing.pending_timeout
                deadline = slot.pending_since + timeout
                if now >= deadline:
                    slot.pending_since = None
                    error = f"{slot.state.split('-')[0]} timed out after {timeout:g} s"
                    actions.append(lambda s=slot, g=slot.gen, e=error: self._spawn(
                        self._fail, s, g, e, name=f"timeout-{s.name}"))
                else:
                    wake = min(wake, deadline)
            elif slot.state == ONLINE and slot.check_started is not None:
                # A check that never returns is a hung resource: MSCS fails it too.
                deadline = slot.check_started + slot.timing.pending_timeout
                if now >= deadline:
                    error = (f"{slot.check_kind} check hung for "
                             f"{slot.timing.pending_timeout:g} s")
                    slot.check_started = None
                    actions.append(lambda s=slot, g=slot.gen, e=error: self._spawn(
                        self._fail, s, g, e, name=f"hung-{s.name}"))
                else:
                    wake = min(wake, deadline)
            elif slot.state == ONLINE and slot.resource is not None:
                kind = None
                if now >= slot.next_is:
                    kind = "is-alive"
                    slot.next_is = now + slot.timing.is_alive_interval
                    slot.next_looks = now + slot.timing.looks_alive_interval
                elif now >= slot.next_looks:
                    kind = "looks-alive"
                    slot.next_looks = now + slot.timing.looks_alive_interval
                if kind:
                    slot.check_started, slot.check_kind = now, kind
                    actions.append(lambda s=slot, g=slot.gen, r=slot.resource, k=kind: self._spawn(
                        self._run_check, s, g, r, k, name=f"{k}-{s.name}"))
                else:
                    wake = min(wake, slot.next_looks, slot.next_is)
        return actions, wake

    def _fence(self) -> list[Callable[[], Any]]:
        """Under the lock: the lease ran out; terminate every running resource, as a failure."""
        error = (f"fenced: the node service did not renew its lease within "
                 f"{self._lease_valid_for:g} s; terminated")
        actions: list[Callable[[], Any]] = []
        for slot in self._slots.values():
            if slot.state in ACTIVE:
                logger.error("%s: %s", slot.name, error)
                gen, resource = self._begin_terminate(slot)
                actions.append(lambda s=slot, g=gen, r=resource: self._spawn(
                    self._finish_terminate, s, g, r, FAILED, error, name=f"fence-{s.name}"))
        return actions

    def _run_check(self, slot: _Slot, gen: int, resource: ResourceType, kind: str) -> None:
        check = resource.is_alive if kind == "is-alive" else resource.looks_alive
        try:
            error = None if check() else f"{kind} check failed"
        except Exception as exc:
            error = f"{kind} check failed: {exc}"
        with self._cond:
            if slot.gen == gen:
                slot.check_started = None
            self._cond.notify_all()
        if error:
            self._fail(slot, gen, error)

    # -- Helpers -------------------------------------------------------------------------------

    def reject(self, name: str, error: str) -> None:
        """An online that cannot even start: failed, unless an instance is active (then error)."""
        with self._lock:
            self._reject_locked(name, error)

    def _reject_locked(self, name: str, error: str) -> None:
        slot = self._slots.setdefault(name, _Slot(name))
        if slot.state in ACTIVE:
            self._emit(error_event(f"online {name}: {error}"))
        else:
            slot.gen += 1
            self._set(slot, FAILED, error=error)

    def _set(self, slot: _Slot, state: str, *, error: str | None = None,
             pending: bool = False) -> None:
        """Under the lock: change state and report it; events leave in state order."""
        slot.state = state
        slot.error = error
        slot.pending_since = self._clock() if pending else None
        self._cond.notify_all()
        self._emit_state(slot)

    def _emit_state(self, slot: _Slot) -> None:
        resource = slot.resource
        pid = pgid = None
        details: dict[str, Any] = {}
        if resource is not None:
            try:
                if slot.state in ACTIVE:
                    pid, pgid = resource.pid(), resource.pgid()
                details = dict(resource.details())
            except Exception:
                logger.exception("%s: pid()/details() failed", slot.name)
        self._emit(state_event(slot.name, slot.state, pid=pid, pgid=pgid, error=slot.error,
                               details=details))

    @staticmethod
    def _spawn(target: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread


def _call(method: Callable[[], Any], what: str) -> str | None:
    """Run a resource API call; an exception is a failure, returned as one line of text."""
    try:
        method()
    except Exception as exc:
        logger.debug("%s", what, exc_info=True)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{what}: {text}"
    return None
