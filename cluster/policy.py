"""Cluster decisions as pure functions: a snapshot and a clock in, actions out.

``decide(snapshot, me, now)`` answers, for one node, what it should do now about every group:
claim it, bring its resources online in dependency order, restart a failed resource, take the
group offline and hand it to another node (a move, a drain, a failback or a failover), or stop
what it must not run. It reads no store, starts no process and looks at no clock of its own, so
every rule is tested with a table of snapshots (tests/policy_cases/).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cluster.model import (
    Failback,
    GroupSpec,
    GroupState,
    NodeState,
    ResourceSpec,
    ResourceState,
    RestartAction,
    Snapshot,
    parse_failback,
)

RUNNING = frozenset(
    {ResourceState.ONLINE, ResourceState.ONLINE_PENDING, ResourceState.OFFLINE_PENDING}
)


@dataclass(frozen=True)
class Action:
    group: str
    reason: str

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class Claim(Action):
    """Become the group's owner (compare-and-swap; the owner epoch increases)."""

    previous_owner: str | None = None
    failover: bool = False


@dataclass(frozen=True)
class HandOver(Action):
    """All of the group's resources are offline here: give ownership to ``to`` (None: nobody)."""

    to: str | None = None
    failure: bool = False


@dataclass(frozen=True)
class BringOnline(Action):
    resource: str = ""
    restart: bool = False


@dataclass(frozen=True)
class TakeOffline(Action):
    resource: str = ""


@dataclass(frozen=True)
class Terminate(Action):
    """Stop at once a resource this node must not run (fencing, deleted resource)."""

    resource: str = ""


@dataclass(frozen=True)
class SetGroupState(Action):
    state: GroupState = GroupState.OFFLINE
    failed: bool = False  # the group is left failed: record when, for the retry period


@dataclass(frozen=True)
class ClearTarget(Action):
    """A requested move cannot happen (target gone or not allowed)."""


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    wake_at: float = math.inf  # decide again no later than this, even if nothing changes

    def wake(self, at: float) -> None:
        self.wake_at = min(self.wake_at, at)

    def sentence(self) -> str:
        """What this tick decided, in words (logged, shown in events, asserted in tests)."""
        return "; ".join(describe(a) for a in self.actions) or "nothing to do"


def describe(action: Action) -> str:
    match action:
        case Claim():
            return f"claimed {action.group} ({action.reason})"
        case HandOver(to=None):
            return f"released {action.group} ({action.reason})"
        case HandOver():
            return f"handed {action.group} to {action.to} ({action.reason})"
        case BringOnline(restart=True):
            return f"restarting {action.resource} ({action.reason})"
        case BringOnline():
            return f"bringing {action.resource} online ({action.reason})"
        case TakeOffline():
            return f"taking {action.resource} offline ({action.reason})"
        case Terminate():
            return f"terminating {action.resource} ({action.reason})"
        case SetGroupState():
            return f"{action.group} is {action.state.value} ({action.reason})"
        case ClearTarget():
            return f"cancelled the move of {action.group} ({action.reason})"
    return f"{action.kind} {action.group}"


# --- placement -----------------------------------------------------------------------------


def hosting_nodes(snap: Snapshot, now: float) -> list[str]:
    """Nodes that may take new groups: up (not down, paused, draining or joining)."""
    return sorted(n for n in snap.nodes if snap.node_state(n, now) == NodeState.UP)


def possible(spec: GroupSpec, node: str) -> bool:
    return not spec.possible_owners or node in spec.possible_owners


def preference(spec: GroupSpec, node: str) -> int:
    try:
        return spec.preferred_owners.index(node)
    except ValueError:
        return len(spec.preferred_owners)


def place(snap: Snapshot, group: str, now: float, exclude: Iterable[str] = ()) -> str | None:
    """Where the group should run: anti-affinity first when another node is free, then preferred
    owners in order, then the least-loaded node; ties by name. None when no node may host it."""
    spec = snap.groups[group]
    excluded = set(exclude)
    candidates = [n for n in hosting_nodes(snap, now) if n not in excluded and possible(spec, n)]
    if not candidates:
        return None

    def owned(node: str) -> list[str]:
        return [g for g, st in snap.group_status.items()
                if g != group and g in snap.groups and st.owner == node]

    def key(node: str) -> tuple[bool, int, int, str]:
        clash = spec.anti_affinity is not None and any(
            snap.groups[g].anti_affinity == spec.anti_affinity for g in owned(node))
        return (clash, preference(spec, node), len(owned(node)), node)

    return min(candidates, key=key)


def failback_target(snap: Snapshot, group: str, me: str, now: float) -> str | None:
    """A preferred owner ranked above this node that has (re)joined since the group arrived here,
    when the group's failback policy allows it now. MSCS fails back only to a returning node."""
    spec = snap.groups[group]
    mode, window = parse_failback(spec.failback)
    if mode == Failback.NEVER:
        return None
    if mode == Failback.WINDOW and window is not None:
        hour = datetime.fromtimestamp(now).hour
        start, end = window
        inside = start <= hour < end if start <= end else (hour >= start or hour < end)
        if not inside:
            return None
    status = snap.group_status_of(group)
    arrived = status.claimed_at or 0.0
    for node in spec.preferred_owners:
        if node == me:
            return None
        if (snap.node_state(node, now) == NodeState.UP and possible(spec, node)
                and snap.nodes[node].acquired_at > arrived):
            return node
    return None


