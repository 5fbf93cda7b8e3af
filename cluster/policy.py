"""Cluster decisions as pure functions: a snapshot and a clock in, actions out.

``decide(snapshot, me, now)`` answers, for one node, what it should do now about every group:
claim it, bring its resources online in dependency order, restart a failed resource, take the
group offline and hand it to another node (a move, a drain, a failback or a failover), or stop
what it must not run. It reads no store, starts no process and looks at no clock of its own, so
every rule is tested with a table of snapshots (tests/policy_cases/).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
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


def place(snap: Snapshot, group: str, now: float, exclude: Iterable[str] = (),
          planned: Mapping[str, str] | None = None) -> str | None:
    """Where the group should run: anti-affinity first when another node is free, then preferred
    owners in order, then the least-loaded node; ties by name. None when no node may host it.

    ``planned`` maps groups already placed during this tick to their node, so that groups placed
    together spread out (and keep apart by anti-affinity) instead of all landing on one node."""
    spec = snap.groups[group]
    excluded = set(exclude)
    candidates = [n for n in hosting_nodes(snap, now) if n not in excluded and possible(spec, n)]
    if not candidates:
        return None
    homes = {g: snap.group_status_of(g).owner for g in snap.groups if g != group}
    homes.update({g: n for g, n in (planned or {}).items() if g != group and g in snap.groups})

    def owned(node: str) -> list[str]:
        return [g for g, home in homes.items() if home == node]

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
    """Failures within the restart period on the current owner: MSCS counts restarts per node, so
    failures from before the group arrived here (a hand-over keeps the record) do not count."""
    period = resource.policy.restart_period
    arrived = snap.group_status_of(resource.group).claimed_at
    since = -math.inf if arrived is None else arrived
    return sum(1 for t in snap.resource_status_of(resource.name).failures
               if t > now - period and t >= since)


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
    plan = _plan_claims(snap, now)
    for group in sorted(snap.groups):
        status = snap.group_status_of(group)
        if status.owner == me:
            _decide_owned(snap, me, now, group, decision, plan)
        else:
            _stop_stale(snap, group, status.owner, decision)
            if plan.get(group) == me:
                _claim(snap, me, group, decision)
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


def _needs_home(snap: Snapshot, group: str, now: float) -> bool:
    """The group should run but has no live owner, so some node must claim it."""
    spec = snap.groups[group]
    status = snap.group_status_of(group)
    owner = status.owner
    if owner is not None and snap.node_state(owner, now) != NodeState.DOWN:
        return False  # its owner is alive: it decides for the group
    if spec.desired != "online" or not snap.group_resources(group):
        return False
    # Left failed with no home: an administrator brings it online again.
    return not (owner is None and status.state == GroupState.FAILED.value)


def _plan_claims(snap: Snapshot, now: float) -> dict[str, str]:
    """Where each homeless group goes this tick, in name order, each placement counting for the
    next. Every node computes the same plan from the same snapshot, so exactly one claims."""
    plan: dict[str, str] = {}
    for group in sorted(snap.groups):
        if _needs_home(snap, group, now):
            target = place(snap, group, now, planned=plan)
            if target is not None:
                plan[group] = target
    return plan


def _claim(snap: Snapshot, me: str, group: str, decision: Decision) -> None:
    spec = snap.groups[group]
    owner = snap.group_status_of(group).owner
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


def _decide_owned(snap: Snapshot, me: str, now: float, group: str, decision: Decision,
                  plan: dict[str, str]) -> None:
    spec = snap.groups[group]
    status = snap.group_status_of(group)
    resources = snap.group_resources(group)
    retry_period = min((r.policy.retry_period_on_failure for r in resources), default=3600.0)

    mine = snap.nodes.get(me)
    if (status.owner_node_epoch is not None and mine is not None
            and status.owner_node_epoch != mine.epoch):
        # Held under an earlier lease of ours (we were frozen or restarted): others may have
        # seen that lease expire, so win the group back by compare-and-swap before acting.
        decision.actions.append(Claim(group=group, previous_owner=me, reason=(
            f"{me} holds a new lease (epoch {mine.epoch}); re-claiming {group}")))
        return

    if spec.desired == "offline":  # before the failed wait: an administrator's offline wins
        if _take_all_offline(snap, resources, group, f"{group} was taken offline", decision):
            _set_state(status.state, GroupState.OFFLINE, group, "taken offline", decision)
        return

    # A failed group waits out the retry period here, unless an administrator moves it (MSCS
    # "Move Group" on a failed group tries it on the new node).
    if (status.state == GroupState.FAILED.value and status.failed_at is not None
            and not status.target):
        retry_at = status.failed_at + retry_period
        if now < retry_at and not _any_running(snap, resources):
            decision.wake(retry_at)
            return
        if now < retry_at:
            _take_all_offline(snap, resources, group, "the group is failed", decision)
            decision.wake(retry_at)
            return

    move = _move_away(snap, me, now, group, resources, decision, plan)
    if move is not None:
        to, reason, failure = move
        if _take_all_offline(snap, resources, group, reason, decision):
            if failure and to is None:
                # Record the time even if the group already shows failed (a resource was
                # failing): failed_at starts the retry period.
                if (status.state != GroupState.FAILED.value or status.failed_at is None
                        or status.failed_at + retry_period <= now):
                    decision.actions.append(SetGroupState(group=group, reason=reason,
                                                          state=GroupState.FAILED, failed=True))
            else:
                decision.actions.append(HandOver(group=group, reason=reason, to=to,
                                                 failure=failure))
                if to is not None:
                    plan[group] = to
        return

    _bring_online(snap, now, group, resources, decision)


def _move_away(snap: Snapshot, me: str, now: float, group: str, resources: list[ResourceSpec],
               decision: Decision, plan: Mapping[str, str]) -> tuple[str | None, str, bool] | None:
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
        to = place(snap, group, now, exclude=[me], planned=plan)
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
        # Like MSCS walking its preferred list (or Pacemaker's per-node fail counts), do not
        # send the group back to a node it failed on in this failover period while another
        # node can still be tried.
        tried = {f.from_node for f in status.failovers
                 if f.failure and f.time > now - spec.failover_period and f.from_node}
        to = (place(snap, group, now, exclude=[me, *tried], planned=plan)
              or place(snap, group, now, exclude=[me], planned=plan))
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
        if (state in (ResourceState.ONLINE, ResourceState.ONLINE_PENDING)
                and _dependents_down(snap, resources, res.name)):
            decision.actions.append(TakeOffline(group=group, resource=res.name, reason=reason))
    return not _any_running(snap, resources)


def _dependents_down(snap: Snapshot, resources: list[ResourceSpec], name: str) -> bool:
    return all(_local_state(snap, other.name) not in RUNNING
               for other in resources if name in other.depends_on)


def _wanted_online(resources: list[ResourceSpec]) -> dict[str, bool]:
    """Desired online, and so is everything it depends on (taking a resource offline takes its
    dependents offline too, as in MSCS)."""
    wanted: dict[str, bool] = {}
    for res in resources:  # dependencies first
        wanted[res.name] = res.desired == "online" and all(
            wanted.get(d, True) for d in res.depends_on)
    return wanted


def _bring_online(snap: Snapshot, now: float, group: str, resources: list[ResourceSpec],
                  decision: Decision) -> None:
    """Converge the owner's resources on the spec: online bottom-up (a resource starts only when
    its dependencies are online), offline top-down (only once its dependents are down)."""
    status = snap.group_status_of(group)
    wanted = _wanted_online(resources)
    must_stop: dict[str, str] = {}  # running resource -> why it has to go offline
    for res in resources:  # dependencies first, so must_stop of a dependency is known
        if _local_state(snap, res.name) not in (ResourceState.ONLINE,
                                                ResourceState.ONLINE_PENDING):
            continue
        if res.desired == "offline":
            must_stop[res.name] = f"{res.name} was taken offline"
            continue
        missing = [d for d in res.depends_on if not wanted.get(d, True) or d in must_stop
                   or _local_state(snap, d) != ResourceState.ONLINE]
        if missing:
            must_stop[res.name] = f"it depends on {', '.join(missing)}"
    heading: dict[str, ResourceState] = {}  # where this tick's actions take each resource
    for res in resources:
        state = _local_state(snap, res.name)
        if res.name in must_stop:
            if _dependents_down(snap, resources, res.name):
                decision.actions.append(TakeOffline(group=group, resource=res.name,
                                                    reason=must_stop[res.name]))
                heading[res.name] = ResourceState.OFFLINE
            continue
        if not wanted[res.name]:
            continue
        deps_online = all(_local_state(snap, d) == ResourceState.ONLINE
                          and d not in must_stop for d in res.depends_on)
        if state == ResourceState.OFFLINE and deps_online:
            decision.actions.append(BringOnline(group=group, resource=res.name,
                                                reason=f"{group} is coming online"))
            heading[res.name] = ResourceState.ONLINE_PENDING
        elif (state == ResourceState.FAILED and deps_online
              and _dependents_down(snap, resources, res.name)
              and _restart(snap, now, group, res, decision)):
            heading[res.name] = ResourceState.ONLINE_PENDING
    states = [heading.get(r.name, _local_state(snap, r.name)) for r in resources
              if wanted[r.name]]
    _set_state(status.state, _group_state(states), group, "its resources changed", decision)


def _restart(snap: Snapshot, now: float, group: str, res: ResourceSpec,
             decision: Decision) -> bool:
    """Restart a failed resource here if its policy allows it now; True when restarting."""
    policy = res.policy
    if policy.restart_action == RestartAction.DONT_RESTART.value:
        return False
    failures = recent_failures(snap, res, now)
    local = snap.local[res.name]
    # RestartDelay spaces restart attempts: the first failure after a quiet spell restarts at
    # once, a crash loop restarts at most once per delay (after the previous failure).
    history = snap.resource_status_of(res.name).failures
    restart_at = local.since
    if len(history) >= 2:
        restart_at = max(restart_at, history[-2] + policy.restart_delay)
    reason = (f"failure {failures} of {policy.restart_threshold} allowed in "
              f"{policy.restart_period:g} s")
    if failures > policy.restart_threshold:
        # restart-no-failover past its threshold stays failed for RetryPeriodOnFailure, then
        # MSCS begins another series of restarts.
        restart_at = local.since + policy.retry_period_on_failure
        reason = (f"{failures} failures in {policy.restart_period:g} s; retrying after "
                  f"{policy.retry_period_on_failure:g} s failed")
    if now < restart_at:
        decision.wake(restart_at)
        return False
    decision.actions.append(BringOnline(group=group, resource=res.name, restart=True,
                                        reason=reason))
    return True


def _group_state(states: list[ResourceState]) -> GroupState:
    """The group's state from its wanted resources' states (MSCS: online, partially online,
    pending, failed)."""
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


def _set_state(current: str, new: GroupState, group: str, reason: str,
               decision: Decision) -> None:
    if current != new.value:
        decision.actions.append(SetGroupState(group=group, reason=reason, state=new))
