"""Failover timelines: where the seconds of each failover or move go, computed from events.

A pure function over the store's event log (plus the node leases the dashboard has seen), so it
is tested without processes or clocks. Each ownership change of a group becomes a ``Timeline``
of phases, each phase a span that ends at a milestone:

- node death: failure seen (the dead node's last lease renewal) -> lease expired -> claimed by
  the new owner -> each resource online;
- resource failure: failure seen (``resource-failed``) -> stopped on the old owner -> claimed
  -> each resource online;
- planned move (move, drain, failback): requested -> stopped -> claimed -> each resource online.

The events carry no structured from/to for ownership changes, so those are parsed from the
messages the node service writes (``cluster/node/service.py``, ``cluster/policy.py``); the
patterns are unit-tested against those exact sentences.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_LEASE_CLAIM = re.compile(r"^(?P<from>\S+)'s lease expired; (?P<group>\S+) is failing over to "
                          r"(?P<to>\S+)$")
_HANDOVER = re.compile(r"^(?P<group>\S+) moved from (?P<from>\S+) to (?P<to>\S+) "
                       r"\((?P<reason>.*)\)$")
_RELEASE = re.compile(r"^(?P<from>\S+) released (?P<group>\S+) \((?P<reason>.*)\)$")
_RESOURCE_STATE = re.compile(r"^(?P<resource>\S+) is (?P<state>[a-z-]+) on (?P<node>\S+)")

OWNERSHIP_KINDS = ("group-failover", "group-moved")


@dataclass(frozen=True)
class LeaseSeen:
    """A node lease as last seen before it ended: its last renewal and its expiry."""

    node: str
    epoch: int
    renewed_at: float
    expires_at: float


@dataclass(frozen=True)
class Phase:
    """A span ending at a milestone; ``end`` None: not reached (yet)."""

    name: str
    kind: str  # lease | claim | stop | online: picks the bar's style
    start: float
    end: float | None

    @property
    def duration(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Timeline:
    group: str
    kind: str  # "failover" or "move"
    from_node: str | None
    to_node: str | None
    reason: str
    started_at: float  # failure seen, or the move requested
    start_label: str  # what happened at started_at
    claimed_at: float
    phases: tuple[Phase, ...] = field(default=())
    seq: int = 0  # of the ownership-change event, for ordering and identity
    superseded: bool = False  # a later change of this group ended it: open phases never ended

    @property
    def in_progress(self) -> bool:
        return not self.superseded and any(p.end is None for p in self.phases)

    @property
    def ended_at(self) -> float | None:
        """When the last phase ended; None while one is still in progress."""
        if self.in_progress:
            return None
        return max([self.claimed_at, *(p.end for p in self.phases if p.end is not None)])

    def total(self, now: float | None = None) -> float | None:
        end = self.ended_at
        if end is None:
            end = now
        return None if end is None else max(0.0, end - self.started_at)


def event_time(event: Mapping[str, Any]) -> float:
    """The event's time (ISO 8601 from the store) as epoch seconds; 0.0 if absent or bad."""
    try:
        return datetime.fromisoformat(str(event["time"])).timestamp()
    except (KeyError, ValueError):
        return 0.0