# --- restart policy --------------------------------------------------------------------------


def recent_failures(snap: Snapshot, resource: ResourceSpec, now: float) -> int:
    period = resource.policy.restart_period
    return sum(1 for t in snap.resource_status_of(resource.name).failures if t > now - period)


def failover_threshold(snap: Snapshot, spec: GroupSpec) -> int:
    if spec.failover_threshold is not None:
        return spec.failover_threshold
    return max(len(snap.nodes) - 1, 0)


def failovers_in_period(snap: Snapshot, spec: GroupSpec, now: float) -> int:
    status = snap.group_status_of(spec.name)
    return sum(1 for f in status.failovers
               if f.failure and f.time > now - spec.failover_period)


# --- decide ----------------------------------------------------------------------------------


def decide(snap: Snapshot, me: str, now: float) -> Decision:
    decision = Decision()
    for name, res in snap.local.items():
        spec = snap.resources.get(name)
        if spec is None and res.state in RUNNING:
            decision.actions.append(Terminate(group="", resource=name,
                                              reason="its resource was deleted"))
    for group in sorted(snap.groups):
        status = snap.group_status_of(group)
        if status.owner == me:
            _decide_owned(snap, me, now, group, decision)
        else:
            _stop_stale(snap, group, status.owner, decision)
            _decide_unowned(snap, me, now, group, decision)
    for node in snap.nodes.values():
        if node.alive(now):
            decision.wake(node.expires_at + 0.005)
    return decision


def _local_state(snap: Snapshot, resource: str) -> ResourceState:
    local = snap.local.get(resource)
    return local.state if local else ResourceState.OFFLINE


def _stop_stale(snap: Snapshot, group: str, owner: str | None, decision: Decision) -> None:
    for res in snap.group_resources(group):
        if _local_state(snap, res.name) in RUNNING:
            who = f"{owner} owns {group}" if owner else f"{group} has no owner here"
            decision.actions.append(Terminate(group=group, resource=res.name, reason=who))


def _decide_unowned(snap: Snapshot, me: str, now: float, group: str, decision: Decision) -> None:
    spec = snap.groups[group]
    status = snap.group_status_of(group)
    owner = status.owner
    if owner is not None and snap.node_state(owner, now) != NodeState.DOWN:
        return  # its owner is alive: nothing for us to do
    if spec.desired != "online" or not snap.group_resources(group):
        return
    if owner is None and status.state == GroupState.FAILED.value:
        return  # left failed with no home: an administrator brings it online again
    target = place(snap, group, now)
    if target != me:
        return
    if owner is None:
        reason = f"placing {group}: {_why_here(snap, spec, me)}"
    else:
        reason = f"{owner}'s lease expired; {group} is failing over to {me}"
    decision.actions.append(Claim(group=group, reason=reason, previous_owner=owner,
                                  failover=owner is not None))


def _why_here(snap: Snapshot, spec: GroupSpec, me: str) -> str:
    if me in spec.preferred_owners:
        return f"{me} is preferred owner #{spec.preferred_owners.index(me) + 1}"
    return f"{me} is the least-loaded node"


def _decide_owned(snap: Snapshot, me: str, now: float, group: str, decision: Decision) -> None:
    spec = snap.groups[group]
    status = snap.group_status_of(group)
    resources = snap.group_resources(group)
    retry_period = min((r.policy.retry_period_on_failure for r in resources), default=3600.0)

    if status.state == GroupState.FAILED.value and status.failed_at is not None:
        retry_at = status.failed_at + retry_period
        if now < retry_at and not _any_running(snap, resources):
            decision.wake(retry_at)
            return
        if now < retry_at:
            _take_all_offline(snap, resources, group, "the group is failed", decision)
            decision.wake(retry_at)
            return

    if spec.desired == "offline":
        if _take_all_offline(snap, resources, group, f"{group} was taken offline", decision):
            _set_state(status.state, GroupState.OFFLINE, group, "taken offline", decision)
        return

    move = _move_away(snap, me, now, group, resources, decision)
    if move is not None:
        to, reason, failure = move
        if _take_all_offline(snap, resources, group, reason, decision):
            if failure and to is None:
                _set_state(status.state, GroupState.FAILED, group, reason, decision, failed=True)
            else:
                decision.actions.append(HandOver(group=group, reason=reason, to=to,
                                                 failure=failure))
        return

    _bring_online(snap, now, group, resources, decision)


