"""Real nodes, real monitors, a real app; failures made with real signals. In every test the
independent checker samples all processes and fails the test on two live app instances."""

from __future__ import annotations

import os
import signal
import time

import psutil

from tests.helpers.wait import wait_until
from tests.integration.harness import Cluster, hacluster

NODES = ("node1", "node2", "node3")


def test_group_comes_online_on_its_preferred_owner(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group(preferred="node2,node1")
    group = cluster.wait_online("g", owner="node2")
    pid = group["resources"][0]["pid"]
    assert cluster.app_pids() == [pid]
    assert cluster.app_owner() == "node2"
    assert any("claimed g" in e["message"] for e in cluster.events())
    cluster.assert_never_two()


def test_app_killed_is_restarted_then_fails_over_past_threshold(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group(extra_resource=("--restart-threshold", "2"))
    group = cluster.wait_online("g", owner="node1")
    for restart in range(2):
        old = group["resources"][0]["pid"]
        os.kill(old, signal.SIGKILL)
        killed = time.monotonic()
        group = cluster.wait_group(
            "g", lambda g, old=old: g["resources"][0]["state"] == "online"
            and g["resources"][0]["pid"] not in (None, old), timeout=5,
            message=f"local restart {restart + 1}")
        assert time.monotonic() - killed < 5  # generous: catches hangs; speed is in bench/
        assert group["owner"] == "node1"
        assert cluster.app_owner() == "node1"
    # The third failure within the period is past the threshold of 2: the group fails over.
    os.kill(group["resources"][0]["pid"], signal.SIGKILL)
    group = cluster.wait_online("g", owner="node2")
    assert cluster.app_owner() == "node2"
    messages = [e["message"] for e in cluster.events()]
    assert any("failing over to node2" in m for m in messages), messages
    cluster.assert_never_two()


def test_owner_node_crash_fails_over_to_a_survivor(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    cluster.wait_online("g", owner="node1")
    cluster.kill_node("node1")
    group = cluster.wait_online("g", owner="node2", timeout=15)
    assert cluster.app_pids() == [group["resources"][0]["pid"]]
    assert any("node1's lease expired" in e["message"] for e in cluster.events())
    cluster.assert_never_two()


def test_graceful_stop_moves_the_group_at_once(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    cluster.wait_online("g", owner="node1")
    hacluster(cluster.store, "node", "stop", "node1")
    status = cluster.status()
    assert next(n for n in status["nodes"] if n["name"] == "node1")["state"] == "down"
    # Released, not expired: node2 had it before node1's lease could have run out.
    cluster.wait_online("g", owner="node2", timeout=cluster.lease_ttl)
    assert not psutil.pid_exists(cluster.nodes["node1"].pid) or \
        cluster.nodes["node1"].poll() is not None
    cluster.assert_never_two()


def test_move_to_a_named_node_and_pause_drains(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    cluster.wait_online("g", owner="node1")
    out = hacluster(cluster.store, "group", "move", "g", "--to", "node3", "--wait", "10")
    assert "online on node3" in out.stdout
    assert cluster.app_owner() == "node3"
    hacluster(cluster.store, "node", "pause", "node3")
    cluster.wait_online("g", owner="node1")
    assert next(n for n in cluster.status()["nodes"] if n["name"] == "node3")["state"] == \
        "paused"
    hacluster(cluster.store, "node", "resume", "node3")
    wait_until(lambda: cluster.node_state("node3") == "up", message="node3 resumed")
    cluster.assert_never_two()


def test_failback_immediate_returns_to_the_preferred_node(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group(extra_group=("--failback", "immediate"))
    cluster.wait_online("g", owner="node1")
    cluster.kill_node("node1")
    cluster.wait_online("g", owner="node2", timeout=15)
    cluster.start_node("node1")
    cluster.wait_online("g", owner="node1", timeout=15)
    assert any("failback" in e["message"] for e in cluster.events())
    cluster.assert_never_two()


def test_failback_never_leaves_the_group_where_it_is(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    cluster.wait_online("g", owner="node1")
    cluster.kill_node("node1")
    cluster.wait_online("g", owner="node2", timeout=15)
    cluster.start_node("node1")
    # node2 decides right after each lease renewal: once it has renewed after node1 came up,
    # it has seen node1 back and chosen not to fail back.
    node1_up = time.time()
    store = cluster.open()
    wait_until(lambda: store.get("status/nodes/node2").value["last_seen"] > node1_up + 0.6,
               message="node2 to tick after node1 came back")
    group = cluster.group("g")
    assert group["owner"] == "node2" and cluster.app_owner() == "node2"
    cluster.assert_never_two()


def test_monitor_killed_alone(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    group = cluster.wait_online("g", owner="node1")
    old = group["resources"][0]["pid"]
    service = psutil.Process(cluster.nodes["node1"].pid)
    monitor = next(p for p in service.children() if "cluster.monitor" in " ".join(p.cmdline()))
    monitor.kill()
    # The service kills what the dead monitor hosted and restarts it under a new monitor.
    wait_until(lambda: not psutil.pid_exists(old) or
               psutil.Process(old).status() == psutil.STATUS_ZOMBIE, message="old app gone")
    group = cluster.wait_group("g", lambda g: g["resources"][0]["state"] == "online"
                               and g["resources"][0]["pid"] not in (None, old))
    assert group["owner"] == "node1"
    cluster.assert_never_two()


def test_service_killed_alone(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    group = cluster.wait_online("g", owner="node1")
    old = group["resources"][0]["pid"]
    os.kill(cluster.nodes["node1"].pid, signal.SIGKILL)
    # Its monitor terminates everything it hosts at once, long before the lease could expire.
    wait_until(lambda: old not in cluster.app_pids(), timeout=cluster.lease_ttl,
               message="the orphaned monitor to stop the app")
    cluster.wait_online("g", owner="node2", timeout=15)
    cluster.assert_never_two()


def test_sigstopped_node_fences_itself_and_spares_the_new_owner(cluster: Cluster) -> None:
    cluster.start_nodes(*NODES)
    cluster.create_app_group()
    group = cluster.wait_online("g", owner="node1")
    old = group["resources"][0]["pid"]
    cluster.signal_service("node1", signal.SIGSTOP)
    try:
        # The monitor's own deadline stops the app before node1's lease can expire.
        wait_until(lambda: old not in cluster.app_pids(), timeout=cluster.lease_ttl,
                   message="the monitor to fence the app of a frozen service")
        group = cluster.wait_online("g", owner="node2", timeout=15)
    finally:
        cluster.signal_service("node1", signal.SIGCONT)
    new_pid = group["resources"][0]["pid"]
    wait_until(lambda: cluster.node_state("node1") == "up", message="node1 back up")
    assert cluster.app_pids() == [new_pid]
    assert cluster.group("g")["owner"] == "node2"
    cluster.assert_never_two()


def test_separate_monitor_isolates_a_resource(cluster: Cluster) -> None:
    cluster.start_nodes("node1", "node2")
    cluster.create_app_group(preferred="node1,node2")
    hacluster(cluster.store, "resource", "create", "g-other", "--group", "g", "--type",
              "generic-app", "--prop", "command=sleep 100001", "--separate-monitor")
    group = cluster.wait_online("g", owner="node1")
    pids = {r["name"]: r["pid"] for r in group["resources"]}
    service = psutil.Process(cluster.nodes["node1"].pid)
    monitors = [p for p in service.children() if "cluster.monitor" in " ".join(p.cmdline())]
    assert len(monitors) == 2
    own = next(m for m in monitors if pids["g-other"] in [c.pid for c in m.children()])
    own.kill()
    # Only the resource of the dead monitor fails and restarts; the shared monitor's app lives on.
    group = cluster.wait_group("g", lambda g: all(r["state"] == "online" for r in g["resources"])
                               and {r["name"]: r["pid"] for r in g["resources"]}["g-other"]
                               not in (None, pids["g-other"]))
    assert {r["name"]: r["pid"] for r in group["resources"]}["g-app"] == pids["g-app"]
    assert group["owner"] == "node1"
    cluster.assert_never_two()
