"""The cluster's vocabulary: states, policies and the records the store holds.

Every record is parsed once per tick by a ``from_record()`` into a frozen dataclass, so a
decision works on one immutable snapshot (Patroni's ``Cluster``/``Member``). Parsers raise
``ModelError`` with the record's key, so a hand-edited file is named in the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class ModelError(ValueError):
    """A record or an argument that does not fit the model; the message says what to do."""


class NodeState(StrEnum):
    UP = "up"
    DOWN = "down"
    PAUSED = "paused"
    JOINING = "joining"


class GroupState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAILED = "failed"
    PENDING = "pending"
    PARTIAL = "partial"


class ResourceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    FAILED = "failed"
    ONLINE_PENDING = "online-pending"
    OFFLINE_PENDING = "offline-pending"


# Allowed resource transitions, as reported by a resource monitor (MSCS resource state machine).
RESOURCE_TRANSITIONS: dict[ResourceState, frozenset[ResourceState]] = {
    ResourceState.OFFLINE: frozenset({ResourceState.ONLINE_PENDING, ResourceState.FAILED}),
    ResourceState.ONLINE_PENDING: frozenset(
        {ResourceState.ONLINE, ResourceState.FAILED, ResourceState.OFFLINE_PENDING,
         ResourceState.OFFLINE}
    ),
    ResourceState.ONLINE: frozenset(
        {ResourceState.OFFLINE_PENDING, ResourceState.FAILED, ResourceState.OFFLINE}
    ),
    ResourceState.OFFLINE_PENDING: frozenset({ResourceState.OFFLINE, ResourceState.FAILED}),
    ResourceState.FAILED: frozenset({ResourceState.ONLINE_PENDING, ResourceState.OFFLINE}),
}


def transition_allowed(old: ResourceState, new: ResourceState) -> bool:
    return old == new or new in RESOURCE_TRANSITIONS[old]


class Failback(StrEnum):
    NEVER = "never"
    IMMEDIATE = "immediate"
    WINDOW = "window"


class RestartAction(StrEnum):
    """MSCS RestartAction: do not restart, restart without affecting the group, or restart and
    fail the group over past the threshold (the default)."""

    DONT_RESTART = "dont-restart"
    RESTART_NO_FAILOVER = "restart-no-failover"
    RESTART = "restart"


# Defaults taken from MSCS (DESIGN.md).
RESTART_THRESHOLD = 3
RESTART_PERIOD = 900.0
RESTART_DELAY = 0.5
RETRY_PERIOD_ON_FAILURE = 3600.0
FAILOVER_PERIOD = 6 * 3600.0
PENDING_TIMEOUT = 180.0
LOOKS_ALIVE_INTERVAL = 5.0
IS_ALIVE_INTERVAL = 60.0
LEASE_TTL = 2.0


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ModelError(
            f"invalid {kind} name {name!r}: use 1-63 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def _get(value: Mapping[str, Any], key: str, kinds: type | tuple[type, ...], where: str,
         default: Any = None) -> Any:
    item = value.get(key, default)
    if item is None:
        return default
    if isinstance(item, bool) and kinds in (int, float, (int, float)):
        raise ModelError(f"{where}: '{key}' must be a number, not {item!r}; fix or recreate it")
    if not isinstance(item, kinds):
        raise ModelError(f"{where}: '{key}' has the wrong type ({item!r}); fix or recreate it")
    return item


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ModelError(f"{where}: expected a JSON object; fix the file or recreate the item")
    return value


def parse_failback(text: str) -> tuple[Failback, tuple[int, int] | None]:
    """``never``, ``immediate`` or an hour window ``HH-HH`` (e.g. ``22-06``, wrapping midnight)."""
    if text in (Failback.NEVER.value, Failback.IMMEDIATE.value):
        return Failback(text), None
    match = re.fullmatch(r"(\d{1,2})-(\d{1,2})", text or "")
    if not match or not all(0 <= int(h) <= 23 for h in match.groups()):
        raise ModelError(
            f"invalid failback {text!r}: use never, immediate or an hour window HH-HH such as 22-06"
        )
    start, end = (int(h) for h in match.groups())
    return Failback.WINDOW, (start, end)


@dataclass(frozen=True)
class GroupSpec:
    name: str
    preferred_owners: tuple[str, ...] = ()
    possible_owners: tuple[str, ...] = ()  # empty: any node
    failback: str = Failback.NEVER.value
    failover_threshold: int | None = None  # None: number of nodes - 1
    failover_period: float = FAILOVER_PERIOD
    anti_affinity: str | None = None
    desired: str = "online"
    version: int = 0

    @classmethod
    def from_record(cls, name: str, value: Any, version: int = 0) -> GroupSpec:
        where = f"spec/groups/{name}"
        v = _obj(value, where)
        spec = cls(
            name=name,
            preferred_owners=tuple(_get(v, "preferred_owners", list, where, [])),
            possible_owners=tuple(_get(v, "possible_owners", list, where, [])),
            failback=_get(v, "failback", str, where, Failback.NEVER.value),
            failover_threshold=_get(v, "failover_threshold", int, where),
            failover_period=float(_get(v, "failover_period", (int, float), where, FAILOVER_PERIOD)),
            anti_affinity=_get(v, "anti_affinity", str, where),
            desired=_get(v, "desired", str, where, "online"),
            version=version,
        )
        spec.validate(where)
        return spec

    def validate(self, where: str = "group") -> None:
        try:
            parse_failback(self.failback)
            for owner in (*self.preferred_owners, *self.possible_owners):
                check_name("node", owner)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None
        if self.desired not in ("online", "offline"):
            raise ModelError(f"{where}: desired must be online or offline")
        if self.failover_threshold is not None and self.failover_threshold < 0:
            raise ModelError(f"{where}: failover threshold must be 0 or more")
        if self.failover_period <= 0:
            raise ModelError(f"{where}: failover period must be positive")

    def to_record(self) -> dict[str, Any]:
        return {
            "preferred_owners": list(self.preferred_owners),
            "possible_owners": list(self.possible_owners),
            "failback": self.failback,
            "failover_threshold": self.failover_threshold,
            "failover_period": self.failover_period,
            "anti_affinity": self.anti_affinity,
            "desired": self.desired,
        }


@dataclass(frozen=True)
class ResourcePolicy:
    restart_action: str = RestartAction.RESTART.value
    restart_threshold: int = RESTART_THRESHOLD
    restart_period: float = RESTART_PERIOD
    restart_delay: float = RESTART_DELAY
    retry_period_on_failure: float = RETRY_PERIOD_ON_FAILURE
    pending_timeout: float = PENDING_TIMEOUT
    looks_alive_interval: float = LOOKS_ALIVE_INTERVAL
    is_alive_interval: float = IS_ALIVE_INTERVAL
    separate_monitor: bool = False

    @classmethod
    def from_record(cls, value: Any, where: str) -> ResourcePolicy:
        v = _obj(value or {}, where)
        unknown = set(v) - set(cls.__dataclass_fields__)
        if unknown:
            raise ModelError(f"{where}: unknown policy setting(s) {', '.join(sorted(unknown))};"
                             f" use {', '.join(cls.__dataclass_fields__)}")
        kwargs: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            if name not in v:
                continue
            kind = type(f.default)
            item = v[name]
            if kind is float and isinstance(item, int) and not isinstance(item, bool):
                item = float(item)
            if type(item) is not kind:
                raise ModelError(f"{where}: policy '{name}' must be a {kind.__name__}")
            kwargs[name] = item
        policy = cls(**kwargs)
        policy.validate(where)
        return policy

    def validate(self, where: str) -> None:
        if self.restart_action not in {a.value for a in RestartAction}:
            raise ModelError(
                f"{where}: restart_action must be one of "
                + ", ".join(a.value for a in RestartAction)
            )
        if self.restart_threshold < 0:
            raise ModelError(f"{where}: restart threshold must be 0 or more")
        for name in ("restart_period", "pending_timeout", "looks_alive_interval",
                     "is_alive_interval", "retry_period_on_failure"):
            if getattr(self, name) <= 0:
                raise ModelError(f"{where}: {name.replace('_', ' ')} must be positive")
        if self.restart_delay < 0:
            raise ModelError(f"{where}: restart delay must be 0 or more")

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    group: str
    type: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    policy: ResourcePolicy = ResourcePolicy()
    desired: str = "online"
    version: int = 0

    @classmethod
    def from_record(cls, name: str, value: Any, version: int = 0) -> ResourceSpec:
        where = f"spec/resources/{name}"
        v = _obj(value, where)
        group = _get(v, "group", str, where)
        rtype = _get(v, "type", str, where)
        if not group or not rtype:
            raise ModelError(f"{where}: 'group' and 'type' are required; fix or recreate it")
        desired = _get(v, "desired", str, where, "online")
        if desired not in ("online", "offline"):
            raise ModelError(f"{where}: desired must be online or offline")
        depends_on = _get(v, "depends_on", list, where, [])
        for dep in depends_on:
            if not isinstance(dep, str) or not NAME_RE.match(dep):
                raise ModelError(f"{where}: depends_on holds {dep!r}, which is not a resource "
                                 "name; fix or recreate it")
        if name in depends_on:
            raise ModelError(f"{where}: dependency cycle: {name} -> {name}; a resource cannot "
                             "depend on itself; remove it from depends_on")
        return cls(
            name=name,
            group=group,
            type=rtype,
            properties=dict(_obj(v.get("properties") or {}, where)),
            depends_on=tuple(depends_on),
            policy=ResourcePolicy.from_record(v.get("policy"), where),
            desired=desired,
            version=version,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "type": self.type,
            "properties": dict(self.properties),
            "depends_on": list(self.depends_on),
            "policy": self.policy.to_record(),
            "desired": self.desired,
        }


@dataclass(frozen=True)
class NodeSpec:
    """Administrator intent for a node (pause = drain); the lease record is the node's own."""

    name: str
    paused: bool = False
    version: int = 0

    @classmethod
    def from_record(cls, name: str, value: Any, version: int = 0) -> NodeSpec:
        v = _obj(value, f"spec/nodes/{name}")
        return cls(name=name, paused=bool(v.get("paused", False)), version=version)


