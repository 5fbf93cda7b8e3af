"""Golden-file tests for ``cluster.policy.decide`` (Pacemaker's cts/scheduler habit).

Each ``tests/policy_cases/*.toml`` is a readable snapshot of the cluster plus the actions one node
should take, in order. The runner builds the snapshot through the real ``from_record()`` parsers,
so the cases also exercise parsing, then compares the formatted actions. Direct tests below
check what no single case can: purity; that nodes looking at the same snapshot never both claim
a group; and, on a small in-memory cluster that applies the actions, that ticks converge.

A case file: ``description``, ``me``, ``now``, ``expected`` (action strings: ``Claim G``,
``HandOver G -> NODE|none``, ``BringOnline R``, ``Restart R``, ``TakeOffline R``, ``Terminate R``,
``SetGroupState G STATE``, ``ClearTarget G``), optional ``sentence_contains`` and ``wake_at``;
tables ``[nodes.N]`` (lease; holder N, epoch 1, acquired_at 0, expires_at now + 2 unless given),
``[node_specs.N]``, ``[groups.G]``, ``[group_status.G]``, ``[resources.R]``,
``[resource_status.R]`` (the store's records) and ``[local.R]`` (this node's monitor: state,
since). Times are seconds; the runner pins TZ=UTC, so failback-window cases name UTC hours.
Run: ``.venv/bin/pytest tests/cluster/test_policy.py -k failback``.
"""

from __future__ import annotations

import math
import os
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster.model import (
    GroupSpec,
    GroupStatus,
    LocalResource,
    ModelError,
    NodeSpec,
    NodeState,
    NodeStatus,
    ResourceSpec,
    ResourceState,
    ResourceStatus,
    Snapshot,
)
from cluster.policy import (
    Action,
    BringOnline,
    Claim,
    ClearTarget,
    Decision,
    HandOver,
    SetGroupState,
    TakeOffline,
    Terminate,
    decide,
    place,
)

CASES_DIR = Path(__file__).resolve().parents[1] / "policy_cases"
CASE_FILES = sorted(CASES_DIR.glob("*.toml"))
MIN_CASES = 40

CASE_KEYS = {"description", "me", "now", "expected", "sentence_contains", "wake_at", "nodes",
             "node_specs", "groups", "group_status", "resources", "resource_status", "local"}
LOCAL_KEYS = {"state", "since", "pid", "error"}
NODE_LEASE_TTL = 2.0  # a node without expires_at in a case is alive for this long after `now`


# --- building a snapshot from a case -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    path: Path
    description: str
    me: str
    now: float
    expected: list[str]
    snapshot: Snapshot
    sentence_contains: list[str]
    wake_at: float | None


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] must be a table of named entries")
    return value


def build_snapshot(data: dict[str, Any], now: float) -> Snapshot:
    """The case's records through the same parsers the node service uses on the store."""
    nodes = {}
    for name, record in _table(data, "nodes").items():
        lease = {"holder": name, "epoch": 1, "acquired_at": 0.0,
                 "expires_at": now + NODE_LEASE_TTL, **record}
        nodes[name] = NodeStatus.from_record(name, lease, version=1)
    local = {}
    for name, record in _table(data, "local").items():
        unknown = set(record) - LOCAL_KEYS
        if unknown:
            raise ValueError(f"[local.{name}]: unknown key(s) {sorted(unknown)}")
        local[name] = LocalResource(name, ResourceState(record["state"]), pid=record.get("pid"),
                                    error=record.get("error"),
                                    since=float(record.get("since", 0.0)))
    return Snapshot(
        cluster="golden",
        lease_ttl=NODE_LEASE_TTL,
        node_specs={n: NodeSpec.from_record(n, v, 1)
                    for n, v in _table(data, "node_specs").items()},
        nodes=nodes,
        groups={n: GroupSpec.from_record(n, v, 1) for n, v in _table(data, "groups").items()},
        group_status={n: GroupStatus.from_record(n, v, 1)
                      for n, v in _table(data, "group_status").items()},
        resources={n: ResourceSpec.from_record(n, v, 1)
                   for n, v in _table(data, "resources").items()},
        resource_status={n: ResourceStatus.from_record(n, v, 1)
                         for n, v in _table(data, "resource_status").items()},
        local=local,
    )


