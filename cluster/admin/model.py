"""What the dashboard says about one item: plain data built from a snapshot, no widgets.

The detail of a node, group or resource (its properties, policy, restart and failover history)
is a list of titled sections of (label, value) rows, so it is tested without a screen and the
panel only lays it out. A resource type adds its own section through
``ResourceType.admin_panel`` (the extension pages of Cluster Administrator); a type that is
not installed here, or whose panel fails, costs that section only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cluster.model import NodeState, Snapshot
from cluster.policy import failover_threshold, failovers_in_period
from cluster.properties import checkpoint_paths, resolve
from cluster.resources import ResourceType, UnknownResourceType, get_type

logger = logging.getLogger(__name__)

HISTORY_ROWS = 8  # events shown in a detail's history

Rows = list[tuple[str, str]]


@dataclass(frozen=True)
class Item:
    """A selectable thing in the tree: kind is cluster, node, group or resource."""

    kind: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Detail:
    title: str
    sections: tuple[Section, ...]
    ticking: bool = False  # shows a duration that grows with time (uptime)


def clock_text(when: float | None) -> str:
    """UTC wall-clock time with milliseconds, as in the event log."""
    if not when:
        return "-"
    return datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S.%f")[:-3]


def date_text(when: float | None) -> str:
    if not when:
        return "-"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds_text(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def value_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={value_text(v)}" for k, v in value.items()) or "-"
    return str(value)


def _history(events: Iterable[Mapping[str, Any]], **where: str) -> Rows:
    """The newest events about an item, newest first."""
    found = [e for e in events if all(e.get(k) == v for k, v in where.items())]
    return [(str(e.get("time", ""))[11:23], f"{e.get('kind', '')}: {e.get('message', '')}")
            for e in reversed(found[-HISTORY_ROWS:])]


def cluster_detail(view_status: Mapping[str, Any], snap: Snapshot, store_url: str,
                   events: Sequence[Mapping[str, Any]]) -> Detail:
    nodes = view_status["nodes"]
    groups = view_status["groups"]
    resources = [r for g in groups for r in g["resources"]]
    rows = (
        ("store", store_url),
        ("lease TTL", seconds_text(snap.lease_ttl)),
        ("nodes", f"{sum(n['state'] == 'up' for n in nodes)} up of {len(nodes)}"),
        ("groups", f"{sum(g['state'] == 'online' for g in groups)} online of {len(groups)}"),
        ("resources", f"{sum(r['state'] == 'online' for r in resources)} online of "
                      f"{len(resources)}"),
        ("events", f"{len(events)} in memory, last #{events[-1].get('seq') if events else '-'}"),
    )
    return Detail(f"cluster {view_status['cluster']}", (Section("cluster", rows),))


def node_detail(name: str, view_status: Mapping[str, Any], snap: Snapshot,
                events: Sequence[Mapping[str, Any]], now: float) -> Detail:
    entry = next((n for n in view_status["nodes"] if n["name"] == name), None)
    lease = snap.nodes.get(name)
    hosted = [g["name"] for g in view_status["groups"] if g["owner"] == name]
    state = entry["state"] if entry else NodeState.DOWN.value
    rows: Rows = [
        ("state", state),
        ("epoch", str(entry["epoch"]) if entry else "-"),
        ("address", value_text(entry["address"] if entry else None)),
        ("pid", value_text(entry["pid"] if entry else None)),
        ("paused", value_text(snap.node_specs[name].paused if name in snap.node_specs
                              else False)),
        ("lease acquired", date_text(lease.acquired_at if lease else None)),
        ("groups hosted", f"{len(hosted)}: {', '.join(hosted)}" if hosted else "none"),
    ]
    if lease is not None and state == NodeState.DOWN.value and lease.expires_at:
        rows.append(("lease expired", date_text(lease.expires_at)))
    sections = [Section("node", tuple(rows))]
    history = _history(events, node=name)
    if history:
        sections.append(Section("recent events", tuple(history)))
    return Detail(f"node {name}", tuple(sections))


def group_detail(name: str, view_status: Mapping[str, Any], snap: Snapshot,
                 events: Sequence[Mapping[str, Any]], now: float) -> Detail:
    entry = next((g for g in view_status["groups"] if g["name"] == name), None)
    spec = snap.groups.get(name)
    status = snap.group_status_of(name)
    rows: Rows = [
        ("state", entry["state"] if entry else "unknown"),
        ("owner", value_text(entry["owner"] if entry else status.owner)),
        ("owner epoch", str(status.owner_epoch)),
        ("desired", spec.desired if spec else "-"),
        ("claimed", date_text(status.claimed_at)),
    ]
    if status.target:
        rows.append(("moving to", status.target))
    if status.failed_at:
        rows.append(("failed at", date_text(status.failed_at)))
    sections = [Section("group", tuple(rows))]
    if spec is not None:
        threshold = failover_threshold(snap, spec)
        recent = failovers_in_period(snap, spec, now)
        sections.append(Section("policy", (
            ("preferred owners", value_text(list(spec.preferred_owners))),
            ("possible owners", value_text(list(spec.possible_owners)) if spec.possible_owners
             else "any node"),
            ("failback", spec.failback),
            ("failover threshold", f"{threshold} in {seconds_text(spec.failover_period)}"
                                   + ("" if spec.failover_threshold is not None
                                      else " (nodes - 1)")),
            ("failovers in period", f"{recent} of {threshold}"),
            ("anti-affinity", value_text(spec.anti_affinity)),
        )))
    resources = [(r["name"], f"{r['type']}: {r['state']}"
                  + (f", pid {r['pid']}" if r["pid"] else ""))
                 for r in (entry["resources"] if entry else [])]
    if resources:
        sections.append(Section("resources (dependencies first)", tuple(resources)))
    if status.failovers:
        sections.append(Section("failover history", tuple(
            (clock_text(f.time),
             f"{f.from_node or '-'} -> {f.to_node or 'nobody'} "
             f"({'failure' if f.failure else 'planned'}): {f.reason}")
            for f in reversed(status.failovers[-HISTORY_ROWS:]))))
    history = _history(events, group=name)
    if history:
        sections.append(Section("recent events", tuple(history)))
    return Detail(f"group {name}", tuple(sections))


def checkpoint_copies(checkpoints_dir: Path, resource: str, paths: Sequence[str]
                      ) -> list[dict[str, Any]]:
    """What the store holds of each checkpointed path: files, bytes, newest change."""
    found = []
    for path in paths:
        stored = checkpoints_dir / resource / Path(path).name
        files = size = 0
        newest = 0.0
        try:
            walker = list(os.walk(stored)) if stored.is_dir() else []
        except OSError:
            walker = []
        for directory, _, names in walker:
            for name in names:
                try:
                    info = os.stat(os.path.join(directory, name))
                except OSError:
                    continue
                files += 1
                size += info.st_size
                newest = max(newest, info.st_mtime)
        found.append({"path": path, "files": files, "bytes": size,
                      "modified": newest or None})
    return found


def resource_detail(name: str, view_status: Mapping[str, Any], snap: Snapshot,
                    events: Sequence[Mapping[str, Any]], now: float,
                    data_dir: Path | None = None, checkpoints_dir: Path | None = None,
                    local_dirs: Mapping[str, str] | None = None) -> Detail:
    spec = snap.resources.get(name)
    status = snap.resource_status_of(name)
    entry = next((r for g in view_status["groups"] for r in g["resources"]
                  if r["name"] == name), None)
    if spec is None:
        return Detail(f"resource {name}", (Section("resource", (("state", "unknown"),)),))
    owner = snap.group_status_of(spec.group).owner
    rows: Rows = [
        ("type", spec.type),
        ("group", spec.group),
        ("state", entry["state"] if entry else status.state),
        ("node", value_text(owner)),
        ("pid", value_text(entry["pid"] if entry else None)),
        ("desired", spec.desired),
        ("depends on", value_text(list(spec.depends_on))),
    ]
    if status.last_error:
        rows.append(("last error", status.last_error))
    policy = spec.policy
    sections = [Section("resource", tuple(rows))]
    panel_spec = spec_dict(name, snap, data_dir, local_dirs)
    panel, ticking = type_panel(panel_spec,
                                status_dict(name, snap, now, checkpoints_dir, panel_spec))
    if panel:  # the type's own page (Cluster Administrator's extension pages) comes first
        sections.append(Section(spec.type, tuple(panel)))
    sections.append(Section("restart history", (
        ("failures in period", f"{len(status.failures)} of {policy.restart_threshold} "
                               f"allowed in {seconds_text(policy.restart_period)}"),
        *((clock_text(t), "failed") for t in reversed(status.failures[-HISTORY_ROWS:])),
    )))
    sections.append(Section("policy", (
        ("restart action", policy.restart_action),
        ("restart threshold", f"{policy.restart_threshold} in "
                              f"{seconds_text(policy.restart_period)}"),
        ("restart delay", seconds_text(policy.restart_delay)),
        ("retry after failure", seconds_text(policy.retry_period_on_failure)),
        ("pending timeout", seconds_text(policy.pending_timeout)),
        ("looks alive / is alive", f"every {seconds_text(policy.looks_alive_interval)} / "
                                   f"{seconds_text(policy.is_alive_interval)}"),
        ("own monitor", value_text(policy.separate_monitor)),
    )))
    sections.append(Section("properties", tuple(
        ResourceType.admin_panel(panel_spec, {})) or (("-", "none"),)))
    history = _history(events, resource=name)
    if history:
        sections.append(Section("recent events", tuple(history)))
    return Detail(f"resource {name}", tuple(sections), ticking)


def spec_dict(name: str, snap: Snapshot, data_dir: Path | None,
              local_dirs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The spec record for a type's panel: with its name, and placeholders resolved for the
    node that runs it (``{local}`` from that node's lease record)."""
    spec = snap.resources[name]
    owner = snap.group_status_of(spec.group).owner
    local = (local_dirs or {}).get(owner or "")
    values = {"data": str(data_dir) if data_dir else "{data}", "node": owner or "{node}",
              "local": local or "{local}"}
    return {"name": name, **spec.to_record(),
            "properties": resolve(dict(spec.properties), values)}