@dataclass(frozen=True)
class NodeStatus:
    """A node's lease record. Whether the node is alive is derived from ``expires_at`` and the
    clock, never stored."""

    name: str
    holder: str | None
    epoch: int
    expires_at: float
    acquired_at: float = 0.0
    address: str | None = None
    pid: int | None = None
    joining: bool = False
    stopping: bool = False
    version: int = 0

    @classmethod
    def from_record(cls, name: str, value: Any, version: int = 0) -> NodeStatus:
        where = f"status/nodes/{name}"
        v = _obj(value, where)
        return cls(
            name=name,
            holder=_get(v, "holder", str, where),
            epoch=_get(v, "epoch", int, where, 0),
            expires_at=float(_get(v, "expires_at", (int, float), where, 0.0)),
            acquired_at=float(_get(v, "acquired_at", (int, float), where, 0.0)),
            address=_get(v, "address", str, where),
            pid=_get(v, "pid", int, where),
            joining=bool(v.get("joining", False)),
            stopping=bool(v.get("stopping", False)),
            version=version,
        )

    def alive(self, now: float) -> bool:
        return self.holder == self.name and self.expires_at > now


@dataclass(frozen=True)
class Failover:
    time: float
    from_node: str | None
    to_node: str | None
    reason: str
    failure: bool  # caused by a failure (counts against the failover threshold), not a planned move

    @classmethod
    def from_record(cls, value: Any, where: str) -> Failover:
        v = _obj(value, where)
        return cls(
            time=float(_get(v, "time", (int, float), where, 0.0)),
            from_node=_get(v, "from", str, where),
            to_node=_get(v, "to", str, where),
            reason=_get(v, "reason", str, where, ""),
            failure=bool(v.get("failure", False)),
        )

    def to_record(self) -> dict[str, Any]:
        return {"time": self.time, "from": self.from_node, "to": self.to_node,
                "reason": self.reason, "failure": self.failure}


