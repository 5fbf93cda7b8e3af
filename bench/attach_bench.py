"""Attach benchmark: what a person at ``hacluster attach`` sees when the owner node crashes.

3 real nodes, the HA Notepad group, ``hacluster attach notepad --json`` in a real pty (pyte
screen). Each round types a word, waits until it is saved and checkpointed, SIGKILLs the owner
node's whole process tree, waits until the editor is back on the screen with the text, and
restarts the dead node. Measures:
- attach_outage: the outage attach itself reports (``--json``): from the moment it saw the
  connection drop to the moment it was connected to the new owner's console;
- kill_to_screen: from the SIGKILL until the editor's status bar is drawn again (the first
  repaint after the reconnect), as seen on the terminal;
- kill_to_online: from the SIGKILL until the store shows the group online on a survivor.

Prints one JSON object. Usage:
    python bench/attach_bench.py [--kills 10] [--ttl 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import summary  # noqa: E402
from tests.e2e.notepad import (  # noqa: E402
    DETACH,
    GROUP,
    attach_argv,
    attach_json,
    create_notepad,
    owner,
    wait_editor,
    wait_safe,
)
from tests.helpers.terminal import Terminal  # noqa: E402
from tests.helpers.wait import wait_until  # noqa: E402
from tests.integration.harness import Cluster  # noqa: E402

NODES = ("node1", "node2", "node3")


def stats(values: list[float]) -> dict[str, float]:
    return summary(values, digits=3)


def run(root: Path, kills: int, ttl: float) -> dict:
    cluster = Cluster(root, lease_ttl=ttl)
    term: Terminal | None = None
    try:
        cluster.start_nodes(*NODES)
        create_notepad(cluster)
        cluster.wait_online(GROUP)
        term = Terminal(attach_argv(cluster, GROUP, "--json"))
        wait_editor(term, "Ln 1, Col 1", (1, 1))
        text = "bench"
        term.send(text)
        to_screen: list[float] = []
        to_online: list[float] = []
        for round_number in range(kills):
            wait_editor(term, text, (1, len(text) + 1))
            wait_safe(cluster, text, (0, len(text)))
            victim = owner(cluster)
            mark = len(term.raw())
            killed = time.monotonic()
            cluster.kill_node(victim)
            # The status bar ("Ln 1, Col N") is drawn again by the new editor's first paint.
            wait_until(lambda m=mark: b"Ln 1, Col" in term.raw()[m:], timeout=30,
                       interval=0.002, message=f"round {round_number}: the editor back")
            to_screen.append(time.monotonic() - killed)
            group = cluster.wait_group(GROUP, lambda g, v=victim: g["owner"] not in (None, v)
                                       and g["state"] == "online", timeout=30)
            events = cluster.open().events(since=0)
            online_at = next((e["time"] for e in reversed(events)
                              if e.get("node") == group["owner"]
                              and "notepad is online" in e.get("message", "")), None)
            if online_at is not None:
                wall_killed = time.time() - (time.monotonic() - killed)
                to_online.append(datetime.fromisoformat(online_at).timestamp() - wall_killed)
            word = f" {round_number}"
            term.send(word)
            text += word
            cluster.start_node(victim)
        wait_editor(term, text, (1, len(text) + 1))
        term.send(DETACH)
        term.wait_exit(10)
        outages = attach_json(term)["outages"]
        durations = [o["duration"] for o in outages if o["duration"] is not None]
        return {"attach_outage": stats(durations), "kill_to_screen": stats(to_screen),
                "kill_to_online": stats(to_online), "outages_reported": len(outages)}
    finally:
        if term is not None:
            term.close()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--ttl", type=float, default=2.0, help="lease TTL in seconds")
    args = parser.parse_args()
    result: dict = {"benchmark": "attach", "kills": args.kills, "lease_ttl": args.ttl,
                    "cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="attach-bench-") as tmp:
        result.update(run(Path(tmp), args.kills, args.ttl))
    result["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