def status_dict(name: str, snap: Snapshot, now: float, checkpoints_dir: Path | None,
                spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The status record for a type's panel, with ``observed_at`` (the dashboard's clock) and
    ``checkpoints``: what the store holds of each checkpointed path."""
    value: dict[str, Any] = {"name": name, **snap.resource_status_of(name).to_record(),
                             "observed_at": now}
    props = (spec or {}).get("properties") or snap.resources[name].properties
    paths = checkpoint_paths(props)
    if paths and checkpoints_dir is not None:
        value["checkpoints"] = checkpoint_copies(checkpoints_dir, name, paths)
    return value


def type_panel(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[Rows, bool]:
    """The resource type's own rows, if it has a page of its own; (rows, whether they show a
    growing duration)."""
    try:
        type_class = get_type(str(spec.get("type")))
    except UnknownResourceType as exc:
        return [("panel", f"{exc}")], False
    if getattr(type_class.admin_panel, "__func__", None) is ResourceType.admin_panel.__func__:
        return [], False  # no page of its own: the properties section says it all
    try:
        rows = [(str(k), str(v)) for k, v in type_class.admin_panel(dict(spec), dict(status))]
    except Exception as exc:  # noqa: BLE001 - a plug-in's bug costs its own section only
        logger.exception("admin panel of %s failed", spec.get("type"))
        return [("panel error", f"{type(exc).__name__}: {exc}")], False
    ticking = any(k == "uptime" for k, _ in rows)
    return rows, ticking


def detail_for(item: Item, view_status: Mapping[str, Any], snap: Snapshot,
               events: Sequence[Mapping[str, Any]], now: float, store_url: str = "",
               data_dir: Path | None = None, checkpoints_dir: Path | None = None,
               local_dirs: Mapping[str, str] | None = None) -> Detail:
    if item.kind == "node":
        return node_detail(item.name, view_status, snap, events, now)
    if item.kind == "group":
        return group_detail(item.name, view_status, snap, events, now)
    if item.kind == "resource":
        return resource_detail(item.name, view_status, snap, events, now, data_dir,
                               checkpoints_dir, local_dirs)
    return cluster_detail(view_status, snap, store_url, events)


# --- the event log's filter ----------------------------------------------------------------

FILTER_FIELDS = ("node", "group", "resource")


def parse_filter(text: str) -> tuple[dict[str, str], str | None]:
    """``node:node1 group:g words`` -> ({"node": "node1", "group": "g"}, None).

    A bare word matches an event's node, group or resource by name. Returns an error message
    instead of raising, for the filter box to show.
    """
    fields: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition(":")
        if not sep:
            key, value = "any", word
        if key not in (*FILTER_FIELDS, "any") or not value:
            return {}, (f"unknown filter {word!r}: type a name, or node:NAME, group:NAME, "
                        "resource:NAME")
        if key in fields:
            return {}, f"{key} given twice in the filter; give each once"
        fields[key] = value
    return fields, None


def event_matches(event: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    for key, value in fields.items():
        if key == "any":
            if value not in (event.get("node"), event.get("group"), event.get("resource")):
                return False
        elif event.get(key) != value:
            return False
    return True