@dataclass(frozen=True)
class GroupStatus:
    name: str
    owner: str | None = None
    owner_epoch: int = 0
    state: str = GroupState.OFFLINE.value
    target: str | None = None
    failovers: tuple[Failover, ...] = ()
    failed_at: float | None = None
    claimed_at: float | None = None
    # The owner's lease epoch when it took the group: a node that lost its lease (frozen,
    # restarted) must win the group back by compare-and-swap before running it again.
    owner_node_epoch: int | None = None
    version: int = 0

    @classmethod
    def from_record(cls, name: str, value: Any, version: int = 0) -> GroupStatus:
        where = f"status/groups/{name}"
        v = _obj(value, where)
        state = _get(v, "state", str, where, GroupState.OFFLINE.value)
        if state not in {s.value for s in GroupState}:
            raise ModelError(f"{where}: unknown group state {state!r}; fix or delete the file")
        return cls(
            name=name,
            owner=_get(v, "owner", str, where),
            owner_epoch=_get(v, "owner_epoch", int, where, 0),
            state=state,
            target=_get(v, "target", str, where),
            failovers=tuple(Failover.from_record(f, where)
                            for f in _get(v, "failovers", list, where, [])),
            failed_at=_get(v, "failed_at", (int, float), where),
            claimed_at=_get(v, "claimed_at", (int, float), where),
            owner_node_epoch=_get(v, "owner_node_epoch", int, where),
            version=version,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "owner_epoch": self.owner_epoch,
            "state": self.state,
            "target": self.target,
            "failovers": [f.to_record() for f in self.failovers],
            "failed_at": self.failed_at,
            "claimed_at": self.claimed_at,
            "owner_node_epoch": self.owner_node_epoch,
        }


