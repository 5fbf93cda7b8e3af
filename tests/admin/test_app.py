"""The dashboard under Pilot on a hand-made store: banners, the log filter, dialogs, the
palette, and refused actions. (The live-cluster tests are in test_live.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.widgets import Input, OptionList, Static

from cluster.admin import mirror as mirror_module
from cluster.admin.app import AdminApp
from cluster.admin.dialogs import ConfirmDialog, MoveDialog
from cluster.admin.model import Item
from cluster.admin.screens import TimelineScreen
from cluster.admin.widgets import ClusterTree, EventLog, TimelineView
from shared_store import Store
from tests.admin.conftest import fixed_clock, notifications, tree_label
from tests.helpers.wait import wait_until_async

SIZE = (140, 45)


async def started(app: AdminApp, pilot: Any) -> None:
    await wait_until_async(lambda: app.view is not None and len(app.events) == 15,
                           message="the first view and the event history")
    await pilot.pause()


def banner(app: AdminApp) -> str:
    widget = app.query_one("#banner", Static)
    return str(widget.render()) if widget.has_class("-shown") else ""



async def select(app: AdminApp, pilot: Any, item: Item) -> None:
    assert app.query_one(ClusterTree).select_item(item)
    await wait_until_async(lambda: app.selected == item, message=f"{item} selected")


async def test_tree_shows_nodes_groups_and_resources(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        assert tree_label(app, Item("node", "node1")).startswith("node1  down  epoch 1")
        assert tree_label(app, Item("node", "node2")) == "node2  up  epoch 1  hosts 1: g"
        assert tree_label(app, Item("group", "g")) == "g  online  on node2  epoch 2"
        assert tree_label(app, Item("resource", "g-app")) == \
            "g-app  online  pid 4242  generic-app"
        assert tree_label(app, Item("group", "batch")) == "batch  offline  no owner  epoch 0"
        assert banner(app) == ""


async def test_damaged_record_shows_a_banner_and_the_dashboard_recovers(
        crafted_store: Store) -> None:
    path = crafted_store.path_for("spec/groups/web")
    good = path.read_bytes()
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        path.write_text('{"version": 1')
        await wait_until_async(lambda: "damaged record" in banner(app),
                               message="the damaged-record banner")
        assert str(path) in banner(app)
        assert tree_label(app, Item("group", "web")).startswith("web  online")  # last known
        path.write_bytes(good)
        await wait_until_async(lambda: banner(app) == "", message="the banner to go")


async def test_unreachable_store_shows_a_banner_and_recovers(
        crafted_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_module, "PROBE_INTERVAL", 0.2)  # no live lease wakes it here
    monkeypatch.setattr(mirror_module, "RETRY_INTERVAL", 0.2)
    root = crafted_store.path_for("spec/groups/g").parents[2]
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        os.rename(root, tmp_path / "unmounted")
        try:
            await wait_until_async(lambda: banner(app).startswith("Store unreachable"),
                                   timeout=10, message="the unreachable banner")
            assert "showing the last known state" in banner(app)
            assert tree_label(app, Item("group", "g")).startswith("g  online")
        finally:
            os.rename(tmp_path / "unmounted", root)
        await wait_until_async(lambda: banner(app) == "", timeout=10,
                               message="the banner to go when the store is back")


async def test_log_filter_by_name_and_by_selection(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        log = app.query_one(EventLog)
        assert len(log.lines) == 15
        await pilot.press("slash")
        assert app.focused is app.query_one("#filter", Input)
        await pilot.press(*"web", "enter")
        assert app.filter_fields == {"any": "web"}
        assert len(log.lines) == 6 and all("web" in line.text for line in log.lines)
        await pilot.press("escape")
        await select(app, pilot, Item("node", "node1"))
        await pilot.press("f")
        assert app.query_one("#filter", Input).value == "node:node1"
        texts = [line.text for line in log.lines]
        assert len(texts) == 6 and all("node1" in text for text in texts)
        assert any("node1 claimed g" in text for text in texts)


async def test_bad_filter_says_what_to_type_and_keeps_the_log(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("slash", *"colour:red", "enter")
        await pilot.pause()
        assert app.filter_fields == {}
        assert len(app.query_one(EventLog).lines) == 15
        assert any(n.startswith("unknown filter 'colour:red': type a name, or node:NAME")
                   for n in notifications(app))


async def test_cancelled_dialogs_change_nothing(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        before = {r.key: r.version for r in crafted_store.list("spec")}
        last_seq = crafted_store.events()[-1]["seq"]
        await select(app, pilot, Item("node", "node2"))
        await pilot.press("k")
        await wait_until_async(lambda: isinstance(app.screen, ConfirmDialog),
                               message="the crash dialog")
        await pilot.press("escape")
        await wait_until_async(lambda: not isinstance(app.screen, ConfirmDialog),
                               message="the dialog to close")
        await select(app, pilot, Item("group", "g"))
        await pilot.press("m")
        await wait_until_async(lambda: isinstance(app.screen, MoveDialog), message="move dialog")
        await pilot.press("escape")
        await pilot.pause()
        assert {r.key: r.version for r in crafted_store.list("spec")} == before
        assert crafted_store.list("requests") == []
        assert crafted_store.events()[-1]["seq"] == last_seq


async def test_bindings_follow_the_selection(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, Item("node", "node3"))
        assert app.check_action("crash", ()) and not app.check_action("move", ())
        await pilot.press("m")  # not for a node: no dialog
        await pilot.pause()
        assert not isinstance(app.screen, MoveDialog)
        await select(app, pilot, Item("resource", "g-app"))
        assert app.check_action("fail", ()) and app.check_action("move", ())
        assert not app.check_action("pause", ())


async def test_refused_action_shows_the_api_error(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, Item("group", "batch"))
        await pilot.press("m")
        await wait_until_async(lambda: isinstance(app.screen, MoveDialog), message="move dialog")
        options = app.screen.query_one(OptionList)
        assert [options.get_option_at_index(i).disabled for i in range(4)] == \
            [False, True, False, False]  # best, node1 (down), node2, node3
        options.highlighted = options.get_option_index("node3")
        await pilot.press("enter")
        await wait_until_async(lambda: notifications(app), message="the action's answer")
        assert notifications(app) == ["batch is not running on any node; bring it online with "
                                      "'hacluster group online batch'"]
        assert crafted_store.get("status/groups/batch") is None  # nothing written


async def test_palette_offers_the_actions_and_runs_them(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Crash node node1", "Stop node node2", "Pause node node3",
                      "Resume node node3", "Move group g", "Take group web offline",
                      "Bring group batch online", "Simulate failure of g-app",
                      "Take resource web-app offline", "Failover timeline"):
            assert title in titles
        await pilot.press("ctrl+p")
        await wait_until_async(lambda: isinstance(app.screen, CommandPalette),
                               message="the palette")
        app.screen.query_one(Input).value = "Pause node node3"  # as if typed
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until_async(lambda: isinstance(app.screen, ConfirmDialog),
                               message="the pause dialog")
        await pilot.press("enter")  # the focused button: Pause
        await wait_until_async(lambda: crafted_store.get("spec/nodes/node3") is not None,
                               message="node3 paused in the store")
        assert crafted_store.get("spec/nodes/node3").value == {"paused": True}
        await wait_until_async(lambda: "paused" in tree_label(app, Item("node", "node3")),
                               message="the tree to show node3 paused")
        await wait_until_async(lambda: "node node3 paused" in notifications(app),
                               message="what the CLI says")


async def test_timeline_screen_draws_the_phases(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("t")
        await wait_until_async(lambda: isinstance(app.screen, TimelineScreen),
                               message="the timeline screen")
        await pilot.pause()
        text = str(app.screen.query_one(TimelineView).render())
        assert "g  failover  node1 -> node2  total 2.40 s" in text
        assert "failure seen: node1's last lease renewal" in text
        for phase, seconds in (("lease expired", "2.00 s"), ("claimed by node2", "0.05 s"),
                               ("preparing on node2", "0.05 s"), ("g-app online", "0.30 s")):
            line = next(line for line in text.splitlines() if line.strip().startswith(phase))
            assert line.rstrip().endswith(seconds) and "█" in line or "▏" in line
        assert "web  move  node1 -> node3" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, TimelineScreen)


async def test_move_to_the_best_node_asks_the_policy(crafted_store: Store) -> None:
    app = AdminApp(crafted_store, clock=fixed_clock)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await select(app, pilot, Item("resource", "g-app"))  # its group moves
        await pilot.press("m")
        await wait_until_async(lambda: isinstance(app.screen, MoveDialog), message="move dialog")
        await pilot.press("enter")  # the first choice: the best node
        await wait_until_async(lambda: "moving g to node3" in notifications(app),
                               message="what `hacluster group move g` prints")
        assert crafted_store.get("status/groups/g").value["target"] == "node3"
        assert crafted_store.events()[-1]["kind"] == "group-move-requested"
