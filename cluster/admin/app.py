"""``hacluster admin``: the Cluster Administrator in the terminal.

A thin layer over ``cluster.api``: a worker thread follows the store (``mirror.Follower``) and
posts what changed; the widgets draw it; every action is the same ``cluster.api`` call the CLI
makes, run in a worker, confirmed by a dialog where it disrupts.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, Static, Tree

from cluster.admin.actions import AdminActions
from cluster.admin.messages import ActionDone, EventsArrived, StoreHealth, ViewChanged
from cluster.admin.mirror import EVENT_MEMORY, ClusterView, Follower
from cluster.admin.model import Detail, Item, detail_for, event_matches, parse_filter
from cluster.admin.screens import TimelineScreen
from cluster.admin.timeline import Timeline, build_timelines
from cluster.admin.widgets import ClusterTree, DetailPanel, EventLog
from shared_store import Store

logger = logging.getLogger(__name__)

MAX_TIMELINES = 20


class AdminApp(AdminActions, App[None]):
    CSS_PATH = "admin.tcss"
    TITLE = "hacluster admin"
    BINDINGS = [
        Binding("m", "move", "Move"),
        Binding("o", "online", "Online"),
        Binding("x", "offline", "Offline"),
        Binding("i", "fail", "Fail"),
        Binding("p", "pause", "Pause"),
        Binding("u", "resume", "Resume"),
        Binding("s", "stop_node", "Stop"),
        Binding("k", "crash", "Crash"),
        Binding("t", "timeline", "Timeline"),
        Binding("f", "filter_selected", "Filter log"),
        Binding("slash", "filter", "Filter…", show=False),
        Binding("escape", "focus_tree", "Tree", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.view: ClusterView | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENT_MEMORY)
        self.selected = Item("cluster", store.name)
        self.filter_fields: dict[str, str] = {}
        self.unreachable: str | None = None
        self.follower = Follower(
            store, on_view=lambda view: self.post_message(ViewChanged(view)),
            on_events=lambda events: self.post_message(EventsArrived(events)),
            on_health=lambda problem: self.post_message(StoreHealth(problem)), clock=clock)

    # --- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("", id="banner")
        with Horizontal(id="main"):
            yield ClusterTree(id="tree")
            yield DetailPanel(id="detail")
        with Vertical(id="log-pane"):
            yield Input(placeholder="filter the event log: a name, or node:NAME group:NAME "
                        "resource:NAME, then enter (empty: everything)", id="filter")
            yield EventLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"cluster {self.store.name}"
        # Kept: updates arrive while the timeline or a dialog is the active screen, where
        # self.query_one would search that screen instead.
        self.tree_view = self.query_one(ClusterTree)
        self.detail_view = self.query_one(DetailPanel)
        self.log_view = self.query_one(EventLog)
        self.filter_box = self.query_one("#filter", Input)
        self.banner_view = self.query_one("#banner", Static)
        self.tree_view.focus()
        # Once a second, only while something on screen grows with time (an app's uptime, an
        # unfinished failover's open bar); paused otherwise, so an idle dashboard sleeps.
        self._ticker = self.set_interval(1.0, self._tick, pause=True)
        self._detail_ticking = False
        self._timelines_ticking = False
        self._banner_text = ""
        self._shown_detail: Detail | None = None
        self.follow()

    def on_unmount(self) -> None:
        self.follower.stop()

    @work(thread=True, exclusive=True, group="follow", name="follow", exit_on_error=False)
    def follow(self) -> None:
        self.follower.run()

    # --- updates from the follower -----------------------------------------------------

    @on(ViewChanged)
    def _view_changed(self, message: ViewChanged) -> None:
        if not self.tree_view.is_attached:
            return  # late news while the app shuts down
        self.view = message.view
        self.tree_view.show(message.view.status)
        self._show_banner()
        self._show_detail()
        self._show_timelines()

    @on(EventsArrived)
    def _events_arrived(self, message: EventsArrived) -> None:
        self.events.extend(message.events)
        if not self.log_view.is_attached:
            return
        self.log_view.add([e for e in message.events if event_matches(e, self.filter_fields)])
        if any(self._concerns_selection(e) for e in message.events):
            self._show_detail()
        self._show_timelines()

    @on(StoreHealth)
    def _store_health(self, message: StoreHealth) -> None:
        self.unreachable = message.problem
        if not self.banner_view.is_attached:
            return
        self._show_banner()

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity="information" if message.ok else "error",
                    timeout=6 if message.ok else 10)

    def _show_banner(self) -> None:
        banner = self.banner_view
        problems = self.view.problems if self.view else ()
        if self.unreachable:
            text = (f"Store unreachable: {self.unreachable} - showing the last known state; "
                    "trying again every second")
        elif problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            text = f"Store problem: {problems[0]}{more}"
        else:
            text = ""
        if text != self._banner_text:  # an update re-lays the screen out: only on change
            self._banner_text = text
            banner.update(text)
            banner.set_class(bool(text), "-shown")

    def _concerns_selection(self, event: dict[str, Any]) -> bool:
        item = self.selected
        return item.kind == "cluster" or event.get(item.kind) == item.name

    def _show_detail(self) -> None:
        if self.view is None:
            return
        view = self.view
        now = self.clock()
        detail = detail_for(self.selected, view.status, view.snapshot, list(self.events), now,
                            store_url=self.store.url, data_dir=self.store.data_dir,
                            checkpoints_dir=self.store.checkpoints_dir,
                            local_dirs=view.local_dirs)
        if detail != self._shown_detail:
            self._shown_detail = detail
            self.detail_view.show(detail)
        self._detail_ticking = detail.ticking
        self._update_ticker()

    def timelines(self) -> list[Timeline]:
        view = self.view
        leases = view.leases if view else {}
        resources = {g["name"]: [r["name"] for r in g["resources"]]
                     for g in (view.status["groups"] if view else [])}
        return build_timelines(self.events, leases, resources)[:MAX_TIMELINES]

    def _timeline_screen(self) -> TimelineScreen | None:
        screen = self.screen
        return screen if isinstance(screen, TimelineScreen) else None

    def _show_timelines(self) -> None:
        screen = self._timeline_screen()
        if screen is None:
            self._timelines_ticking = False
            return
        timelines = self.timelines()
        screen.show(timelines, self.clock())
        self._timelines_ticking = any(t.in_progress for t in timelines)
        self._update_ticker()

    def _update_ticker(self) -> None:
        if self._detail_ticking or self._timelines_ticking:
            self._ticker.resume()
        else:
            self._ticker.pause()

    def _tick(self) -> None:
        if self._detail_ticking:
            self._show_detail()
        self._show_timelines()

    # --- selection and the log filter --------------------------------------------------

    @on(Tree.NodeHighlighted, "#tree")
    def _highlighted(self, event: Tree.NodeHighlighted[Item]) -> None:
        item = event.node.data
        if item is None:
            return
        if item.kind == "section":
            item = Item("cluster", self.store.name)
        if item != self.selected:
            self.selected = item
            self._show_detail()
            self.refresh_bindings()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> bool:
        fields, problem = parse_filter(text)
        if problem is not None:
            self.notify(problem, severity="error")
            return False
        self.filter_fields = fields
        self.filter_box.value = text
        self.log_view.clear()
        self.log_view.add([e for e in self.events if event_matches(e, fields)]
                          [-EventLog.MAX_LINES:])
        return True

    def action_filter(self) -> None:
        self.filter_box.focus()

    def action_focus_tree(self) -> None:
        self.tree_view.focus()

    def action_filter_selected(self) -> None:
        item = self.selected
        self.apply_filter("" if item.kind == "cluster" else f"{item.kind}:{item.name}")

    def action_timeline(self) -> None:
        if self._timeline_screen() is None:
            self.push_screen(TimelineScreen())
            self.call_after_refresh(self._show_timelines)
