"""A hand-made store for the dashboard's tests: fixed times, pids and epochs, so that a screen
drawn from it is the same on every run (snapshot tests), and no process is needed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cluster.admin.app import AdminApp
from cluster.admin.model import Item
from cluster.admin.widgets import ClusterTree
from shared_store import Store, init_store

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the dashboard's clock in these tests
FAR = 4_000_000_000.0  # a lease still valid by the real clock too (api.move_group reads it)


def fixed_clock() -> float:
    return NOW


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def node_record(name: str, epoch: int, expires_at: float, last_seen: float) -> dict[str, Any]:
    return {"holder": name, "epoch": epoch, "expires_at": expires_at, "acquired_at": NOW - 600,
            "address": "127.0.0.1", "pid": 100 + epoch, "joining": False, "stopping": False,
            "local_dir": f"/srv/{name}", "last_seen": last_seen}


def resource_spec(group: str, command: str, **props: Any) -> dict[str, Any]:
    return {"group": group, "type": "generic-app", "properties": {
        "command": command.split(), "cwd": None, "env": {}, "stop_timeout": 5.0,
        "console": False, "checkpoints": [], **props}, "depends_on": [], "policy": {},
        "desired": "online"}


def group_spec(*preferred: str, desired: str = "online") -> dict[str, Any]:
    return {"preferred_owners": list(preferred), "possible_owners": [], "failback": "never",
            "failover_threshold": None, "failover_period": 21600.0, "anti_affinity": None,
            "desired": desired}


def make_store(root: Path) -> Store:
    """node1 crashed 30 s ago and g failed over to node2; web moved to node3 before that;
    batch is offline."""
    store = init_store(root, name="workshop", settings={"lease_ttl": 2.0})
    store.put("status/nodes/node1", node_record("node1", 1, NOW - 30.0, NOW - 32.0))
    store.put("status/nodes/node2", node_record("node2", 1, FAR, NOW))
    store.put("status/nodes/node3", node_record("node3", 1, FAR, NOW))
    store.put("spec/groups/g", group_spec("node1", "node2"))
    store.put("spec/groups/web", group_spec("node1", "node3"))
    store.put("spec/groups/batch", group_spec(desired="offline"))
    store.put("spec/resources/g-app", resource_spec(
        "g", "sleep 1000", checkpoints=["{local}/state/app"]))
    store.put("spec/resources/web-app", resource_spec("web", "python3 -m http.server 8080"))
    store.put("spec/resources/batch-job", resource_spec("batch", "sleep 5"))
    store.put("status/groups/g", {
        "owner": "node2", "owner_epoch": 2, "state": "online", "target": None,
        "failovers": [{"time": NOW - 29.95, "from": "node1", "to": "node2", "reason":
                       "node1's lease expired; g is failing over to node2", "failure": True}],
        "failed_at": None, "claimed_at": NOW - 29.95})
    store.put("status/groups/web", {
        "owner": "node3", "owner_epoch": 2, "state": "online", "target": None,
        "failovers": [{"time": NOW - 89.6, "from": "node1", "to": "node3",
                       "reason": "move to node3 requested", "failure": False}],
        "failed_at": None, "claimed_at": NOW - 89.6})
    store.put("status/resources/g-app", {
        "state": "online", "node": "node2", "owner_epoch": 2, "pid": 4242, "group": "g",
        "failures": [], "last_error": None,
        "details": {"command": "sleep 1000", "console": False,
                    "started_at": iso(NOW - 29.6)[:19] + "+00:00"}})
    store.put("status/resources/web-app", {
        "state": "online", "node": "node3", "owner_epoch": 2, "pid": 5151, "group": "web",
        "failures": [NOW - 300.0], "last_error": "exited with code 1",
        "details": {"command": "python3 -m http.server 8080", "console": False,
                    "started_at": iso(NOW - 89.4)[:19] + "+00:00"}})
    events = [
        (NOW - 200.0, "node-up", "node1 joined the cluster (epoch 1)", {"node": "node1"}),
        (NOW - 199.9, "node-up", "node2 joined the cluster (epoch 1)", {"node": "node2"}),
        (NOW - 199.8, "node-up", "node3 joined the cluster (epoch 1)", {"node": "node3"}),
        (NOW - 150.0, "group-claimed", "node1 claimed g (placing g: node1 is preferred owner "
         "#1)", {"node": "node1", "group": "g"}),
        (NOW - 149.9, "resource-state", "g-app is online on node1 (pid 4000)",
         {"node": "node1", "group": "g", "resource": "g-app"}),
        (NOW - 90.0, "group-move-requested", "move of web to node3 requested",
         {"group": "web"}),
        (NOW - 89.95, "resource-state", "web-app is offline-pending on node1",
         {"node": "node1", "group": "web", "resource": "web-app"}),
        (NOW - 89.7, "resource-state", "web-app is offline on node1",
         {"node": "node1", "group": "web", "resource": "web-app"}),
        (NOW - 89.6, "group-moved", "web moved from node1 to node3 (move to node3 requested)",
         {"node": "node1", "group": "web"}),
        (NOW - 89.5, "resource-state", "web-app is online-pending on node3",
         {"node": "node3", "group": "web", "resource": "web-app"}),
        (NOW - 89.4, "resource-state", "web-app is online on node3 (pid 5151)",
         {"node": "node3", "group": "web", "resource": "web-app"}),
        (NOW - 29.95, "group-failover", "node1's lease expired; g is failing over to node2",
         {"node": "node2", "group": "g"}),
        (NOW - 29.9, "resource-state", "g-app is online-pending on node2",
         {"node": "node2", "group": "g", "resource": "g-app"}),
        (NOW - 29.6, "resource-state", "g-app is online on node2 (pid 4242)",
         {"node": "node2", "group": "g", "resource": "g-app"}),
        (NOW - 29.55, "group-state", "g is online on node2", {"node": "node2", "group": "g"}),
    ]
    for at, kind, message, where in events:
        store.append_event({"time": iso(at), "kind": kind, "message": message, **where})
    return store


@pytest.fixture
def crafted_store(tmp_path: Path) -> Iterator[Store]:
    store = make_store(tmp_path / "store")
    try:
        yield store
    finally:
        store.close()


# --- reading the dashboard, for the tests ---

def tree_label(app: AdminApp, item: Item) -> str:
    tree = app.query_one(ClusterTree)

    def find(node: Any) -> Any:
        if node.data == item:
            return node
        return next((f for c in node.children if (f := find(c)) is not None), None)

    found = find(tree.root)
    return "" if found is None else str(found.label)


def notifications(app: AdminApp) -> list[str]:
    return [n.message for n in app._notifications]
