"""The live views of the CLI on a real cluster: ``events --follow`` and ``status --watch``."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

from tests.helpers.wait import wait_until
from tests.integration.harness import PYTHON, Cluster, hacluster


def test_events_follow_prints_new_events_as_json_lines(cluster: Cluster) -> None:
    cluster.start_nodes("node1", "node2")
    proc = subprocess.Popen([PYTHON, "-m", "cluster", "events", "--follow", "--json",
                             "--store", str(cluster.store)], stdout=subprocess.PIPE, text=True)
    lines: list[dict] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        cluster.create_app_group(preferred="node2,node1")
        cluster.wait_online("g", owner="node2")
        event = wait_until(lambda: next((e for e in lines if e["kind"] == "group-claimed"), None),
                           message="the claim event on --follow")
        assert event["node"] == "node2" and event["group"] == "g"
        assert {"seq", "time", "kind", "message"} <= set(event)
        seqs = [e["seq"] for e in lines]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def test_status_watch_redraws_on_change(cluster: Cluster) -> None:
    cluster.start_nodes("node1")
    proc = subprocess.Popen([PYTHON, "-m", "cluster", "status", "--watch",
                             "--store", str(cluster.store)], stdout=subprocess.PIPE, text=True,
                            env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"})
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        wait_until(lambda: any("node1" in line for line in seen), message="the first table")
        hacluster(cluster.store, "group", "create", "watched")
        wait_until(lambda: any("watched" in line for line in seen), message="a redraw")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
