"""The dashboard's detail and filter model, and the resource types' admin panels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from cluster import api
from cluster.admin.model import (
    Item,
    detail_for,
    event_matches,
    parse_filter,
    type_panel,
)
from cluster.node.snapshot import read_snapshot
from cluster.resources.base import ResourceType
from cluster.resources.generic_app import GenericApp
from cluster.resources.shared_folder import SharedFolder
from shared_store import Store
from tests.admin.conftest import NOW


def rows(detail: Any, title: str) -> dict[str, str]:
    section = next(s for s in detail.sections if s.title == title)
    return dict(section.rows)


def detail(store: Store, kind: str, name: str) -> Any:
    status = api.status(store, NOW)
    return detail_for(Item(kind, name), status, read_snapshot(store), store.events(0), NOW,
                      store_url=store.url, data_dir=store.data_dir,
                      checkpoints_dir=store.checkpoints_dir,
                      local_dirs={"node2": "/srv/node2"})


def test_node_detail_says_state_epoch_and_groups_hosted(crafted_store: Store) -> None:
    node2 = detail(crafted_store, "node", "node2")
    assert rows(node2, "node")["groups hosted"] == "1: g"
    assert rows(node2, "node")["state"] == "up"
    node1 = detail(crafted_store, "node", "node1")
    assert rows(node1, "node")["state"] == "down"
    assert rows(node1, "node")["lease expired"] == "2025-12-31 23:59:30 UTC"
    assert "node1 joined the cluster" in " ".join(rows(node1, "recent events").values())


def test_group_detail_has_policy_and_failover_history(crafted_store: Store) -> None:
    g = detail(crafted_store, "group", "g")
    assert rows(g, "group")["owner"] == "node2"
    policy = rows(g, "policy")
    assert policy["preferred owners"] == "node1, node2"
    assert policy["failover threshold"] == "2 in 6 h (nodes - 1)"
    assert policy["failovers in period"] == "1 of 2"
    history = rows(g, "failover history")
    assert history["23:59:30.050"] == ("node1 -> node2 (failure): node1's lease expired; g is "
                                       "failing over to node2")


def test_resource_detail_has_policy_restarts_and_the_types_panel(crafted_store: Store) -> None:
    web = detail(crafted_store, "resource", "web-app")
    assert rows(web, "resource")["last error"] == "exited with code 1"
    assert rows(web, "policy")["restart threshold"] == "3 in 15 min"
    assert rows(web, "restart history")["failures in period"] == \
        "1 of 3 allowed in 15 min"
    app = detail(crafted_store, "resource", "g-app")
    panel = rows(app, "generic-app")
    assert panel["command"] == "sleep 1000"
    assert panel["pid"] == "4242"
    assert panel["uptime"] == "00m 30s"
    assert panel["checkpoint"] == "/srv/node2/state/app: nothing saved yet"
    assert app.ticking  # the uptime grows: the panel is redrawn each second


def test_generic_app_panel_counts_checkpoint_copies(crafted_store: Store) -> None:
    saved = crafted_store.checkpoints_dir / "g-app" / "app"
    saved.mkdir(parents=True)
    (saved / "session.json").write_text("{}" * 50)
    os.utime(saved / "session.json", (NOW - 5, NOW - 5))
    panel = rows(detail(crafted_store, "resource", "g-app"), "generic-app")
    assert panel["checkpoint"] == ("/srv/node2/state/app: 1 file(s), 100 bytes, saved "
                                   "23:59:55 UTC")


def test_shared_folder_panel_shows_the_documents_size_and_last_change(tmp_path: Path) -> None:
    folder = tmp_path / "notepad"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello, cluster\n")
    os.utime(folder / "notes.txt", (NOW - 60, NOW - 60))
    (folder / ".hacluster-probe-x").write_text("")  # hidden: not a document
    panel = dict(SharedFolder.admin_panel({"properties": {"path": str(folder)}}, {}))
    assert panel == {"path": str(folder), "files": "1",
                     "notes.txt": "15 bytes, last change 2025-12-31 23:59:00 UTC"}
    missing = dict(SharedFolder.admin_panel({"properties": {"path": str(tmp_path / "no")}},
                                            {}))
    assert missing["folder"].startswith("missing")


def test_default_panel_lists_the_properties() -> None:
    assert ResourceType.admin_panel({"properties": {"script": "/bin/x", "args": ["a", "b"],
                                                    "env": {}}}, {}) == \
        [("script", "/bin/x"), ("args", "a b"), ("env", "-")]


def test_a_failing_or_unknown_panel_costs_its_section_only(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    rows_, ticking = type_panel({"type": "no-such-type"}, {})
    assert rows_[0][1].startswith("unknown resource type 'no-such-type'")

    def broken(cls: type, spec: dict, status: dict) -> list[tuple[str, str]]:
        raise RuntimeError("bug in a plug-in")

    monkeypatch.setattr(GenericApp, "admin_panel", classmethod(broken))
    rows_, ticking = type_panel({"type": "generic-app"}, {})
    assert rows_ == [("panel error", "RuntimeError: bug in a plug-in")] and not ticking


def test_generic_app_panel_offline_has_no_pid_or_uptime() -> None:
    panel = dict(GenericApp.admin_panel(
        {"properties": {"command": ["sleep", "9"], "checkpoints": []}},
        {"state": "offline", "pid": None, "details": {"exit": "killed by signal SIGKILL"},
         "observed_at": NOW}))
    assert panel == {"command": "sleep 9", "pid": "-", "last exit": "killed by signal SIGKILL",
                     "console": "no", "checkpoints": "none"}


@pytest.mark.parametrize(("text", "event", "matches"), [
    ("", {"node": "node1"}, True),
    ("node1", {"node": "node1", "group": "g"}, True),
    ("g", {"node": "node1", "group": "g"}, True),
    ("g", {"node": "node1", "group": "gg"}, False),
    ("node:node1 group:g", {"node": "node1", "group": "g"}, True),
    ("node:node1 group:g", {"node": "node2", "group": "g"}, False),
    ("resource:g-app", {"group": "g", "resource": "g-app"}, True),
])
def test_filter_matches_by_name(text: str, event: dict, matches: bool) -> None:
    fields, problem = parse_filter(text)
    assert problem is None
    assert event_matches(event, fields) is matches


@pytest.mark.parametrize(("text", "says"), [
    ("colour:red", "unknown filter 'colour:red'"),
    ("node:", "unknown filter 'node:'"),
    ("node:a node:b", "node given twice"),
])
def test_bad_filter_says_what_to_type(text: str, says: str) -> None:
    fields, problem = parse_filter(text)
    assert fields == {} and problem is not None and problem.startswith(says)
    assert "node:NAME" in problem or "once" in problem


def test_every_resource_lists_its_properties_and_only_typed_pages_add_one(
        crafted_store: Store) -> None:
    crafted_store.put("spec/resources/batch-agent", {
        "group": "batch", "type": "generic-script", "properties": {
            "script": ["{data}/agent.sh"], "timeout": 30.0}, "depends_on": [], "policy": {},
        "desired": "online"})
    agent = detail(crafted_store, "resource", "batch-agent")
    assert rows(agent, "properties") == {"script": f"{crafted_store.data_dir}/agent.sh",
                                         "timeout": "30.0"}
    assert [s.title for s in agent.sections if s.title == "generic-script"] == []
    app = detail(crafted_store, "resource", "g-app")
    assert rows(app, "properties")["checkpoints"] == "/srv/node2/state/app"
    assert "generic-app" in [s.title for s in app.sections]