@dataclass(frozen=True)
class ResourceStatus:
    name: str
    state: str = ResourceState.OFFLINE.value
    node: str | None = None
    owner_epoch: int = 0
    pid: int | None = None
    failures: tuple[float, ...] = ()  # failure times within the restart period, oldest first
    last_error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0

    @classmethod
    def from_record(cls, name: str, value: Any, version: int = 0) -> ResourceStatus:
        where = f"status/resources/{name}"
        v = _obj(value, where)
        state = _get(v, "state", str, where, ResourceState.OFFLINE.value)
        if state not in {s.value for s in ResourceState}:
            raise ModelError(f"{where}: unknown resource state {state!r}; fix or delete the file")
        failures = _get(v, "failures", list, where, [])
        if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in failures):
            raise ModelError(f"{where}: 'failures' must be a list of times (numbers); fix or "
                             "delete the file")
        return cls(
            name=name,
            state=state,
            node=_get(v, "node", str, where),
            owner_epoch=_get(v, "owner_epoch", int, where, 0),
            pid=_get(v, "pid", int, where),
            failures=tuple(float(t) for t in failures),
            last_error=_get(v, "last_error", str, where),
            details=dict(_obj(v.get("details") or {}, where)),
            version=version,
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "node": self.node,
            "owner_epoch": self.owner_epoch,
            "pid": self.pid,
            "failures": list(self.failures),
            "last_error": self.last_error,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class LocalResource:
    """What this node's monitor last reported for a resource it hosts."""

    name: str
    state: ResourceState
    pid: int | None = None
    error: str | None = None
    since: float = 0.0  # wall-clock time of the last state change


@dataclass(frozen=True)
class Snapshot:
    """One immutable view of the cluster, read once per tick."""

    cluster: str
    lease_ttl: float
    node_specs: Mapping[str, NodeSpec]
    nodes: Mapping[str, NodeStatus]
    groups: Mapping[str, GroupSpec]
    group_status: Mapping[str, GroupStatus]
    resources: Mapping[str, ResourceSpec]
    resource_status: Mapping[str, ResourceStatus]
    local: Mapping[str, LocalResource] = field(default_factory=dict)

    def node_state(self, name: str, now: float) -> NodeState:
        status = self.nodes.get(name)
        if status is None or not status.alive(now):
            return NodeState.DOWN
        if status.stopping or self.node_specs.get(name, NodeSpec(name)).paused:
            return NodeState.PAUSED
        if status.joining:
            return NodeState.JOINING
        return NodeState.UP

    def group_resources(self, group: str) -> list[ResourceSpec]:
        """The group's resources in dependency order (dependencies first), ties by name."""
        members = {r.name: r for r in self.resources.values() if r.group == group}
        return [members[n] for n in dependency_order(
            {n: [d for d in r.depends_on if d in members] for n, r in members.items()})]

    def group_status_of(self, group: str) -> GroupStatus:
        return self.group_status.get(group) or GroupStatus(name=group)

    def resource_status_of(self, resource: str) -> ResourceStatus:
        return self.resource_status.get(resource) or ResourceStatus(name=resource)


def dependency_order(deps: Mapping[str, list[str] | tuple[str, ...]]) -> list[str]:
    """Topological order, dependencies first; raises ModelError naming a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name, 0)
        if mark == 2:
            return
        if mark == 1:
            cycle = path[path.index(name):] + [name]
            raise ModelError("dependency cycle: " + " -> ".join(cycle)
                             + "; remove one of these dependencies")
        state[name] = 1
        for dep in sorted(deps.get(name, ())):
            visit(dep, [*path, name])
        state[name] = 2
        order.append(name)

    for name in sorted(deps):
        visit(name, [])
    return order