def load_case(path: Path) -> Case:
    data = tomllib.loads(path.read_text())
    unknown = set(data) - CASE_KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown top-level key(s) {sorted(unknown)}")
    missing = {"description", "me", "now", "expected"} - set(data)
    if missing:
        raise ValueError(f"{path.name}: missing key(s) {sorted(missing)}")
    now = float(data["now"])
    wake_at = data.get("wake_at")
    return Case(path=path, description=data["description"], me=data["me"], now=now,
                expected=list(data["expected"]), snapshot=build_snapshot(data, now),
                sentence_contains=list(data.get("sentence_contains", [])),
                wake_at=None if wake_at is None else float(wake_at))


# --- formatting actions ------------------------------------------------------------------------


def format_action(action: Action) -> str:
    match action:
        case Claim():
            return f"Claim {action.group}"
        case HandOver():
            return f"HandOver {action.group} -> {action.to or 'none'}"
        case BringOnline(restart=True):
            return f"Restart {action.resource}"
        case BringOnline():
            return f"BringOnline {action.resource}"
        case TakeOffline():
            return f"TakeOffline {action.resource}"
        case Terminate():
            return f"Terminate {action.resource}"
        case SetGroupState():
            return f"SetGroupState {action.group} {action.state.value}"
        case ClearTarget():
            return f"ClearTarget {action.group}"
    raise AssertionError(f"unknown action {action!r}: teach format_action about it")


