"""The dashboard's widgets: the cluster tree, the detail panel, the event log, the timeline.

Each takes plain data (the status dict, a ``Detail``, events, ``Timeline`` values) and draws it;
colours come from component classes styled in ``admin.tcss``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rich.console import RenderableType
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import RichLog, Static, Tree
from textual.widgets.tree import TreeNode

from cluster.admin.model import Detail, Item, clock_text
from cluster.admin.timeline import Phase, Timeline

GOOD = frozenset({"up", "online"})
BAD = frozenset({"down", "failed"})
BUSY = frozenset({"pending", "partial", "online-pending", "offline-pending", "joining", "paused"})
MAX_HOSTED_NAMES = 4


def state_class(state: str) -> str:
    if state in GOOD:
        return "good"
    if state in BAD:
        return "bad"
    if state in BUSY:
        return "busy"
    return "idle"


class ClusterTree(Tree[Item]):
    """The cluster, its nodes and its groups with their resources; updated in place, so the
    selection and the expanded branches survive every update."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "cluster-tree--good", "cluster-tree--bad", "cluster-tree--busy", "cluster-tree--idle",
        "cluster-tree--extra",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("cluster", data=Item("cluster", ""), **kwargs)
        self.show_root = True
        self.guide_depth = 3
        self._labels: dict[str, Text] = {}
        self._nodes_branch: TreeNode[Item] | None = None
        self._groups_branch: TreeNode[Item] | None = None

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"cluster-tree--{name}", partial=True)

    def _label(self, name: str, state: str, extra: str) -> Text:
        text = Text()
        text.append(name, style="bold")
        text.append("  ")
        text.append(state, style=self._style(state_class(state)))
        if extra:
            text.append("  " + extra, style=self._style("extra"))
        return text

    def show(self, status: Mapping[str, Any]) -> None:
        self.root.data = Item("cluster", str(status["cluster"]))
        self._set_label(self.root, Text.assemble(("cluster ", ""),
                                                 (str(status["cluster"]), "bold")))
        self.root.expand()
        if self._nodes_branch is None or self._groups_branch is None:
            self._nodes_branch = self.root.add("nodes", Item("section", "nodes"), expand=True)
            self._groups_branch = self.root.add("groups", Item("section", "groups"), expand=True)
        hosted: dict[str, list[str]] = {}
        for group in status["groups"]:
            if group["owner"]:
                hosted.setdefault(group["owner"], []).append(group["name"])
        nodes = []
        for node in status["nodes"]:
            mine = hosted.get(node["name"], [])
            names = ", ".join(mine[:MAX_HOSTED_NAMES]) + (", ..." if len(mine) >
                                                          MAX_HOSTED_NAMES else "")
            extra = f"epoch {node['epoch']}" + (f"  hosts {len(mine)}: {names}" if mine else "")
            nodes.append((Item("node", node["name"]),
                          self._label(node["name"], node["state"], extra), None))
        self._sync(self._nodes_branch, nodes)
        groups = []
        for group in status["groups"]:
            where = f"on {group['owner']}" if group["owner"] else "no owner"
            resources = [
                (Item("resource", res["name"]),
                 self._label(res["name"], res["state"],
                             (f"pid {res['pid']}  " if res["pid"] else "") + res["type"]), None)
                for res in group["resources"]]
            groups.append((Item("group", group["name"]),
                           self._label(group["name"], group["state"],
                                       f"{where}  epoch {group['epoch']}"), resources))
        self._sync(self._groups_branch, groups)

    def _set_label(self, node: TreeNode[Item], label: Text) -> None:
        key = node.data.id if node.data else str(node.id)
        if self._labels.get(key) != label:
            self._labels[key] = label
            node.set_label(label)

    def _sync(self, parent: TreeNode[Item],
              wanted: Sequence[tuple[Item, Text, Sequence[Any] | None]]) -> None:
        """Make ``parent``'s children exactly ``wanted``, in order, touching only changes."""
        existing = {child.data.id: child for child in parent.children if child.data}
        wanted_ids = {item.id for item, _, _ in wanted}
        for key, child in existing.items():
            if key not in wanted_ids:
                self._labels.pop(key, None)
                child.remove()
        for index, (item, label, children) in enumerate(wanted):
            node = existing.get(item.id)
            if node is None or node.parent is None:
                before = index if index < len(parent.children) else None
                if children is None:
                    node = parent.add_leaf(label, item, before=before)
                else:
                    node = parent.add(label, item, before=before, expand=True)
                self._labels[item.id] = label
            else:
                node.data = item
                self._set_label(node, label)
            if children is not None:
                self._sync(node, children)

    def select_item(self, item: Item) -> bool:
        """Move the cursor to ``item``; False if it is not in the tree."""
        def find(node: TreeNode[Item]) -> TreeNode[Item] | None:
            if node.data == item:
                return node
            for child in node.children:
                found = find(child)
                if found is not None:
                    return found
            return None

        found = find(self.root)
        if found is None:
            return False
        # A node added in this frame has no line number until the tree is drawn again.
        self.call_after_refresh(self.move_cursor, found)
        return True


class DetailBody(Widget):
    """The detail's text. Re-laid out only when its line shapes change: while an uptime ticks,
    a second's redraw is then a repaint of this widget alone (Static.update would re-lay out
    the whole screen each time)."""

    DEFAULT_CSS = "DetailBody { height: auto; }"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._text = Text()
        self._shape: tuple[int, ...] = ()

    def set_text(self, text: Text) -> None:
        shape = tuple(len(line) for line in text.plain.split("\n"))
        self._text = text
        self.refresh(layout=shape != self._shape)
        self._shape = shape

    def render(self) -> RenderableType:
        return self._text


