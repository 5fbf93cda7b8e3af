"""The dashboard under Pilot against a real 3-node cluster: real node processes, a real app,
failures made through the dashboard's own actions. Each action must do what the CLI does, so
each test checks the cluster's processes and store afterwards, as test_failover.py does for
the CLI. One cluster serves the module; every test first brings it back to health."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import psutil
import pytest
from textual.widgets import OptionList

from cluster import api
from cluster.admin.app import AdminApp
from cluster.admin.dialogs import ConfirmDialog, MoveDialog
from cluster.admin.model import Item
from cluster.admin.screens import TimelineScreen
from cluster.admin.widgets import ClusterTree, TimelineView
from shared_store import open_store
from tests.admin.conftest import notifications, tree_label
from tests.helpers.procs import pid_alive
from tests.helpers.wait import wait_until_async
from tests.integration.harness import Cluster

NODES = ("node1", "node2", "node3")
SIZE = (140, 45)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("live"))
    # The independent checker samples every process of the machine; 10 Hz instead of 50 Hz
    # leaves the dashboard, which runs in this process, its share of the GIL on 2 cores.
    cluster.checker.interval = 0.1
    try:
        cluster.start_nodes(*NODES)
        cluster.create_app_group()
        cluster.wait_online("g")
        yield cluster
    except BaseException:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.close()


def healthy(cluster: Cluster) -> dict[str, Any]:
    """Every node running, up and resumed, g online: the state each test starts from."""
    store = cluster.open()
    for name in NODES:
        if store.get(f"spec/nodes/{name}") is not None:
            store.put(f"spec/nodes/{name}", {"paused": False})
    if store.get("spec/groups/g").value["desired"] != "online":
        api.set_group_desired(store, "g", "online")
    if store.get("spec/resources/g-app").value["desired"] != "online":
        api.set_resource_desired(store, "g-app", "online")
    for name, proc in cluster.nodes.items():
        if proc.poll() is not None:
            cluster.start_node(name)
    for name in NODES:
        if cluster.node_state(name) != "up":
            cluster.start_node(name)
    return cluster.wait_online("g")



@asynccontextmanager
async def dashboard(cluster: Cluster) -> AsyncIterator[tuple[AdminApp, Any]]:
    store = open_store(cluster.store)
    app = AdminApp(store)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until_async(lambda: "g  online" in tree_label(app, Item("group", "g")),
                                   timeout=10, message="the dashboard to show g online")
            yield app, pilot
    finally:
        store.close()


async def select(app: AdminApp, item: Item) -> None:
    assert app.query_one(ClusterTree).select_item(item), item
    await wait_until_async(lambda: app.selected == item, message=f"{item} selected")


async def confirm(app: AdminApp, pilot: Any, key: str) -> None:
    """Press an action's key and accept its dialog with the focused button (enter)."""
    await pilot.press(key)
    await wait_until_async(lambda: isinstance(app.screen, ConfirmDialog),
                           message=f"the dialog of {key!r}")
    await pilot.press("enter")
    await wait_until_async(lambda: not isinstance(app.screen, ConfirmDialog),
                           message="the dialog to close")


