"""Snapshot tests of the main screen and the failover timeline, drawn from the hand-made store
with a fixed clock (pytest-textual-snapshot; update with --snapshot-update after a reviewed
change of the screens)."""

from __future__ import annotations

from typing import Any

from cluster.admin.app import AdminApp
from cluster.admin.model import Item
from cluster.admin.screens import TimelineScreen
from cluster.admin.widgets import ClusterTree
from shared_store import Store
from tests.admin.conftest import fixed_clock
from tests.helpers.wait import wait_until_async

SIZE = (140, 45)


async def loaded(app: AdminApp, pilot: Any) -> None:
    await wait_until_async(lambda: app.view is not None and len(app.events) == 15,
                           message="the first view and the event history")
    await pilot.pause()


def test_main_screen(snap_compare: Any, crafted_store: Store) -> None:
    """Tree with a dead node and a failed-over group; the detail of g-app with its
    generic-app panel; the event log."""
    app = AdminApp(crafted_store, clock=fixed_clock)

    async def run_before(pilot: Any) -> None:
        await loaded(app, pilot)
        app.query_one(ClusterTree).select_item(Item("resource", "g-app"))
        await wait_until_async(lambda: app.selected == Item("resource", "g-app"),
                               message="g-app selected")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_timeline_screen(snap_compare: Any, crafted_store: Store) -> None:
    """The failover of g (lease expired, claimed, online) and the move of web."""
    app = AdminApp(crafted_store, clock=fixed_clock)

    async def run_before(pilot: Any) -> None:
        await loaded(app, pilot)
        await pilot.press("t")
        await wait_until_async(lambda: isinstance(app.screen, TimelineScreen),
                               message="the timeline screen")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