class DetailPanel(VerticalScroll):
    """The selected item's properties, policy and history, as titled sections."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"detail-panel--title", "detail-panel--section",
                                             "detail-panel--label"}

    def compose(self) -> ComposeResult:
        yield DetailBody(id="detail-body")

    def show(self, detail: Detail) -> None:
        """One Text, not Rich tables: a table is measured and rendered several times a frame,
        and this is redrawn each second while an uptime ticks."""
        style = self.get_component_rich_style
        text = Text(detail.title, style=style("detail-panel--title"))
        for section in detail.sections:
            text.append("\n\n")
            text.append(section.title, style=style("detail-panel--section"))
            width = max((len(label) for label, _ in section.rows), default=0) + 2
            for label, value in section.rows:
                text.append("\n")
                text.append(f"{label:<{width}}", style=style("detail-panel--label"))
                text.append(value)
        self.query_one(DetailBody).set_text(text)


FAILURE_KINDS = frozenset({"resource-failed", "group-failover", "node-down", "monitor-died",
                           "resource-terminated"})
CHANGE_KINDS = frozenset({"group-moved", "group-claimed", "resource-restart", "node-paused",
                          "group-move-requested", "resource-fail-requested", "node-up"})


class EventLog(RichLog):
    """The store's event log, one line an event, coloured by kind."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"event-log--failure", "event-log--change",
                                             "event-log--time"}

    MAX_LINES = 2000

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_lines=self.MAX_LINES, wrap=False, markup=False, highlight=False,
                         **kwargs)

    def line(self, event: Mapping[str, Any]) -> Text:
        kind = str(event.get("kind", ""))
        style = self.get_component_rich_style
        text = Text()
        time_text = str(event.get("time", ""))
        text.append(time_text[11:23] if len(time_text) >= 23 else time_text,
                    style=style("event-log--time"))
        text.append(f"  #{event.get('seq', '?')!s:<6} ")
        kind_style = (style("event-log--failure") if kind in FAILURE_KINDS
                      else style("event-log--change") if kind in CHANGE_KINDS else "")
        text.append(f"{kind:<22} ", style=kind_style)
        text.append(str(event.get("message", "")))
        return text

    def add(self, events: Sequence[Mapping[str, Any]]) -> None:
        for event in events:
            self.write(self.line(event))


class TimelineView(Static):
    """Each failover or move as bars, one per phase, on a common time scale per failover."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--title", "timeline--note", "timeline--lease", "timeline--claim",
        "timeline--stop", "timeline--online", "timeline--open",
    }
    LABEL_WIDTH = 26
    DURATION_WIDTH = 12

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._timelines: list[Timeline] = []
        self._now = 0.0

    def show(self, timelines: Sequence[Timeline], now: float) -> None:
        self._timelines = list(timelines)
        self._now = now
        self.refresh(layout=True)

    def render(self) -> RenderableType:
        style = self.get_component_rich_style
        if not self._timelines:
            return Text("No failover or move yet. Crash a node (k) or move a group (m) and "
                        "watch where the seconds go.", style=style("timeline--note"))
        width = max(20, (self.size.width or 100) - self.LABEL_WIDTH - self.DURATION_WIDTH - 2)
        out = Text()
        for timeline in self._timelines:
            self._draw(out, timeline, width)
            out.append("\n")
        out.rstrip()
        return out

    def _draw(self, out: Text, timeline: Timeline, width: int) -> None:
        style = self.get_component_rich_style
        total = timeline.total(self._now) or 0.0
        state = "in progress" if timeline.in_progress else f"total {total:.2f} s"
        out.append(f"{timeline.group}  {timeline.kind}  {timeline.from_node or '-'} -> "
                   f"{timeline.to_node or '-'}  {state}  at "
                   f"{clock_text(timeline.claimed_at)}\n", style=style("timeline--title"))
        out.append(f"  {clock_text(timeline.started_at)}  {timeline.start_label}\n",
                   style=style("timeline--note"))
        span = max(total, 1e-6)
        for phase in timeline.phases:
            self._bar(out, timeline, phase, span, width)

    def _bar(self, out: Text, timeline: Timeline, phase: Phase, span: float,
             width: int) -> None:
        style = self.get_component_rich_style
        end = phase.end
        open_phase = end is None
        if open_phase:
            end = self._now if timeline.in_progress else phase.start
        offset = int(round((phase.start - timeline.started_at) / span * width))
        offset = min(max(offset, 0), width - 1)
        length = int(round((max(0.0, (end or phase.start) - phase.start)) / span * width))
        length = min(max(length, 0), width - offset)
        label = phase.name if len(phase.name) <= self.LABEL_WIDTH - 3 else \
            phase.name[:self.LABEL_WIDTH - 4] + "…"
        out.append(f"  {label:<{self.LABEL_WIDTH - 2}}")
        out.append(" " * offset)
        bar_style = style("timeline--open") if open_phase else style(f"timeline--{phase.kind}")
        out.append("█" * length if length else "▏", style=bar_style)
        out.append(" " * (width - offset - max(length, 1)))
        if open_phase:
            duration = "…" if timeline.in_progress else "not reached"
        else:
            duration = f"{phase.duration or 0.0:.2f} s"
        out.append(f" {duration:>{self.DURATION_WIDTH}}\n")