async def test_crash_fails_over_and_the_tree_follows_within_a_second(live: Cluster) -> None:
    owner = healthy(live)["owner"]
    tree = psutil.Process(live.nodes[owner].pid)
    victims = [tree, *tree.children(recursive=True)]
    store = live.open()
    async with dashboard(live) as (app, pilot):
        await select(app, Item("node", owner))
        await confirm(app, pilot, "k")
        # What `hacluster node kill` does: the node's whole process tree is gone at once.
        await wait_until_async(lambda: not any(pid_alive(p.pid) for p in victims), timeout=5,
                               message=f"{owner}'s process tree to be killed")
        await wait_until_async(lambda: any(m.startswith(f"killed node {owner}: ")
                                           for m in notifications(app)), message="the answer")

        def claimed() -> dict[str, Any] | None:
            record = store.get("status/groups/g")
            value = record.value if record else {}
            return value if value.get("owner") not in (None, owner) else None

        record = await wait_until_async(claimed, timeout=15, message="a survivor to claim g")
        new_owner = record["owner"]
        await wait_until_async(lambda: f"on {new_owner}" in tree_label(app, Item("group", "g")),
                               timeout=5, interval=0.005, message="the tree to show the claim")
        seen_at = time.time()
        # claimed_at is the claimer's clock just before it wrote the record.
        assert seen_at - record["claimed_at"] < 1.0
        await wait_until_async(lambda: "down" in tree_label(app, Item("node", owner)),
                               message=f"{owner} down in the tree")
        await wait_until_async(lambda: "g-app  online  pid" in
                               tree_label(app, Item("resource", "g-app")) and
                               f"on {new_owner}" in tree_label(app, Item("group", "g")),
                               timeout=10, message="g-app online again")

        # The timeline shows the phases of this failover.
        await pilot.press("t")
        await wait_until_async(lambda: isinstance(app.screen, TimelineScreen),
                               message="the timeline")
        await wait_until_async(lambda: app.timelines() and not app.timelines()[0].in_progress,
                               message="the failover's phases to end")
        timeline = app.timelines()[0]
        assert (timeline.kind, timeline.from_node, timeline.to_node) == \
            ("failover", owner, new_owner)
        names = [p.name for p in timeline.phases]
        assert names[:2] == ["lease expired", f"claimed by {new_owner}"]
        assert names[-1] == "g-app online"
        lease = timeline.phases[0]
        # From the last renewal to its expiry: the TTL (two clock reads apart).
        assert lease.duration == pytest.approx(live.lease_ttl, abs=0.2)
        assert all(p.duration is not None and p.duration >= 0 for p in timeline.phases)
        await pilot.pause()
        text = str(app.screen.query_one(TimelineView).render())
        assert f"g  failover  {owner} -> {new_owner}  total" in text
        assert f"failure seen: {owner}'s last lease renewal" in text
        for name in names:
            assert any(line.strip().startswith(name) and line.rstrip().endswith(" s")
                       for line in text.splitlines()), (name, text)
    live.assert_never_two()


async def test_move_group_to_the_chosen_node(live: Cluster) -> None:
    owner = healthy(live)["owner"]
    target = next(n for n in NODES if n != owner)
    async with dashboard(live) as (app, pilot):
        await select(app, Item("group", "g"))
        await pilot.press("m")
        await wait_until_async(lambda: isinstance(app.screen, MoveDialog), message="move dialog")
        options = app.screen.query_one(OptionList)
        options.highlighted = options.get_option_index(target)
        await pilot.press("enter")
        await wait_until_async(lambda: f"moving g to {target}" in notifications(app),
                               message="what `hacluster group move g --to` prints")
        await wait_until_async(lambda: f"g  online  on {target}" in
                               tree_label(app, Item("group", "g")), timeout=15,
                               message=f"g online on {target} in the tree")
    assert live.app_owner() == target  # by psutil, not by the store's word
    live.assert_never_two()


async def test_take_offline_then_bring_online(live: Cluster) -> None:
    pid = healthy(live)["resources"][0]["pid"]
    async with dashboard(live) as (app, pilot):
        await select(app, Item("group", "g"))
        await confirm(app, pilot, "x")
        await wait_until_async(lambda: live.group("g")["state"] == "offline", timeout=15,
                               message="g offline")
        assert not pid_alive(pid) and live.app_pids() == []
        await wait_until_async(lambda: "g  offline" in tree_label(app, Item("group", "g")),
                               message="the tree to show g offline")
        await pilot.press("o")  # bringing online disrupts nothing: no dialog
        await wait_until_async(lambda: "g-app  online  pid" in
                               tree_label(app, Item("resource", "g-app")), timeout=15,
                               message="g-app online again")
    assert live.app_pids() == [live.group("g")["resources"][0]["pid"]]
    live.assert_never_two()