def _move_away(snap: Snapshot, me: str, now: float, group: str, resources: list[ResourceSpec],
               decision: Decision) -> tuple[str | None, str, bool] | None:
    """Whether the group must leave this node: (to, reason, caused by failure), or None."""
    spec = snap.groups[group]
    status = snap.group_status_of(group)
    if status.target and status.target != me:
        target = status.target
        if snap.node_state(target, now) == NodeState.UP and possible(spec, target):
            return target, f"move to {target} requested", False
        decision.actions.append(ClearTarget(group=group,
                                            reason=f"{target} cannot host {group} now"))
    my_state = snap.node_state(me, now)
    if my_state == NodeState.PAUSED:
        to = place(snap, group, now, exclude=[me])
        return to, f"{me} is draining", False
    for res in resources:
        local = snap.local.get(res.name)
        if local is None or local.state != ResourceState.FAILED:
            continue
        if res.policy.restart_action != RestartAction.RESTART.value:
            continue
        if recent_failures(snap, res, now) <= res.policy.restart_threshold:
            continue
        if failovers_in_period(snap, spec, now) >= failover_threshold(snap, spec):
            return None, (f"{res.name} failed past its restart threshold and {group} reached "
                          f"its failover threshold; left failed"), True
        to = place(snap, group, now, exclude=[me])
        if to is None:
            return None, (f"{res.name} failed past its restart threshold and no other node "
                          f"can host {group}; left failed"), True
        return to, (f"{res.name} failed {recent_failures(snap, res, now)} times in "
                    f"{res.policy.restart_period:g} s; {group} is failing over to {to}"), True
    back = failback_target(snap, group, me, now)
    if back is not None:
        return back, f"failback to preferred owner {back}", False
    return None


def _any_running(snap: Snapshot, resources: list[ResourceSpec]) -> bool:
    return any(_local_state(snap, r.name) in RUNNING for r in resources)


def _take_all_offline(snap: Snapshot, resources: list[ResourceSpec], group: str, reason: str,
                      decision: Decision) -> bool:
    """Offline in reverse dependency order; True once nothing of the group runs here."""
    for res in reversed(resources):
        state = _local_state(snap, res.name)
        if state in (ResourceState.ONLINE, ResourceState.ONLINE_PENDING):
            dependents_down = all(
                _local_state(snap, other.name) not in RUNNING
                for other in resources if res.name in other.depends_on)
            if dependents_down:
                decision.actions.append(TakeOffline(group=group, resource=res.name,
                                                    reason=reason))
    return not _any_running(snap, resources)


def _bring_online(snap: Snapshot, now: float, group: str, resources: list[ResourceSpec],
                  decision: Decision) -> None:
    status = snap.group_status_of(group)
    for res in resources:
        state = _local_state(snap, res.name)
        deps_online = all(_local_state(snap, d) == ResourceState.ONLINE for d in res.depends_on)
        if res.desired == "offline":
            dependents_down = all(_local_state(snap, o.name) not in RUNNING
                                  for o in resources if res.name in o.depends_on)
            if state in (ResourceState.ONLINE, ResourceState.ONLINE_PENDING) and dependents_down:
                decision.actions.append(TakeOffline(group=group, resource=res.name,
                                                    reason=f"{res.name} was taken offline"))
            continue
        if state == ResourceState.ONLINE and not deps_online:
            missing = [d for d in res.depends_on if _local_state(snap, d) != ResourceState.ONLINE]
            decision.actions.append(TakeOffline(group=group, resource=res.name,
                                                reason=f"it depends on {', '.join(missing)}"))
        elif state == ResourceState.OFFLINE and deps_online:
            decision.actions.append(BringOnline(group=group, resource=res.name,
                                                reason=f"{group} is coming online"))
        elif state == ResourceState.FAILED and deps_online:
            _restart(snap, now, group, res, decision)
    _set_state(status.state, _group_state(snap, resources), group, "its resources changed",
               decision)


def _restart(snap: Snapshot, now: float, group: str, res: ResourceSpec,
             decision: Decision) -> None:
    if res.policy.restart_action == RestartAction.DONT_RESTART.value:
        return
    failures = recent_failures(snap, res, now)
    if failures > res.policy.restart_threshold:
        return  # restart-no-failover past its threshold: stays failed
    local = snap.local[res.name]
    restart_at = local.since + res.policy.restart_delay
    if now < restart_at:
        decision.wake(restart_at)
        return
    decision.actions.append(BringOnline(
        group=group, resource=res.name, restart=True,
        reason=f"failure {failures} of {res.policy.restart_threshold} allowed in "
               f"{res.policy.restart_period:g} s"))


def _group_state(snap: Snapshot, resources: list[ResourceSpec]) -> GroupState:
    wanted = [r for r in resources if r.desired == "online"]
    states = [_local_state(snap, r.name) for r in wanted]
    if not states:
        return GroupState.OFFLINE
    if all(s == ResourceState.ONLINE for s in states):
        return GroupState.ONLINE
    if any(s in (ResourceState.ONLINE_PENDING, ResourceState.OFFLINE_PENDING) for s in states):
        return GroupState.PENDING
    if any(s == ResourceState.ONLINE for s in states):
        return GroupState.PARTIAL
    if any(s == ResourceState.FAILED for s in states):
        return GroupState.FAILED
    return GroupState.PENDING


def _set_state(current: str, new: GroupState, group: str, reason: str, decision: Decision,
               failed: bool = False) -> None:
    if current != new.value:
        decision.actions.append(SetGroupState(group=group, reason=reason, state=new,
                                              failed=failed))