def resource_state(event: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(resource, state, node) of a ``resource-state`` event."""
    if event.get("kind") != "resource-state":
        return None
    match = _RESOURCE_STATE.match(str(event.get("message", "")))
    if match is None:
        return None
    return match["resource"], match["state"], match["node"]


@dataclass
class _Change:
    """One ownership change being assembled: where it happened in the group's event list."""

    index: int
    event: Mapping[str, Any]
    kind: str
    from_node: str | None
    to_node: str | None
    reason: str
    by_lease: bool
    claim_index: int  # the event that gave the new owner the group


def _ownership_changes(group_events: Sequence[Mapping[str, Any]]) -> list[_Change]:
    changes: list[_Change] = []
    released: _Change | None = None
    for index, event in enumerate(group_events):
        kind = event.get("kind")
        message = str(event.get("message", ""))
        if kind == "group-claimed" and released is not None:
            released.to_node = str(event.get("node") or "") or None
            released.claim_index = index
            changes.append(released)
            released = None
            continue
        if kind not in OWNERSHIP_KINDS:
            continue
        flavour = "failover" if kind == "group-failover" else "move"
        if match := _LEASE_CLAIM.match(message):
            changes.append(_Change(index, event, "failover", match["from"], match["to"],
                                   message, True, index))
        elif match := _HANDOVER.match(message):
            changes.append(_Change(index, event, flavour, match["from"], match["to"],
                                   match["reason"], False, index))
        elif match := _RELEASE.match(message):
            released = _Change(index, event, flavour, match["from"], None, match["reason"],
                               False, index)
    return changes


def _last_lease(leases: Iterable[LeaseSeen], claimed_at: float) -> LeaseSeen | None:
    """The lease that ran out before this claim: the latest to expire by ``claimed_at``."""
    ended = [lease for lease in leases if 0 < lease.expires_at <= claimed_at]
    return max(ended, key=lambda lease: lease.expires_at, default=None)


def _trigger(window: Sequence[Mapping[str, Any]], change: _Change,
             node_events: Sequence[Mapping[str, Any]], lower: float) -> tuple[float, str] | None:
    """What started a handover: a resource failure, a move request, a drain request."""
    reason = change.reason
    wanted: tuple[str, ...]
    if change.kind == "failover":
        wanted = ("resource-failed",)
    elif reason.startswith("move to"):
        wanted = ("group-move-requested",)
    else:
        wanted = ()
    for event in reversed(window):
        if event.get("kind") in wanted and (
                event.get("kind") != "resource-failed" or event.get("node") == change.from_node):
            return event_time(event), str(event.get("message", ""))
    if "is draining" in reason:
        for event in reversed(node_events):
            at = event_time(event)
            if lower <= at <= event_time(change.event) and event.get("kind") == "node-paused":
                return at, str(event.get("message", ""))
    return None


def _stop_span(window: Sequence[Mapping[str, Any]], node: str | None, since: float
               ) -> tuple[float, float] | None:
    """First offline-pending to last offline of the group's resources on the old owner, from
    ``since`` on (earlier ones belong to local restarts before the failure that moved it)."""
    times = [(at, state) for e in window
             if (rs := resource_state(e)) is not None and rs[2] == node
             and (state := rs[1]) in ("offline-pending", "offline")
             and (at := event_time(e)) >= since]
    if not times:
        return None
    return times[0][0], max(t for t, _ in times)


def _online_phases(after: Sequence[Mapping[str, Any]], node: str | None, start: float,
                   resources: Sequence[str]) -> list[Phase]:
    pending: dict[str, float] = {}
    online: dict[str, float] = {}
    seen: list[str] = []
    for event in after:
        rs = resource_state(event)
        if rs is None or rs[2] != node:
            continue
        name, state, _ = rs
        if name not in seen:
            seen.append(name)
        if state == "online-pending" and name not in online:
            pending[name] = event_time(event)
        elif state == "online" and name not in online:
            online[name] = event_time(event)
    names = list(resources) + [n for n in seen if n not in resources]
    phases = []
    if pending and min(pending.values()) > start:
        # Between the claim and the first online attempt: restoring checkpoints, the monitor
        # loading the resource type.
        phases.append(Phase(f"preparing on {node}", "claim", start, min(pending.values())))
    for name in names:
        begin = pending.get(name, start)
        end = online.get(name)
        phases.append(Phase(f"{name} online", "online", min(begin, end or begin), end))
    return phases


def build_timelines(events: Iterable[Mapping[str, Any]],
                    leases: Mapping[str, Sequence[LeaseSeen]] | None = None,
                    resources: Mapping[str, Sequence[str]] | None = None) -> list[Timeline]:
    """Every failover and move found in ``events`` (oldest first), newest first.

    ``leases``: node -> the leases the caller has seen end (for the lease phase of a node death;
    without one, that timeline starts at the claim). ``resources``: group -> its resources in
    dependency order (a resource that never came online still gets an open phase).
    """
    leases = leases or {}
    resources = resources or {}
    by_group: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    by_node: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        if event.get("group"):
            by_group[str(event["group"])].append(event)
        elif event.get("node"):
            by_node[str(event["node"])].append(event)
    timelines: list[Timeline] = []
    for group, group_events in by_group.items():
        changes = _ownership_changes(group_events)
        for number, change in enumerate(changes):
            previous_end = changes[number - 1].claim_index + 1 if number else 0
            next_start = changes[number + 1].index if number + 1 < len(changes) else None
            window = group_events[previous_end:change.index]
            claim_event = group_events[change.claim_index]
            claimed_at = event_time(claim_event)
            lower = event_time(group_events[previous_end - 1]) if previous_end else 0.0
            after = group_events[change.claim_index + 1:next_start]
            phases: list[Phase] = []
            if change.by_lease:
                lease = _last_lease(leases.get(change.from_node or "", ()), claimed_at)
                if lease is not None:
                    started_at = lease.renewed_at
                    start_label = f"failure seen: {change.from_node}'s last lease renewal"
                    phases.append(Phase("lease expired", "lease", lease.renewed_at,
                                        lease.expires_at))
                    phases.append(Phase(f"claimed by {change.to_node}", "claim",
                                        lease.expires_at, claimed_at))
                else:
                    started_at = claimed_at
                    start_label = (f"{change.from_node}'s lease expired (its last renewal was "
                                   "not seen by this dashboard)")
                    phases.append(Phase(f"claimed by {change.to_node}", "claim", claimed_at,
                                        claimed_at))
            else:
                trigger = _trigger(window, change, by_node.get(change.from_node or "", ()), lower)
                stop = _stop_span([*window, change.event], change.from_node,
                                  trigger[0] if trigger else lower)
                starts = [t for t in (trigger[0] if trigger else None,
                                      stop[0] if stop else None) if t is not None]
                started_at = min([*starts, claimed_at])
                if trigger is not None:
                    start_label = ("failure seen: " if change.kind == "failover" else "") + \
                        trigger[1]
                else:
                    start_label = change.reason
                mark = started_at
                if stop is not None:
                    phases.append(Phase(f"stopped on {change.from_node}", "stop", mark, stop[1]))
                    mark = stop[1]
                phases.append(Phase(f"claimed by {change.to_node}", "claim", min(mark, claimed_at),
                                    claimed_at))
            phases.extend(_online_phases(after, change.to_node, claimed_at,
                                         resources.get(group, ())))
            timelines.append(Timeline(
                group=group, kind=change.kind, from_node=change.from_node,
                to_node=change.to_node, reason=change.reason, started_at=started_at,
                start_label=start_label, claimed_at=claimed_at, phases=tuple(phases),
                seq=int(claim_event.get("seq") or 0), superseded=next_start is not None))
    timelines.sort(key=lambda t: (t.claimed_at, t.seq), reverse=True)
    return timelines