async def test_resource_offline_then_online(live: Cluster) -> None:
    pid = healthy(live)["resources"][0]["pid"]
    async with dashboard(live) as (app, pilot):
        await select(app, Item("resource", "g-app"))
        await confirm(app, pilot, "x")
        await wait_until_async(lambda: "g-app: offline requested" in notifications(app),
                               message="what `hacluster resource offline` prints")
        await wait_until_async(lambda: not pid_alive(pid), timeout=10, message="g-app stopped")
        await wait_until_async(lambda: "g-app  offline" in
                               tree_label(app, Item("resource", "g-app")),
                               message="the tree to show g-app offline")
        assert live.app_pids() == []
        await pilot.press("o")
        await wait_until_async(lambda: "g-app  online  pid" in
                               tree_label(app, Item("resource", "g-app")), timeout=15,
                               message="g-app online again")
    assert live.app_pids() == [live.group("g")["resources"][0]["pid"]]
    live.assert_never_two()


async def test_simulated_failure_restarts_the_resource(live: Cluster) -> None:
    group = healthy(live)
    pid, owner = group["resources"][0]["pid"], group["owner"]
    seq = live.open().events()[-1]["seq"]
    async with dashboard(live) as (app, pilot):
        await select(app, Item("resource", "g-app"))
        await confirm(app, pilot, "i")
        await wait_until_async(lambda: "g-app: failure requested" in notifications(app),
                               message="what `hacluster resource fail` prints")
        restarted = await wait_until_async(
            lambda: (r := live.group("g")["resources"][0])["state"] == "online"
            and r["pid"] not in (None, pid) and r, timeout=10, message="g-app restarted")
        await wait_until_async(lambda: f"pid {restarted['pid']}" in
                               tree_label(app, Item("resource", "g-app")),
                               message="the new pid in the tree")
    assert live.group("g")["owner"] == owner and not pid_alive(pid)
    kinds = [e["kind"] for e in live.open().events(since=seq)]
    assert "resource-fail-requested" in kinds and "resource-restart" in kinds
    live.assert_never_two()


async def test_pause_drains_and_resume_brings_the_node_back(live: Cluster) -> None:
    owner = healthy(live)["owner"]
    async with dashboard(live) as (app, pilot):
        await select(app, Item("node", owner))
        await confirm(app, pilot, "p")
        await wait_until_async(lambda: live.node_state(owner) == "paused", timeout=5,
                               message=f"{owner} paused")
        moved = await wait_until_async(
            lambda: (g := live.group("g"))["owner"] not in (None, owner)
            and g["state"] == "online" and g, timeout=15, message="g drained away")
        await wait_until_async(lambda: f"{owner}  paused" in
                               tree_label(app, Item("node", owner)),
                               message="the tree to show the pause")
        await pilot.press("u")  # resuming disrupts nothing: no dialog
        await wait_until_async(lambda: live.node_state(owner) == "up", timeout=5,
                               message=f"{owner} resumed")
        await wait_until_async(lambda: f"node {owner} resumed" in notifications(app),
                               message="what `hacluster node resume` prints")
    assert live.app_owner() == moved["owner"]
    live.assert_never_two()


async def test_stop_node_moves_its_groups_then_stops(live: Cluster) -> None:
    owner = healthy(live)["owner"]
    service = live.nodes[owner]
    async with dashboard(live) as (app, pilot):
        await select(app, Item("node", owner))
        await confirm(app, pilot, "s")
        await wait_until_async(lambda: f"node {owner} stopped" in notifications(app),
                               timeout=35, message="what `hacluster node stop` prints")
        assert service.poll() is not None  # the node service exited
        await wait_until_async(lambda: f"{owner}  down" in tree_label(app, Item("node", owner)),
                               message="the tree to show the node down")
        group = live.wait_online("g")
        assert group["owner"] != owner
    live.assert_never_two()

