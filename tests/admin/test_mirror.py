"""The store mirror and its follower, on a real directory store (no cluster processes)."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster import api
from cluster.admin import mirror as mirror_module
from cluster.admin.mirror import ClusterView, Follower, StoreMirror
from shared_store import Change, Store, open_store
from tests.admin.conftest import NOW, node_record
from tests.helpers.wait import wait_until


def test_a_lease_renewal_is_not_a_visible_change(crafted_store: Store) -> None:
    mirror = StoreMirror(crafted_store)
    mirror.reload()
    revision = mirror.revision
    key = "status/nodes/node2"
    renewed = {**crafted_store.get(key).value, "expires_at": NOW + 99.0, "last_seen": NOW + 97}
    crafted_store.put(key, renewed)
    assert mirror.apply([Change(key, "put")]) is False
    assert mirror.revision == revision
    assert mirror.get(key).value["expires_at"] == NOW + 99.0  # kept for the expiry timer
    crafted_store.put(key, {**renewed, "epoch": 2})
    assert mirror.apply([Change(key, "put")]) is True
    assert mirror.revision == revision + 1


def test_the_mirror_answers_what_status_asks(crafted_store: Store) -> None:
    mirror = StoreMirror(crafted_store)
    mirror.reload()
    assert api.status(mirror, NOW) == api.status(crafted_store, NOW)  # type: ignore[arg-type]


def test_a_damaged_record_keeps_its_last_value_and_is_named(crafted_store: Store,
                                                            tmp_path: Path) -> None:
    mirror = StoreMirror(crafted_store)
    mirror.reload()
    path = crafted_store.path_for("spec/groups/g")
    good = path.read_bytes()
    path.write_text("{ not json")
    assert mirror.apply([Change("spec/groups/g", "put")]) is True
    assert "damaged record" in mirror.problems["spec/groups/g"]
    assert str(path) in mirror.problems["spec/groups/g"]
    assert mirror.get("spec/groups/g").value["preferred_owners"] == ["node1", "node2"]
    # A fresh dashboard sees the damage while listing: the prefix is named, the rest is read.
    fresh = StoreMirror(crafted_store)
    fresh.reload()
    assert str(path) in fresh.problems["spec/groups"]
    assert fresh.get("spec/resources/g-app") is not None
    path.write_bytes(good)
    assert mirror.apply([Change("spec/groups/g", "put")]) is True
    assert mirror.problems == {}
    assert fresh.apply([Change("spec/groups/g", "put")]) is True
    assert fresh.problems == {} and fresh.get("spec/groups/g") is not None


class Recorder:
    """The follower's callbacks, as queues a test can wait on."""

    def __init__(self) -> None:
        self.views: queue.Queue[ClusterView] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.health: queue.Queue[str | None] = queue.Queue()
        self.follower: Follower | None = None

    def next_view(self, predicate: Any = lambda v: True, timeout: float = 5.0) -> ClusterView:
        deadline = time.monotonic() + timeout
        while True:
            view = self.views.get(timeout=max(0.0, deadline - time.monotonic()))
            if predicate(view):
                return view


@pytest.fixture
def follow(tmp_path: Path) -> Iterator[Any]:
    followers: list[tuple[Follower, threading.Thread]] = []

    def start(store: Store, clock: Any = time.time) -> Recorder:
        recorder = Recorder()
        follower = Follower(store, recorder.views.put, recorder.events.extend,
                            recorder.health.put, clock=clock)
        recorder.follower = follower
        thread = threading.Thread(target=follower.run, daemon=True)
        thread.start()
        followers.append((follower, thread))
        return recorder

    yield start
    for follower, thread in followers:
        follower.stop()
        thread.join(5)
        assert not thread.is_alive(), "the follower did not stop"


def node_state(view: ClusterView, name: str) -> str:
    return next(n["state"] for n in view.status["nodes"] if n["name"] == name)


def test_follower_reports_changes_and_events_but_not_renewals(crafted_store: Store,
                                                              follow: Any) -> None:
    recorder = follow(crafted_store, clock=lambda: NOW)
    first = recorder.next_view()
    assert [g["name"] for g in first.status["groups"]] == ["batch", "g", "web"]
    wait_until(lambda: len(recorder.events) == 15, message="the event history")
    key = "status/nodes/node3"
    renewed = {**crafted_store.get(key).value, "last_seen": NOW + 1}
    crafted_store.put(key, renewed)
    mirror = recorder.follower.mirror
    wait_until(lambda: mirror.get(key).value == renewed, message="the renewal followed")
    # Store writes from another process arrive through the watch, key by key.
    other = open_store(crafted_store.url)
    try:
        api.set_group_desired(other, "web", "offline")
    finally:
        other.close()
    view = recorder.next_view()
    assert view.snapshot.groups["web"].desired == "offline"
    assert recorder.views.empty()  # one view for the change, none for the renewal
    wait_until(lambda: recorder.events[-1]["kind"] == "group-offline-requested",
               message="the new event")


def test_a_lease_running_out_shows_without_any_write(crafted_store: Store,
                                                     follow: Any) -> None:
    expires_at = time.time() + 1.5  # time enough to start and show it up first
    crafted_store.put("status/nodes/node3", node_record("node3", 1, expires_at, time.time()))
    recorder = follow(crafted_store)
    assert node_state(recorder.next_view(), "node3") == "up"
    down = recorder.next_view(lambda v: node_state(v, "node3") == "down", timeout=5)
    assert down.now >= expires_at
    assert next(g for g in down.status["groups"] if g["name"] == "web")["state"] == "pending"


def test_store_unreachable_then_back(crafted_store: Store, follow: Any, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_module, "PROBE_INTERVAL", 0.2)  # no live lease wakes it here
    monkeypatch.setattr(mirror_module, "RETRY_INTERVAL", 0.2)
    recorder = follow(crafted_store, clock=lambda: NOW)
    recorder.next_view()
    root = Path(crafted_store.path_for("spec/groups/g")).parents[2]
    away = tmp_path / "away"
    os.rename(root, away)
    try:
        problem = recorder.health.get(timeout=10)
    finally:
        os.rename(away, root)
    assert problem is not None and "gone" in problem
    assert recorder.health.get(timeout=10) is None  # recovered
    assert recorder.next_view().status["cluster"] == "workshop"