def format_actions(decision: Decision) -> list[str]:
    return [format_action(a) for a in decision.actions]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def utc_clock() -> Iterator[None]:
    """Failback windows use the local hour: pin the zone so that case timestamps mean one hour."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


# --- the golden cases --------------------------------------------------------------------------


def test_enough_cases() -> None:
    assert len(CASE_FILES) >= MIN_CASES, f"only {len(CASE_FILES)} cases in {CASES_DIR}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path) -> None:
    check_case(load_case(path))


def check_case(case: Case) -> None:
    path = case.path
    decision = decide(case.snapshot, case.me, case.now)
    actual = format_actions(decision)
    report = (f"\ncase: {path}\n{case.description}\n"
              f"expected: {case.expected}\nactual:   {actual}\n"
              f"sentence: {decision.sentence()}\nwake_at:  {decision.wake_at}")
    assert actual == case.expected, report
    sentence = decision.sentence()
    for part in case.sentence_contains:
        assert part in sentence, f"{part!r} is not in the sentence{report}"
    if case.wake_at is not None:
        assert decision.wake_at == pytest.approx(case.wake_at, abs=1e-6), report


def test_runner_reports_a_mismatch(tmp_path: Path) -> None:
    """The runner itself can fail, and says where and why."""
    source = (CASES_DIR / "failover-node-lease-expired.toml").read_text()
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(source.replace('"Claim notepad"', '"Claim nothing"'))
    with pytest.raises(AssertionError) as info:
        check_case(load_case(wrong))
    report = str(info.value)
    assert str(wrong) in report
    assert "node2, the next preferred owner, claims the group" in report  # the description
    assert "['Claim nothing']" in report and "['Claim notepad']" in report
    assert "claimed notepad (node1's lease expired" in report  # the sentence
    late = tmp_path / "late.toml"
    late.write_text(source.replace("expected = [", "wake_at = 5.0\nexpected = ["))
    with pytest.raises(AssertionError):
        check_case(load_case(late))


def test_runner_refuses_unknown_keys(tmp_path: Path) -> None:
    source = (CASES_DIR / "failover-node-lease-expired.toml").read_text()
    typo = tmp_path / "typo.toml"
    typo.write_text(source.replace("[group_status.notepad]", "[group_statuses.notepad]"))
    with pytest.raises(ValueError, match="unknown top-level key"):
        load_case(typo)
    bad_record = tmp_path / "bad-record.toml"
    bad_record.write_text(source.replace('state = "online"', 'state = "sleeping"'))
    with pytest.raises(ModelError, match="status/groups/notepad: unknown group state"):
        load_case(bad_record)


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_at_most_one_node_claims(path: Path) -> None:
    """Every node sees the same snapshot: a group is claimed by one node at most, and never
    while its owner is alive (otherwise two nodes could race to run it)."""
    case = load_case(path)
    snap = case.snapshot
    claims: dict[str, list[str]] = {}
    for node in snap.nodes:
        for action in decide(snap, node, case.now).actions:
            if isinstance(action, Claim):
                claims.setdefault(action.group, []).append(node)
    for group, claimers in claims.items():
        assert len(claimers) == 1, f"{path.name}: {group} claimed by {claimers}"
        owner = snap.group_status_of(group).owner
        # The one exception: an owner re-claiming its own group under a new lease epoch.
        assert owner is None or claimers == [owner] or \
            snap.node_state(owner, case.now) == NodeState.DOWN, (
            f"{path.name}: {group} claimed by {claimers} while its owner {owner} is alive")


# --- direct tests ------------------------------------------------------------------------------


def test_decide_is_pure_and_deterministic() -> None:
    """decide reads only its arguments: the same snapshot gives the same actions and wake time,
    and the snapshot is left as it was (it is shared with the rest of the tick)."""
    for path in CASE_FILES:
        case = load_case(path)
        before = repr(case.snapshot)
        first = decide(case.snapshot, case.me, case.now)
        second = decide(case.snapshot, case.me, case.now)
        assert first.actions == second.actions, path.name
        assert first.wake_at == second.wake_at, path.name
        assert repr(case.snapshot) == before, f"{path.name}: decide changed the snapshot"


@pytest.mark.parametrize(("stem", "kind", "field", "value"), [
    # a failure hand-over counts against the failover threshold; planned moves do not
    ("restart-past-threshold-hands-over", HandOver, "failure", True),
    ("drain-paused-owner-hands-over", HandOver, "failure", False),
    ("move-target-hand-over", HandOver, "failure", False),
    ("failback-immediate-hand-over", HandOver, "failure", False),
    # a claim after a lease expiry is a failover from the dead owner; a first placement is not
    ("failover-node-lease-expired", Claim, "failover", True),
    ("failover-node-lease-expired", Claim, "previous_owner", "node1"),
    ("place-new-group-first-preferred-owner", Claim, "failover", False),
    # only "left failed" starts the retry period; a group that merely shows failed does not
    ("failover-threshold-reached-left-failed", SetGroupState, "failed", True),
    ("failover-left-failed-when-state-already-failed", SetGroupState, "failed", True),
    ("group-state-failed", SetGroupState, "failed", False),
])
def test_action_flags(stem: str, kind: type[Action], field: str, value: object) -> None:
    """Fields the compact action strings leave out, but the node service records."""
    case = load_case(CASES_DIR / f"{stem}.toml")
    actions = [a for a in decide(case.snapshot, case.me, case.now).actions if isinstance(a, kind)]
    assert len(actions) == 1, actions
    assert getattr(actions[0], field) == value


def test_nothing_to_do_sentence() -> None:
    assert Decision().sentence() == "nothing to do"
    assert math.isinf(Decision().wake_at)


def test_wake_at_is_the_earliest_reason() -> None:
    decision = Decision()
    decision.wake(10.0)
    decision.wake(12.0)
    decision.wake(9.5)
    assert decision.wake_at == 9.5


def test_failback_window_uses_the_local_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same instant is inside a 22-06 window in UTC (03:30) and outside it in UTC+10
    (13:30): the window follows the cluster's local time, as MSCS's does."""
    case = load_case(CASES_DIR / "failback-window-overnight-inside.toml")
    assert format_actions(decide(case.snapshot, case.me, case.now)) == ["TakeOffline app"]
    monkeypatch.setenv("TZ", "Etc/GMT-10")  # POSIX sign: ten hours east of UTC
    time.tzset()
    assert format_actions(decide(case.snapshot, case.me, case.now)) == []


def test_place_direct() -> None:
    case = load_case(CASES_DIR / "place-least-loaded-without-preference.toml")
    snap = case.snapshot
    assert place(snap, "notepad", case.now) == "node3"
    assert place(snap, "notepad", case.now, exclude=["node3"]) == "node2"
    # a placement planned earlier in the tick counts instead of the recorded owner: with db on
    # node3, every node has one group and the tie goes to node1
    assert place(snap, "notepad", case.now, planned={"db": "node3"}) == "node1"
    assert place(snap, "notepad", case.now, exclude=["node1", "node2", "node3"]) is None


# --- a small in-memory cluster: every node runs decide, a fake executor applies the actions -----


