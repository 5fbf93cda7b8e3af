"""Failover benchmark: 3 real nodes, a generic-app group running a small long-lived program.

Measures, from the cluster's own event log and lease records:
- node failover (SIGKILL of the owner's whole process tree), for each lease TTL given:
  detection (kill -> the dead lease's expiry is noticed and the group claimed), claim, online
  (claim -> app online), total (kill -> app online on the survivor);
- local restart after the app is SIGKILLed (kill -> online again on the same node);
- planned move (request -> online on the target);
- optionally a soak: N seconds with both cores kept busy, counting false failovers.

Prints one JSON object. Usage:
    python bench/failover_bench.py [--kills 30] [--ttls 1,2] [--restarts 10] [--moves 10]
                                   [--soak SECONDS]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import summary  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402
from tests.integration.harness import Cluster, hacluster  # noqa: E402

NODES = ("node1", "node2", "node3")


def stats(values: list[float]) -> dict[str, float]:
    return summary(values, digits=4)


def event_time(event: dict) -> float:
    return datetime.fromisoformat(event["time"]).timestamp()


def events_after(cluster: Cluster, seq: int) -> list[dict]:
    return cluster.open().events(since=seq)


def last_seq(cluster: Cluster) -> int:
    events = cluster.open().events(since=0)
    return events[-1]["seq"] if events else 0


def online_event(events: list[dict], resource: str, node: str) -> dict | None:
    return next((e for e in events if e["kind"] == "resource-state" and e.get("node") == node
                 and e.get("resource") == resource and " is online" in e["message"]), None)


def node_failovers(root: Path, ttl: float, kills: int) -> dict:
    cluster = Cluster(root, lease_ttl=ttl)
    try:
        cluster.start_nodes(*NODES)
        cluster.create_app_group(extra_group=("--failover-threshold", "1000"))
        group = cluster.wait_online("g")
        phases: dict[str, list[float]] = {"detection": [], "claim_to_online": [], "total": [],
                                          "lease_wait": []}
        for _ in range(kills):
            owner = group["owner"]
            lease = cluster.open().get(f"status/nodes/{owner}").value
            seq = last_seq(cluster)
            killed_at = time.time()
            cluster.kill_node(owner)
            group = cluster.wait_group(
                "g", lambda g, o=owner: g["owner"] not in (None, o) and g["state"] == "online",
                timeout=30, message="failover")
            new_owner = group["owner"]
            events = events_after(cluster, seq)
            claim = next(e for e in events if e["kind"] == "group-failover")
            online = online_event(events, "g-app", new_owner)
            assert online is not None, events
            expires_at = float(lease["expires_at"])
            # The dead node's last renewal may be later than the record read above.
            final = cluster.open().get(f"status/nodes/{owner}").value
            expires_at = max(expires_at, float(final["expires_at"]))
            phases["lease_wait"].append(expires_at - killed_at)
            phases["detection"].append(event_time(claim) - killed_at)
            phases["claim_to_online"].append(event_time(online) - event_time(claim))
            phases["total"].append(event_time(online) - killed_at)
            cluster.start_node(owner)
        cluster.assert_never_two()
        return {name: stats(values) for name, values in phases.items()}
    finally:
        cluster.close()


def local_restarts(root: Path, count: int) -> dict:
    cluster = Cluster(root)
    try:
        cluster.start_nodes(*NODES)
        cluster.create_app_group(extra_resource=("--restart-threshold", "1000"))
        group = cluster.wait_online("g")
        times = []
        for _ in range(count):
            old = group["resources"][0]["pid"]
            seq = last_seq(cluster)
            killed_at = time.time()
            os.kill(old, signal.SIGKILL)
            group = cluster.wait_group(
                "g", lambda g, o=old: g["resources"][0]["pid"] not in (None, o)
                and g["resources"][0]["state"] == "online", timeout=10, message="restart")
            online = online_event(events_after(cluster, seq), "g-app", group["owner"])
            times.append(event_time(online) - killed_at)
        cluster.assert_never_two()
        return stats(times)
    finally:
        cluster.close()


def planned_moves(root: Path, count: int) -> dict:
    cluster = Cluster(root)
    try:
        cluster.start_nodes(*NODES)
        cluster.create_app_group()
        group = cluster.wait_online("g")
        times = []
        for i in range(count):
            target = NODES[(NODES.index(group["owner"]) + 1 + i % 2) % 3]
            seq = last_seq(cluster)
            asked = time.time()
            hacluster(cluster.store, "group", "move", "g", "--to", target)
            group = cluster.wait_online("g", owner=target)
            online = online_event(events_after(cluster, seq), "g-app", target)
            times.append(event_time(online) - asked)
        cluster.assert_never_two()
        return stats(times)
    finally:
        cluster.close()


def _burn(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def soak(root: Path, seconds: float) -> dict:
    """Both cores kept busy by other processes: a healthy cluster must not fail over."""
    cluster = Cluster(root)
    burners: list[multiprocessing.Process] = []
    try:
        cluster.start_nodes(*NODES)
        cluster.create_app_group()
        cluster.wait_online("g")
        seq = last_seq(cluster)
        stop_at = time.time() + seconds
        burners = [multiprocessing.Process(target=_burn, args=(stop_at,)) for _ in range(2)]
        for proc in burners:
            proc.start()
        wait_until(lambda: time.time() >= stop_at, timeout=seconds + 5, interval=1.0,
                   message="the soak period")
        events = events_after(cluster, seq)
        false_failovers = [e for e in events if e["kind"] in ("group-failover", "group-moved")]
        cluster.assert_never_two()
        return {"seconds": seconds, "false_failovers": len(false_failovers),
                "events": len(events)}
    finally:
        for proc in burners:
            proc.terminate()
            proc.join()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--ttls", default="1,2")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--soak", type=float, default=0.0, help="seconds (0: skip)")
    args = parser.parse_args()
    result: dict = {"benchmark": "failover", "kills": args.kills, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as tmp:
        root = Path(tmp)
        for ttl in (float(t) for t in args.ttls.split(",") if t):
            sub = root / f"ttl{ttl:g}"
            sub.mkdir()
            result[f"node_failover_ttl_{ttl:g}s"] = node_failovers(sub, ttl, args.kills)
        if args.restarts:
            (root / "restart").mkdir()
            result["local_restart"] = local_restarts(root / "restart", args.restarts)
        if args.moves:
            (root / "move").mkdir()
            result["planned_move"] = planned_moves(root / "move", args.moves)
        if args.soak:
            (root / "soak").mkdir()
            result["soak"] = soak(root / "soak", args.soak)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
