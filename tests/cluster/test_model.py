"""The cluster model: the resource state table, the record parsers and their messages, failback
parsing, dependency order and the MSCS defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cluster.model import (
    FAILOVER_PERIOD,
    RESOURCE_TRANSITIONS,
    Failback,
    GroupSpec,
    GroupState,
    GroupStatus,
    ModelError,
    NodeSpec,
    NodeState,
    NodeStatus,
    ResourcePolicy,
    ResourceSpec,
    ResourceState,
    ResourceStatus,
    RestartAction,
    Snapshot,
    check_name,
    dependency_order,
    parse_failback,
    transition_allowed,
)
from cluster.policy import failover_threshold

S = ResourceState

# --- states and the transition table -----------------------------------------------------------


def test_state_values_are_the_contract() -> None:
    """The JSON contract in DESIGN.md spells these values; renaming one breaks every client."""
    assert {s.value for s in NodeState} == {"up", "down", "paused", "joining"}
    assert {s.value for s in GroupState} == {"online", "offline", "failed", "pending", "partial"}
    assert {s.value for s in ResourceState} == {"online", "offline", "failed", "online-pending",
                                                "offline-pending"}
    assert {a.value for a in RestartAction} == {"dont-restart", "restart-no-failover", "restart"}


def test_every_state_has_a_row() -> None:
    assert set(RESOURCE_TRANSITIONS) == set(ResourceState)
    for old, targets in RESOURCE_TRANSITIONS.items():
        assert old not in targets, f"{old} lists itself; staying put is always allowed"


@pytest.mark.parametrize(("old", "new"), [
    (old, new) for old, targets in RESOURCE_TRANSITIONS.items() for new in sorted(targets)
], ids=lambda s: s.value)
def test_every_listed_transition_is_allowed(old: ResourceState, new: ResourceState) -> None:
    assert transition_allowed(old, new)


@pytest.mark.parametrize("state", list(ResourceState), ids=lambda s: s.value)
def test_staying_in_a_state_is_allowed(state: ResourceState) -> None:
    assert transition_allowed(state, state)


@pytest.mark.parametrize(("old", "new"), [
    (S.OFFLINE, S.ONLINE),  # online always passes through online-pending
    (S.OFFLINE, S.OFFLINE_PENDING),  # nothing to take offline
    (S.OFFLINE_PENDING, S.ONLINE),  # going offline cannot end online
    (S.OFFLINE_PENDING, S.ONLINE_PENDING),
    (S.FAILED, S.ONLINE),  # a restart passes through online-pending
    (S.FAILED, S.OFFLINE_PENDING),
], ids=lambda s: s.value)
def test_forbidden_transitions_are_refused(old: ResourceState, new: ResourceState) -> None:
    assert not transition_allowed(old, new)


def test_the_table_walks_the_mscs_lifecycle() -> None:
    life = [S.OFFLINE, S.ONLINE_PENDING, S.ONLINE, S.FAILED, S.ONLINE_PENDING, S.ONLINE,
            S.OFFLINE_PENDING, S.OFFLINE]
    for old, new in zip(life, life[1:], strict=False):
        assert transition_allowed(old, new), f"{old.value} -> {new.value}"


# --- defaults --------------------------------------------------------------------------------


def test_resource_policy_defaults_are_the_mscs_defaults() -> None:
    """DESIGN.md: RestartThreshold 3, RestartPeriod 900 s, RestartDelay 0.5 s,
    RetryPeriodOnFailure 3600 s, LooksAlive every 5 s, IsAlive every 60 s, PendingTimeout 180 s,
    and a failure past the threshold fails the group over."""
    policy = ResourcePolicy()
    assert policy.restart_action == RestartAction.RESTART.value
    assert policy.restart_threshold == 3
    assert policy.restart_period == 900.0
    assert policy.restart_delay == 0.5
    assert policy.retry_period_on_failure == 3600.0
    assert policy.looks_alive_interval == 5.0
    assert policy.is_alive_interval == 60.0
    assert policy.pending_timeout == 180.0
    assert policy.separate_monitor is False
    assert ResourcePolicy.from_record(None, "spec/resources/x") == policy
    assert ResourceSpec.from_record("x", {"group": "g", "type": "t"}).policy == policy


def test_group_defaults_are_the_mscs_defaults() -> None:
    """DESIGN.md: FailoverThreshold = nodes - 1, FailoverPeriod 6 h, failback prevented."""
    spec = GroupSpec.from_record("g", {})
    assert spec.failback == Failback.NEVER.value
    assert spec.failover_period == FAILOVER_PERIOD == 6 * 3600.0
    assert spec.failover_threshold is None
    assert spec.desired == "online"
    nodes = {n: NodeStatus(n, n, 1, 10.0) for n in ("a", "b", "c")}
    snap = Snapshot("c", 2.0, {}, nodes, {"g": spec}, {}, {}, {})
    assert failover_threshold(snap, spec) == 2
    assert failover_threshold(snap, GroupSpec.from_record("g", {"failover_threshold": 7})) == 7


# --- parsers: good records -----------------------------------------------------------------------


def test_records_round_trip() -> None:
    group = GroupSpec.from_record("notepad", {
        "preferred_owners": ["node1", "node2"], "possible_owners": ["node1", "node2", "node3"],
        "failback": "22-06", "failover_threshold": 2, "failover_period": 600,
        "anti_affinity": "editors", "desired": "offline"})
    assert GroupSpec.from_record("notepad", group.to_record()) == group
    assert group.failover_period == 600.0 and isinstance(group.failover_period, float)

    resource = ResourceSpec.from_record("app", {
        "group": "notepad", "type": "generic-app", "properties": {"command": "x", "console": True},
        "depends_on": ["disk"], "desired": "offline",
        "policy": {"restart_threshold": 1, "restart_period": 60, "restart_action": "dont-restart",
                   "separate_monitor": True}})
    assert ResourceSpec.from_record("app", resource.to_record()) == resource
    assert resource.policy.restart_period == 60.0

    status = GroupStatus.from_record("notepad", {
        "owner": "node1", "owner_epoch": 4, "state": "partial", "target": "node2",
        "failovers": [{"time": 5, "from": "node2", "to": "node1", "reason": "r", "failure": True}],
        "failed_at": 3.0, "claimed_at": 5.0})
    assert GroupStatus.from_record("notepad", status.to_record()) == status
    assert status.failovers[0].from_node == "node2" and status.failovers[0].failure

    rstatus = ResourceStatus.from_record("app", {
        "state": "online-pending", "node": "node1", "owner_epoch": 4, "pid": 77,
        "failures": [1, 2.5], "last_error": "boom", "details": {"k": 1}})
    assert ResourceStatus.from_record("app", rstatus.to_record()) == rstatus
    assert rstatus.failures == (1.0, 2.5)


def test_node_liveness_is_derived_from_the_lease() -> None:
    lease = NodeStatus.from_record("node1", {"holder": "node1", "epoch": 3, "expires_at": 100})
    assert lease.alive(99.9)
    assert not lease.alive(100.0)
    released = NodeStatus.from_record("node1", {"holder": None, "epoch": 3, "expires_at": 100})
    assert not released.alive(50.0)


def test_node_state_precedence() -> None:
    def state(lease: dict[str, Any], paused: bool = False) -> NodeState:
        nodes = {"n": NodeStatus.from_record("n", {"holder": "n", "expires_at": 10.0, **lease})}
        specs = {"n": NodeSpec("n", paused=paused)}
        return Snapshot("c", 2.0, specs, nodes, {}, {}, {}, {}).node_state("n", 5.0)

    assert state({}) == NodeState.UP
    assert state({"joining": True}) == NodeState.JOINING
    assert state({}, paused=True) == NodeState.PAUSED
    assert state({"stopping": True}) == NodeState.PAUSED  # a graceful stop drains like a pause
    assert state({"joining": True}, paused=True) == NodeState.PAUSED
    assert state({"expires_at": 5.0}, paused=True) == NodeState.DOWN
    empty = Snapshot("c", 2.0, {}, {}, {}, {}, {}, {})
    assert empty.node_state("ghost", 5.0) == NodeState.DOWN


# --- parsers: bad records name the record and say what to do --------------------------------------

Parser = Callable[[str, Any], Any]

BAD_RECORDS: list[tuple[str, Parser, Any, str, str]] = [
    # (id, parser, value, the record named in the message, a fragment of the message)
    ("group-not-object", GroupSpec.from_record, ["x"], "spec/groups/notepad", "JSON object"),
    ("group-owners-not-list", GroupSpec.from_record, {"preferred_owners": "node1"},
     "spec/groups/notepad", "'preferred_owners' has the wrong type"),
    ("group-bad-owner-name", GroupSpec.from_record, {"preferred_owners": ["node 1"]},
     "spec/groups/notepad", "invalid node name 'node 1'"),
    ("group-bad-possible-owner", GroupSpec.from_record, {"possible_owners": [""]},
     "spec/groups/notepad", "invalid node name ''"),
    ("group-bad-failback", GroupSpec.from_record, {"failback": "sometimes"},
     "spec/groups/notepad", "use never, immediate or an hour window"),
    ("group-threshold-bool", GroupSpec.from_record, {"failover_threshold": True},
     "spec/groups/notepad", "must be a number"),
    ("group-threshold-negative", GroupSpec.from_record, {"failover_threshold": -1},
     "spec/groups/notepad", "failover threshold must be 0 or more"),
    ("group-period-zero", GroupSpec.from_record, {"failover_period": 0},
     "spec/groups/notepad", "failover period must be positive"),
    ("group-desired", GroupSpec.from_record, {"desired": "maybe"},
     "spec/groups/notepad", "desired must be online or offline"),
    ("resource-not-object", ResourceSpec.from_record, "app", "spec/resources/notepad",
     "JSON object"),
    ("resource-no-group", ResourceSpec.from_record, {"type": "generic-app"},
     "spec/resources/notepad", "'group' and 'type' are required"),
    ("resource-no-type", ResourceSpec.from_record, {"group": "g"},
     "spec/resources/notepad", "'group' and 'type' are required"),
    ("resource-desired", ResourceSpec.from_record, {"group": "g", "type": "t", "desired": "up"},
     "spec/resources/notepad", "desired must be online or offline"),
    ("resource-deps-not-list", ResourceSpec.from_record,
     {"group": "g", "type": "t", "depends_on": "disk"}, "spec/resources/notepad",
     "'depends_on' has the wrong type"),
    ("resource-dep-not-name", ResourceSpec.from_record,
     {"group": "g", "type": "t", "depends_on": [3]}, "spec/resources/notepad",
     "depends_on holds 3"),
    ("resource-depends-on-itself", ResourceSpec.from_record,
     {"group": "g", "type": "t", "depends_on": ["notepad"]}, "spec/resources/notepad",
     "notepad -> notepad"),
    ("resource-properties-not-object", ResourceSpec.from_record,
     {"group": "g", "type": "t", "properties": ["x"]}, "spec/resources/notepad", "JSON object"),
    ("policy-not-object", ResourceSpec.from_record, {"group": "g", "type": "t", "policy": [1]},
     "spec/resources/notepad", "JSON object"),
    ("policy-unknown-key", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_treshold": 2}}, "spec/resources/notepad",
     "unknown policy setting(s) restart_treshold"),
    ("policy-wrong-type", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_threshold": "3"}},
     "spec/resources/notepad", "policy 'restart_threshold' must be a int"),
    ("policy-bool-for-number", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_period": True}},
     "spec/resources/notepad", "policy 'restart_period' must be a float"),
    ("policy-restart-action", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_action": "reboot"}},
     "spec/resources/notepad", "restart_action must be one of dont-restart"),
    ("policy-threshold-negative", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_threshold": -1}},
     "spec/resources/notepad", "restart threshold must be 0 or more"),
    ("policy-period-zero", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_period": 0}},
     "spec/resources/notepad", "restart period must be positive"),
    ("policy-retry-zero", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"retry_period_on_failure": 0}},
     "spec/resources/notepad", "retry period on failure must be positive"),
    ("policy-delay-negative", ResourceSpec.from_record,
     {"group": "g", "type": "t", "policy": {"restart_delay": -0.5}},
     "spec/resources/notepad", "restart delay must be 0 or more"),
    ("node-spec-not-object", NodeSpec.from_record, "paused", "spec/nodes/notepad",
     "JSON object"),
    ("lease-epoch-text", NodeStatus.from_record, {"epoch": "3"}, "status/nodes/notepad",
     "'epoch' has the wrong type"),
    ("lease-expires-bool", NodeStatus.from_record, {"expires_at": True},
     "status/nodes/notepad", "must be a number"),
    ("group-status-state", GroupStatus.from_record, {"state": "sleeping"},
     "status/groups/notepad", "unknown group state 'sleeping'"),
    ("group-status-epoch", GroupStatus.from_record, {"owner_epoch": 1.5},
     "status/groups/notepad", "'owner_epoch' has the wrong type"),
    ("group-status-failovers", GroupStatus.from_record, {"failovers": {"time": 1}},
     "status/groups/notepad", "'failovers' has the wrong type"),
    ("group-status-failover-entry", GroupStatus.from_record, {"failovers": [7]},
     "status/groups/notepad", "JSON object"),
    ("group-status-failover-time", GroupStatus.from_record, {"failovers": [{"time": "noon"}]},
     "status/groups/notepad", "'time' has the wrong type"),
    ("resource-status-state", ResourceStatus.from_record, {"state": "dead"},
     "status/resources/notepad", "unknown resource state 'dead'"),
    ("resource-status-failures", ResourceStatus.from_record, {"failures": ["yesterday"]},
     "status/resources/notepad", "'failures' must be a list of times"),
    ("resource-status-details", ResourceStatus.from_record, {"details": "x"},
     "status/resources/notepad", "JSON object"),
]


@pytest.mark.parametrize(("parser", "value", "record", "fragment"),
                         [case[1:] for case in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS])
def test_bad_record_names_the_record(parser: Parser, value: Any, record: str,
                                     fragment: str) -> None:
    with pytest.raises(ModelError) as info:
        parser("notepad", value)
    message = str(info.value)
    assert message.startswith(f"{record}: "), message
    assert fragment in message, message
    assert "\n" not in message


def test_bad_records_say_what_to_do() -> None:
    """Each message ends with a way out: fix, recreate, delete, use ..., remove ..."""
    hints = ("fix", "recreate", "delete", "use ", "remove", "must", "required")
    for name, parser, value, _, _ in BAD_RECORDS:
        with pytest.raises(ModelError) as info:
            parser("notepad", value)
        assert any(h in str(info.value) for h in hints), f"{name}: {info.value}"


@pytest.mark.parametrize("name", ["node1", "a", "x.y_z-1", "A" * 63])
def test_good_names(name: str) -> None:
    assert check_name("node", name) == name


@pytest.mark.parametrize("name", ["", "-a", ".hidden", "a b", "a/b", "A" * 64, "é"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ModelError, match="invalid node name"):
        check_name("node", name)


# --- failback --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parsed"), [
    ("never", (Failback.NEVER, None)),
    ("immediate", (Failback.IMMEDIATE, None)),
    ("22-06", (Failback.WINDOW, (22, 6))),
    ("9-17", (Failback.WINDOW, (9, 17))),
    ("09-17", (Failback.WINDOW, (9, 17))),
    ("0-23", (Failback.WINDOW, (0, 23))),
])
def test_failback_parsing(text: str, parsed: tuple[Failback, tuple[int, int] | None]) -> None:
    assert parse_failback(text) == parsed


@pytest.mark.parametrize("text", ["", "always", "Never", "24-01", "22-24", "22-", "-6",
                                  "22:00-06:00", "1-2-3", "123-4"])
def test_bad_failback(text: str) -> None:
    with pytest.raises(ModelError, match="use never, immediate or an hour window HH-HH"):
        parse_failback(text)


# --- dependency order -------------------------------------------------------------------------


def test_dependency_order_puts_dependencies_first() -> None:
    order = dependency_order({"app": ["disk", "name"], "disk": [], "name": [], "web": ["app"]})
    assert order == ["disk", "name", "app", "web"]


def test_dependency_order_diamond_and_ties_by_name() -> None:
    order = dependency_order({"top": ["left", "right"], "left": ["base"], "right": ["base"],
                              "base": [], "alone": []})
    assert order == ["alone", "base", "left", "right", "top"]


def test_dependency_cycle_names_the_cycle() -> None:
    with pytest.raises(ModelError) as info:
        dependency_order({"a": ["b"], "b": ["c"], "c": ["a"], "d": []})
    message = str(info.value)
    assert "dependency cycle: a -> b -> c -> a" in message
    assert "remove one of these dependencies" in message


def test_dependency_cycle_reached_from_outside_names_only_the_cycle() -> None:
    with pytest.raises(ModelError) as info:
        dependency_order({"app": ["x"], "x": ["y"], "y": ["x"]})
    assert "dependency cycle: x -> y -> x;" in str(info.value)


def test_group_resources_in_dependency_order() -> None:
    resources = {
        "app": ResourceSpec("app", "g", "generic-app", depends_on=("disk", "elsewhere")),
        "disk": ResourceSpec("disk", "g", "shared-folder"),
        "other": ResourceSpec("other", "h", "generic-app"),
    }
    snap = Snapshot("c", 2.0, {}, {}, {}, {}, resources, {})
    assert [r.name for r in snap.group_resources("g")] == ["disk", "app"]
    assert snap.group_status_of("g") == GroupStatus("g")
    assert snap.resource_status_of("app") == ResourceStatus("app")