class Cluster:
    """Applies decide's actions the way the node service does, on records held in memory, with
    monitors that succeed at once. Enough to watch decisions converge over several ticks."""

    def __init__(self, nodes: list[str], groups: dict[str, dict[str, Any]],
                 resources: dict[str, dict[str, Any]], now: float = 1000.0) -> None:
        self.now = now
        self.leases = {n: {"holder": n, "epoch": 1, "acquired_at": 0.0} for n in nodes}
        self.node_specs: dict[str, dict[str, Any]] = {}
        self.groups = groups
        self.group_status: dict[str, dict[str, Any]] = {}
        self.resources = resources
        self.resource_status: dict[str, dict[str, Any]] = {}
        self.local: dict[str, dict[str, LocalResource]] = {n: {} for n in nodes}
        self.dead: set[str] = set()
        self.log: list[str] = []

    def snapshot(self, me: str) -> Snapshot:
        leases = {n: {**v, "expires_at": self.now - 1 if n in self.dead else self.now + 2}
                  for n, v in self.leases.items()}
        return Snapshot(
            cluster="sim", lease_ttl=2.0,
            node_specs={n: NodeSpec.from_record(n, v) for n, v in self.node_specs.items()},
            nodes={n: NodeStatus.from_record(n, v) for n, v in leases.items()},
            groups={n: GroupSpec.from_record(n, v) for n, v in self.groups.items()},
            group_status={n: GroupStatus.from_record(n, v)
                          for n, v in self.group_status.items()},
            resources={n: ResourceSpec.from_record(n, v) for n, v in self.resources.items()},
            resource_status={n: ResourceStatus.from_record(n, v)
                             for n, v in self.resource_status.items()},
            local=dict(self.local[me]))

    def fail(self, node: str, resource: str) -> None:
        """The monitor on ``node`` reports ``resource`` failed; the service records the time."""
        self.local[node][resource] = LocalResource(resource, ResourceState.FAILED,
                                                   since=self.now)
        status = self.resource_status.setdefault(resource, {})
        status["failures"] = [*status.get("failures", []), self.now]

    def apply(self, me: str, action: Action) -> None:
        status = self.group_status.setdefault(action.group, {}) if action.group else {}
        match action:
            case Claim():
                if action.failover:
                    status.setdefault("failovers", []).append(
                        {"time": self.now, "from": action.previous_owner, "to": me,
                         "failure": True})
                status.update(owner=me, owner_epoch=status.get("owner_epoch", 0) + 1,
                              state="pending", target=None, failed_at=None, claimed_at=self.now)
                for name, spec in self.resources.items():  # the service resets restart counts
                    if spec["group"] == action.group:
                        self.resource_status[name] = {"failures": []}
            case HandOver():  # like the service: the resources' failure records are kept
                status.setdefault("failovers", []).append(
                    {"time": self.now, "from": me, "to": action.to, "failure": action.failure})
                status.update(owner=action.to, owner_epoch=status.get("owner_epoch", 0) + 1,
                              state="pending" if action.to else "offline", target=None,
                              claimed_at=self.now)
            case SetGroupState():
                status["state"] = action.state.value
                if action.failed:
                    status["failed_at"] = self.now
            case ClearTarget():
                status["target"] = None
            case BringOnline():
                self.local[me][action.resource] = LocalResource(
                    action.resource, ResourceState.ONLINE, since=self.now)
            case TakeOffline() | Terminate():
                self.local[me][action.resource] = LocalResource(
                    action.resource, ResourceState.OFFLINE, since=self.now)

    def settle(self, max_rounds: int = 30) -> None:
        """Tick every live node in turn, 0.1 s apart, until a whole round changes nothing."""
        for _ in range(max_rounds):
            acted = False
            for node in sorted(self.leases):
                if node in self.dead:
                    continue
                decision = decide(self.snapshot(node), node, self.now)
                for action in decision.actions:
                    self.log.append(f"{node}: {format_action(action)}")
                    self.apply(node, action)
                acted = acted or bool(decision.actions)
                self.check_one_runner()
                self.now += 0.1
            if not acted:
                return
        raise AssertionError("no convergence:\n" + "\n".join(self.log[-30:]))

    def check_one_runner(self) -> None:
        for group in self.groups:
            runners = {node for node, local in self.local.items() if node not in self.dead
                       for name, res in local.items()
                       if self.resources.get(name, {}).get("group") == group
                       and res.state in (ResourceState.ONLINE, ResourceState.ONLINE_PENDING)}
            assert len(runners) <= 1, f"{group} runs on {sorted(runners)}:\n" + "\n".join(
                self.log[-20:])

    def running(self, node: str) -> set[str]:
        return {n for n, r in self.local[node].items() if r.state == ResourceState.ONLINE}


