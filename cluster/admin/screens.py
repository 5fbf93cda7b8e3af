"""The failover timeline screen: every failover and move, newest first, drawn as bars."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from cluster.admin.timeline import Timeline
from cluster.admin.widgets import TimelineView


class TimelineScreen(Screen[None]):
    """Where the seconds of each failover go: failure seen, lease expired, claimed, each
    resource online. The app feeds it with ``show`` whenever events arrive."""

    BINDINGS = [Binding("escape,t", "app.pop_screen", "Back"),
                Binding("q", "app.quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("Failover timeline: each failover or move, newest first; bars share the "
                     "scale of their failover.", id="timeline-help")
        with VerticalScroll(id="timeline-scroll"):
            yield TimelineView(id="timeline")
        yield Footer()

    def show(self, timelines: Sequence[Timeline], now: float) -> None:
        self.query_one(TimelineView).show(timelines, now)
