"""Zeroconf discovery on loopback: node announcements, browsing, goodbyes, `hacluster discover`.

Every cluster name is unique per test (other engineers' tests announce on the same host). The
"other process" cases run real announcers in subprocesses, killed at teardown.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cluster import discovery
from cluster.discovery import (
    NODE_SERVICE_TYPE,
    DiscoveryError,
    NodeAnnouncer,
    ServiceWatcher,
    browse_nodes,
    discover_command,
    label,
    node_record,
    public_store_url,
    query_responders,
    resolve_interface,
    shared_zeroconf,
    txt_properties,
)
from cluster.resources import ResourceContext
from cluster.resources.network_name import NetworkName
from tests.helpers.procs import ProcessTracker
from tests.helpers.wait import wait_until

ANNOUNCER = r"""
import json, sys, time
from cluster.discovery import NodeAnnouncer
cluster, node, peer = sys.argv[1:4]
announcer = NodeAnnouncer(cluster, node, "/stores/" + cluster, "127.0.0.1")
def say(**fields):
    print(json.dumps(fields), flush=True)
started_at = time.monotonic()
announcer.start()
say(event="started", at=started_at)
if peer != "-":
    found = announcer.wait_for_peer(peer, 10.0)
    say(event="seen" if found else "not-seen", at=time.monotonic(), peer=found)