def notepad_cluster(**group: Any) -> Cluster:
    return Cluster(
        ["node1", "node2", "node3"],
        groups={"notepad": {"preferred_owners": ["node1", "node2", "node3"], **group}},
        resources={"disk": {"group": "notepad", "type": "shared-folder"},
                   "name": {"group": "notepad", "type": "network-name"},
                   "app": {"group": "notepad", "type": "generic-app",
                           "depends_on": ["disk", "name"]}})


def test_sim_new_group_comes_online_on_the_preferred_owner() -> None:
    sim = notepad_cluster()
    sim.settle()
    assert sim.group_status["notepad"]["owner"] == "node1"
    assert sim.group_status["notepad"]["state"] == "online"
    assert sim.running("node1") == {"disk", "name", "app"}
    started = [line for line in sim.log if "BringOnline" in line]
    assert started.index("node1: BringOnline app") == 2, started  # after both dependencies


def test_sim_drain_moves_the_group_and_resume_does_not_fail_back() -> None:
    sim = notepad_cluster()
    sim.settle()
    sim.node_specs["node1"] = {"paused": True}
    sim.settle()
    assert sim.group_status["notepad"]["owner"] == "node2"
    assert sim.group_status["notepad"]["state"] == "online"
    assert sim.running("node1") == set()
    assert sim.running("node2") == {"disk", "name", "app"}
    offline = [line for line in sim.log if "TakeOffline" in line]
    assert offline[0] == "node1: TakeOffline app", offline
    sim.node_specs["node1"] = {"paused": False}
    sim.settle()
    assert sim.group_status["notepad"]["owner"] == "node2"  # failback never (the default)


def test_sim_node_crash_then_failback_immediate() -> None:
    sim = notepad_cluster(failback="immediate")
    sim.settle()
    sim.dead.add("node1")
    sim.local["node1"] = {}
    sim.settle()
    assert sim.group_status["notepad"]["owner"] == "node2"
    assert sim.running("node2") == {"disk", "name", "app"}
    sim.dead.discard("node1")
    sim.leases["node1"]["acquired_at"] = sim.now  # node1 rejoins
    sim.settle()
    assert sim.group_status["notepad"]["owner"] == "node1"
    assert sim.running("node1") == {"disk", "name", "app"}
    assert sim.running("node2") == set()


def test_sim_restarts_then_fails_over_then_left_failed() -> None:
    """Three restarts per node, then a failover; the next node starts counting afresh; after
    two failovers (threshold nodes - 1) the group is left failed and tried again an hour later."""
    sim = notepad_cluster()
    sim.settle()
    for expected_owner in ("node1", "node1", "node1", "node1", "node2", "node2", "node2",
                           "node2", "node3", "node3", "node3", "node3"):
        owner = sim.group_status["notepad"]["owner"]
        assert owner == expected_owner, sim.log[-10:]
        sim.now += 1.0  # past the restart delay
        sim.fail(owner, "app")
        sim.settle()
    status = sim.group_status["notepad"]
    assert status["owner"] == "node3"
    assert status["state"] == "failed"
    assert sim.running("node3") == set()
    sim.now = status["failed_at"] + 3600.0  # RetryPeriodOnFailure
    sim.settle()
    assert sim.group_status["notepad"]["state"] == "online"
    assert sim.running("node3") == {"disk", "name", "app"}


def test_sim_two_groups_with_anti_affinity_survive_a_crash_apart() -> None:
    sim = Cluster(["node1", "node2", "node3"],
                  groups={"sql1": {"anti_affinity": "sql", "preferred_owners": ["node1"]},
                          "sql2": {"anti_affinity": "sql", "preferred_owners": ["node1"]}},
                  resources={"sql1-app": {"group": "sql1", "type": "generic-app"},
                             "sql2-app": {"group": "sql2", "type": "generic-app"}})
    sim.settle()
    owners = {g: s["owner"] for g, s in sim.group_status.items()}
    assert owners == {"sql1": "node1", "sql2": "node2"}
    sim.dead.add("node1")
    sim.local["node1"] = {}
    sim.settle()
    owners = {g: s["owner"] for g, s in sim.group_status.items()}
    assert owners["sql2"] == "node2" and owners["sql1"] == "node3", owners
