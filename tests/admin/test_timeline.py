"""The failover timeline as a pure function over events, with the node service's own sentences."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.admin.timeline import LeaseSeen, build_timelines, event_time, resource_state

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def ev(seq: int, at: float, kind: str, message: str, **where: str) -> dict[str, Any]:
    return {"seq": seq, "time": datetime.fromtimestamp(T0 + at, UTC).isoformat(
        timespec="milliseconds"), "kind": kind, "message": message, **where}


def online_on(seq: int, at: float, node: str, resource: str = "g-app",
              group: str = "g") -> list[dict[str, Any]]:
    return [ev(seq, at, "resource-state", f"{resource} is online-pending on {node}",
               node=node, group=group, resource=resource),
            ev(seq + 1, at + 0.2, "resource-state", f"{resource} is online on {node} (pid 42)",
               node=node, group=group, resource=resource)]


def names(timeline: Any) -> list[str]:
    return [p.name for p in timeline.phases]


def durations(timeline: Any) -> list[float | None]:
    return [None if p.duration is None else round(p.duration, 3) for p in timeline.phases]


def test_event_time_and_resource_state_parse_the_stores_shapes() -> None:
    event = ev(1, 1.5, "resource-state", "g-app is online-pending on node2", node="node2")
    assert event_time(event) == pytest.approx(T0 + 1.5)
    assert resource_state(event) == ("g-app", "online-pending", "node2")
    assert resource_state(ev(2, 0, "resource-state", "g-app is online on node2 (pid 7)")) == \
        ("g-app", "online", "node2")
    assert resource_state(ev(3, 0, "group-state", "g is online on node2")) is None
    assert event_time({"time": "not a time"}) == 0.0


def test_node_death_phases_with_the_lease_seen() -> None:
    events = [
        ev(1, 0.0, "group-claimed", "node1 claimed g (placing g: node1 is preferred owner #1)",
           node="node1", group="g"),
        *online_on(2, 0.1, "node1"),
        ev(4, 12.05, "group-failover", "node1's lease expired; g is failing over to node2",
           node="node2", group="g"),
        *online_on(5, 12.15, "node2"),
    ]
    lease = LeaseSeen("node1", 1, renewed_at=T0 + 10.0, expires_at=T0 + 12.0)
    [timeline] = build_timelines(events, {"node1": [lease]}, {"g": ["g-app"]})
    assert (timeline.group, timeline.kind, timeline.from_node, timeline.to_node) == \
        ("g", "failover", "node1", "node2")
    assert timeline.started_at == T0 + 10.0
    assert "node1's last lease renewal" in timeline.start_label
    assert names(timeline) == ["lease expired", "claimed by node2", "preparing on node2",
                               "g-app online"]
    assert durations(timeline) == [2.0, 0.05, 0.1, 0.2]
    assert not timeline.in_progress
    assert timeline.total() == pytest.approx(2.35, abs=1e-3)


def test_node_death_without_the_lease_starts_at_the_claim() -> None:
    events = [ev(1, 5.0, "group-failover", "node1's lease expired; g is failing over to node3",
                 node="node3", group="g"), *online_on(2, 5.1, "node3")]
    # A lease of node1 that expired after the claim belongs to a later life of node1.
    later = LeaseSeen("node1", 2, renewed_at=T0 + 8, expires_at=T0 + 10)
    [timeline] = build_timelines(events, {"node1": [later]})
    assert timeline.started_at == T0 + 5.0
    assert "not seen" in timeline.start_label
    assert names(timeline) == ["claimed by node3", "preparing on node3", "g-app online"]


def test_resource_failure_past_the_threshold_hands_over() -> None:
    events = [
        ev(1, 0.0, "resource-failed", "g-app failed on node1: killed by signal SIGKILL",
           node="node1", group="g", resource="g-app"),  # an earlier, restarted failure
        ev(2, 0.5, "resource-restart", "restarting g-app on node1 (failure 1 of 1 allowed)",
           node="node1", group="g", resource="g-app"),
        *online_on(3, 0.6, "node1"),
        ev(5, 3.0, "resource-failed", "g-app failed on node1: killed by signal SIGKILL",
           node="node1", group="g", resource="g-app"),
        ev(6, 3.1, "resource-state", "g-app is offline on node1", node="node1", group="g",
           resource="g-app"),
        ev(7, 3.2, "group-failover", "g moved from node1 to node2 (g-app failed 2 times in "
           "900 s; g is failing over to node2)", node="node1", group="g"),
        *online_on(8, 3.3, "node2"),
    ]
    [timeline] = build_timelines(events)
    assert timeline.kind == "failover" and timeline.to_node == "node2"
    assert timeline.started_at == T0 + 3.0  # the failure that moved it, not the earlier one
    assert timeline.start_label.startswith("failure seen: g-app failed on node1")
    assert names(timeline) == ["stopped on node1", "claimed by node2", "preparing on node2",
                               "g-app online"]
    assert durations(timeline) == [0.1, 0.1, 0.1, 0.2]


def test_planned_move_starts_at_the_request() -> None:
    events = [
        ev(1, 0.0, "group-move-requested", "move of g to node3 requested", group="g"),
        ev(2, 0.05, "resource-state", "g-app is offline-pending on node1", node="node1",
           group="g", resource="g-app"),
        ev(3, 0.3, "resource-state", "g-app is offline on node1", node="node1", group="g",
           resource="g-app"),
        ev(4, 0.35, "group-moved", "g moved from node1 to node3 (move to node3 requested)",
           node="node1", group="g"),
        *online_on(5, 0.4, "node3"),
    ]
    [timeline] = build_timelines(events)
    assert (timeline.kind, timeline.from_node, timeline.to_node) == ("move", "node1", "node3")
    assert timeline.start_label == "move of g to node3 requested"
    assert durations(timeline) == [0.3, 0.05, 0.05, 0.2]


def test_release_then_claim_is_one_move() -> None:
    events = [
        ev(1, 0.0, "node-paused", "node1 paused: its groups move away", node="node1"),
        ev(2, 0.2, "group-moved", "node1 released g (node1 is draining)", node="node1",
           group="g"),
        ev(3, 0.6, "group-claimed", "node2 claimed g (placing g: node2 is preferred owner #2)",
           node="node2", group="g"),
        *online_on(4, 0.7, "node2"),
    ]
    [timeline] = build_timelines(events)
    assert (timeline.from_node, timeline.to_node) == ("node1", "node2")
    assert timeline.start_label.startswith("node1 paused")
    assert timeline.claimed_at == T0 + 0.6


def test_a_claim_that_is_a_first_placement_is_no_timeline() -> None:
    events = [ev(1, 0.0, "group-claimed", "node1 claimed g (placing g: node1 is preferred "
                 "owner #1)", node="node1", group="g"), *online_on(2, 0.1, "node1")]
    assert build_timelines(events) == []


def test_open_phases_in_progress_then_superseded() -> None:
    first = ev(1, 0.0, "group-failover", "node1's lease expired; g is failing over to node2",
               node="node2", group="g")
    [running] = build_timelines([first], resources={"g": ["g-disk", "g-app"]})
    assert running.in_progress and running.ended_at is None
    assert names(running)[-2:] == ["g-disk online", "g-app online"]
    assert running.total(now=T0 + 4.0) == pytest.approx(4.0)
    second = ev(2, 9.0, "group-failover", "node2's lease expired; g is failing over to node3",
                node="node3", group="g")
    newest, older = build_timelines([first, second], resources={"g": ["g-app"]})
    assert (newest.to_node, older.to_node) == ("node3", "node2")  # newest first
    assert older.superseded and not older.in_progress
    assert older.phases[-1].end is None  # never came online there


def test_groups_are_kept_apart() -> None:
    events = [
        ev(1, 0.0, "group-failover", "node1's lease expired; a is failing over to node2",
           node="node2", group="a"),
        *online_on(2, 0.1, "node2", resource="b-app", group="b"),
        *online_on(4, 0.1, "node2", resource="a-app", group="a"),
    ]
    [timeline] = build_timelines(events)
    assert names(timeline) == ["claimed by node2", "preparing on node2", "a-app online"]