sys.stdin.readline()  # a line or EOF: withdraw
announcer.close()
say(event="closed", at=time.monotonic())
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Child:
    """A subprocess speaking one JSON object a line; a reader thread feeds a queue."""

    def __init__(self, procs: ProcessTracker, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", ANNOUNCER, *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.track(self.proc)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def expect(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if message["event"] == event:
                return message
        raise AssertionError(f"no {event!r} from pid {self.proc.pid} within {timeout} s "
                             f"(exit code {self.proc.poll()})")

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()


@pytest.fixture
def procs() -> Iterator[ProcessTracker]:
    with ProcessTracker() as tracker:
        yield tracker


@pytest.fixture
def nodes_watcher() -> Iterator[ServiceWatcher]:
    with ServiceWatcher(shared_zeroconf(), NODE_SERVICE_TYPE, node_record) as watcher:
        yield watcher


def nodes_of(watcher: ServiceWatcher, cluster: str) -> set[str]:
    return {r["node"] for r in watcher.snapshot() if r["cluster"] == cluster}


# -- Pure helpers --------------------------------------------------------------------------------


def test_resolve_interface_accepts_addresses_names_and_all() -> None:
    assert resolve_interface("127.0.0.1") == "127.0.0.1"
    assert resolve_interface("lo") == "127.0.0.1"
    assert resolve_interface("localhost") == "127.0.0.1"
    assert resolve_interface("all") == "all"
    assert resolve_interface("0.0.0.0") == "all"


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty interface; give an IPv4 address, an interface name or 'all'"),
    ("::1", "::1: zeroconf discovery here is IPv4 only; give an IPv4 address"),
    ("192.0.2.77", "192.0.2.77 is not an address of this host; use one of: "),
    ("no-such-if0.invalid", "unknown interface or host 'no-such-if0.invalid'; give an IPv4 "
                            "address, an interface name ("),
])
def test_resolve_interface_refuses_what_it_cannot_use(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        resolve_interface(spec)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_labels_are_dns_safe() -> None:
    assert label("node1") == "node1"
    assert label("my node_2.x") == "my-node-2-x"
    assert label("--") == "unnamed"
    assert len(label("a" * 100)) == 63


def test_store_url_never_carries_credentials() -> None:
    assert public_store_url("etcd://user:s3cret@10.0.0.1:2379?data=/srv") == \
        "etcd://10.0.0.1:2379?data=/srv"
    assert public_store_url("/var/lib/hacluster") == "/var/lib/hacluster"
    assert public_store_url("file:///var/lib/hacluster") == "file:///var/lib/hacluster"


def test_txt_properties_drop_empty_and_oversized_values() -> None:
    props = txt_properties({"node": "n1", "group": None, "cluster": "", "store": "x" * 300})
    assert props == {"node": "n1"}


# -- One instance per process --------------------------------------------------------------------


def test_one_zeroconf_instance_per_process() -> None:
    zc = shared_zeroconf()
    assert shared_zeroconf("127.0.0.1") is zc
    assert shared_zeroconf("lo") is zc
    with pytest.raises(DiscoveryError) as info:
        shared_zeroconf("all")
    assert str(info.value) == ("zeroconf already runs on 127.0.0.1 in this process, not all; "
                               "use one interface per process")
    assert shared_zeroconf() is zc


def test_announcer_refuses_a_wildcard_address() -> None:
    with pytest.raises(ValueError, match="cannot announce the wildcard address 0.0.0.0"):
        NodeAnnouncer("c", "n1", "/s", "0.0.0.0")


# -- Register, resolve, withdraw (in this process) -----------------------------------------------


def test_announce_browse_and_withdraw(nodes_watcher: ServiceWatcher) -> None:
    cluster = unique("c")
    announcer = NodeAnnouncer(cluster, "node1", "etcd://u:pw@127.0.0.1:2379?data=/d", "127.0.0.1",
                              port=4711)
    announcer.start()
    try:
        nodes = browse_nodes(timeout=0.5, cluster=cluster)
        assert nodes == [{"cluster": cluster, "node": "node1",
                          "store": "etcd://127.0.0.1:2379?data=/d", "format": 1,
                          "address": "127.0.0.1", "port": 4711,
                          "instance": f"node1.{cluster}.{NODE_SERVICE_TYPE}"}]
        # A live query, answered by the responder itself rather than a cache.
        before = time.time()
        answer = query_responders(announcer.info.name, timeout=2.0)
        assert answer is not None
        since = float(answer["props"].pop("since"))  # when the announcement began
        assert before - 5 < since <= before
        assert answer == {"props": {"cluster": cluster, "node": "node1",
                                    "store": "etcd://127.0.0.1:2379?data=/d", "format": "1"},
                          "port": 4711, "server": f"node1-{cluster}.local.",
                          "address": "127.0.0.1", "instance": announcer.info.name}
        wait_until(lambda: nodes_of(nodes_watcher, cluster) == {"node1"}, timeout=5,
                   message="the watcher sees node1")
    finally:
        announcer.close()
    wait_until(lambda: not nodes_of(nodes_watcher, cluster), timeout=5,
               message="node1's goodbye reaches the watcher")
    assert query_responders(announcer.info.name, timeout=0.3) is None
    announcer.close()  # idempotent


def test_announcers_see_their_peers_of_the_same_cluster_only() -> None:
    cluster, other = unique("peers"), unique("other")
    with NodeAnnouncer(cluster, "n1", "/s", "127.0.0.1") as n1, \
            NodeAnnouncer(cluster, "n2", "/s", "127.0.0.1") as n2, \
            NodeAnnouncer(other, "n3", "/s", "127.0.0.1"):
        wait_until(lambda: [p["node"] for p in n1.peers()] == ["n2"], timeout=5,
                   message="n1 sees n2")
        wait_until(lambda: [p["node"] for p in n2.peers()] == ["n1"], timeout=5,
                   message="n2 sees n1")
        assert n1.wait_for_peer("n3", timeout=0.2) is None  # another cluster's node
        n2.close()
        wait_until(lambda: n1.peers() == [], timeout=2, message="n2's goodbye")
    assert n1.peers() == []  # closed: no browser any more


def test_query_for_an_unknown_instance_answers_none() -> None:
    assert query_responders(f"{unique('nobody')}.{NODE_SERVICE_TYPE}", timeout=0.2) is None


# -- Other processes -----------------------------------------------------------------------------


def test_two_nodes_discover_each_other(procs: ProcessTracker) -> None:
    cluster = unique("pair")
    a = Child(procs, cluster, "a", "b")
    b = Child(procs, cluster, "b", "a")
    started = max(a.expect("started")["at"], b.expect("started")["at"])
    seen_a, seen_b = a.expect("seen"), b.expect("seen")
    assert seen_a["peer"]["node"] == "b" and seen_a["peer"]["address"] == "127.0.0.1"
    assert seen_b["peer"]["node"] == "a" and seen_b["peer"]["store"] == f"/stores/{cluster}"
    both_discovered = max(seen_a["at"], seen_b["at"]) - started
    # The acceptance criterion (2 s); the measured figure is ~0 to 0.2 s. See the report.
    assert both_discovered < 2.0, f"discovery took {both_discovered:.3f} s"
    a.release()
    b.release()
    a.expect("closed")
    b.expect("closed")


def test_goodbye_from_another_process_is_seen_at_once(procs: ProcessTracker,
                                                      nodes_watcher: ServiceWatcher) -> None:
    cluster = unique("bye")
    child = Child(procs, cluster, "n1", "-")
    child.expect("started")
    wait_until(lambda: nodes_of(nodes_watcher, cluster) == {"n1"}, timeout=5,
               message="the watcher sees n1")
    child.release()
    closed = child.expect("closed")
    wait_until(lambda: not nodes_of(nodes_watcher, cluster), timeout=2,
               message="n1's goodbye")
    gone_after = time.monotonic() - closed["at"]
    assert gone_after < 2.0  # hang guard; the goodbye arrives before close() returns
    assert child.proc.wait(timeout=5) == 0


def test_a_killed_announcer_lingers_but_a_restart_replaces_it(
        procs: ProcessTracker, nodes_watcher: ServiceWatcher) -> None:
    """No goodbye from a SIGKILLed node (which is why liveness is the store's business); the
    same node starting again is seen with its new record."""
    cluster = unique("kill")
    first = Child(procs, cluster, "n1", "-")
    first.expect("started")
    wait_until(lambda: nodes_of(nodes_watcher, cluster) == {"n1"}, timeout=5, message="n1")
    first.proc.kill()
    first.proc.wait(timeout=5)
    second = Child(procs, cluster, "n1", "-")
    second.expect("started")
    # Still listed, by a live responder now; without the restart it would linger for minutes.
    assert wait_until(lambda: query_responders(f"n1.{cluster}.{NODE_SERVICE_TYPE}",
                                               timeout=0.5), timeout=5, message="answer")
    assert nodes_of(nodes_watcher, cluster) == {"n1"}
    second.release()
    second.expect("closed")
    wait_until(lambda: not nodes_of(nodes_watcher, cluster), timeout=2, message="goodbye")


# -- hacluster discover --------------------------------------------------------------------------


def one_line_group() -> click.Group:
    """`discover` inside the CLI's group class, for its one-line usage errors."""
    from cluster.cli import OneLineErrors

    return OneLineErrors(name="hacluster", commands={"discover": discover_command})


def test_discover_lists_clusters_nodes_and_names_as_json_and_text(tmp_path: Path) -> None:
    cluster = unique("disc")
    name = unique("name")
    network_name = NetworkName("np", {"name": name, "port": 80, "group": "g"},
                               ResourceContext(node="n2", local_dir=tmp_path, data_dir=tmp_path))
    with NodeAnnouncer(cluster, "n1", "/st/1", "127.0.0.1"), \
            NodeAnnouncer(cluster, "n2", "/st/1", "127.0.0.1", port=9):
        network_name.online()
        try:
            result = CliRunner().invoke(discover_command, ["--json", "--timeout", "0.4"])
            text = CliRunner().invoke(discover_command, ["--timeout", "0.4", "--interface", "lo"])
        finally:
            network_name.offline()
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["interface"] == "127.0.0.1"
        ours = [c for c in report["clusters"] if c["name"] == cluster]
        assert ours == [{"name": cluster, "nodes": [
            {"name": "n1", "address": "127.0.0.1", "port": 0, "store": "/st/1", "format": 1},
            {"name": "n2", "address": "127.0.0.1", "port": 9, "store": "/st/1", "format": 1}]}]
        assert [n for n in report["network_names"] if n["name"] == name] == [
            {"name": name, "node": "n2", "address": "127.0.0.1", "port": 80, "group": "g",
             "cluster": None}]

        assert text.exit_code == 0, text.output
        lines = text.output.splitlines()
        at = lines.index(f"cluster {cluster}")
        assert lines[at + 1].split() == ["node", "n1", "127.0.0.1", "store", "/st/1"]
        assert lines[at + 2].split() == ["node", "n2", "127.0.0.1", "store", "/st/1"]
        assert lines.index("network names") > at
        assert f"{name} on n2 127.0.0.1".split() in [line.split() for line in lines]


@pytest.mark.parametrize(("args", "message"), [
    (["--interface", "192.0.2.77"], "Invalid value for '--interface': 192.0.2.77 is not an "
                                    "address of this host; use one of: "),
    (["--timeout", "0"], "Invalid value for '--timeout': 0.0 is not in the range 0.05<=x<=60."),
    (["--timeout", "soon"], "Invalid value for '--timeout': 'soon' is not a valid float range."),
])
def test_discover_bad_input_is_one_line_with_exit_code_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(one_line_group(), ["discover", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"hacluster: error: {message}")
    assert result.stderr.rstrip("\n").endswith("(see 'hacluster discover --help')")
    assert result.stderr.count("\n") == 1


def test_discover_says_what_to_do_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing announced under this type: a discover that only sees other engineers' clusters
    # would not reach the message, so browse a service type nobody uses.
    monkeypatch.setattr(discovery, "NODE_SERVICE_TYPE", f"_x{uuid.uuid4().hex[:7]}._tcp.local.")
    monkeypatch.setattr(discovery, "NETWORK_NAME_SERVICE_TYPE",
                        f"_x{uuid.uuid4().hex[:7]}._tcp.local.")
    result = CliRunner().invoke(discover_command, ["--timeout", "0.2"])
    assert result.exit_code == 0
    assert result.output == ("no cluster answered on 127.0.0.1 within 0.2 s; start a node "
                             "(hacluster node start NAME) or try --interface / --timeout\n")
