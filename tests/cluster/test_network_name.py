"""network-name: validation, the resource API on loopback, and the name moving between owners.

Names are unique per test (other engineers announce on the same host). The failover cases run
the type inside real resource monitors (one per "node"), killed at teardown.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zeroconf import DNSIncoming, DNSText

from cluster.discovery import (
    NETWORK_NAME_SERVICE_TYPE,
    ServiceWatcher,
    browse_network_names,
    network_name_instance,
    network_name_record,
    query_responders,
    resolve_network_name,
    shared_zeroconf,
)
from cluster.monitor.client import MonitorClient
from cluster.resources import ResourceContext, get_type
from cluster.resources.network_name import NetworkName
from tests.helpers.procs import ProcessTracker
from tests.helpers.wait import wait_until

TIMING = {"pending_timeout": 10, "looks_alive_interval": 0.05, "is_alive_interval": 0.2}

RESOLVER = r"""
import json, sys
from cluster.discovery import resolve_network_name
print(json.dumps(resolve_network_name(sys.argv[1], timeout=float(sys.argv[2]))), flush=True)
"""


def unique_name() -> str:
    return f"nn-{uuid.uuid4().hex[:10]}"


def context(tmp_path: Path, node: str = "n1", **env: str) -> ResourceContext:
    return ResourceContext(node=node, local_dir=tmp_path / "local", data_dir=tmp_path / "data",
                           env={"HACLUSTER_NODE": node, **env})


@pytest.fixture
def procs() -> Iterator[ProcessTracker]:
    with ProcessTracker() as tracker:
        yield tracker


@pytest.fixture
def names() -> Iterator[ServiceWatcher]:
    with ServiceWatcher(shared_zeroconf(), NETWORK_NAME_SERVICE_TYPE,
                        network_name_record) as watcher:
        yield watcher


@pytest.fixture
def resources() -> Iterator[list[NetworkName]]:
    """Resources created in this process; terminated at teardown even if the test fails."""
    created: list[NetworkName] = []
    yield created
    for resource in created:
        resource.terminate()


def record_of(watcher: ServiceWatcher, name: str) -> dict[str, Any] | None:
    return next((r for r in watcher.snapshot() if r["name"] == name), None)


def owner_of(watcher: ServiceWatcher, name: str) -> str | None:
    record = record_of(watcher, name)
    return record["node"] if record else None


# -- validate() ----------------------------------------------------------------------------------


def test_the_type_is_installed_as_an_entry_point() -> None:
    assert get_type("network-name") is NetworkName
    assert NetworkName.type_name == "network-name"


@pytest.mark.parametrize(("props", "normalised"), [
    ({"name": "notepad"}, {"name": "notepad", "port": 0}),
    ({"name": "Note-Pad2", "port": "8022", "group": "g1", "address": "127.0.0.1"},
     {"name": "Note-Pad2", "port": 8022, "group": "g1", "address": "127.0.0.1"}),
    ({"name": "a" * 63, "port": 65535, "address": "", "group": ""},
     {"name": "a" * 63, "port": 65535}),
])
def test_validate_normalises_and_accepts_its_own_output(props: dict[str, Any],
                                                        normalised: dict[str, Any]) -> None:
    assert NetworkName.validate(props) == normalised
    assert NetworkName.validate(normalised) == normalised


@pytest.mark.parametrize(("props", "message"), [
    ({}, "network-name: property 'name' is required (e.g. --prop name=notepad)"),
    ({"name": " "}, "network-name: property 'name' is required (e.g. --prop name=notepad)"),
    ({"name": "my notepad"}, "network-name: name 'my notepad' must be one DNS label: letters, "
                             "digits and '-', at most 63, not starting or ending with '-' "
                             "(e.g. notepad)"),
    ({"name": "-x"}, "network-name: name '-x' must be one DNS label: letters, digits and '-', "
                     "at most 63, not starting or ending with '-' (e.g. notepad)"),
    ({"name": "a.b"}, "network-name: name 'a.b' must be one DNS label: letters, digits and '-', "
                      "at most 63, not starting or ending with '-' (e.g. notepad)"),
    ({"name": "a" * 64}, f"network-name: name {'a' * 64!r} must be one DNS label: letters, "
                         "digits and '-', at most 63, not starting or ending with '-' "
                         "(e.g. notepad)"),
    ({"name": 7}, "network-name: name 7 must be one DNS label: letters, digits and '-', at most "
                  "63, not starting or ending with '-' (e.g. notepad)"),
    ({"name": "np", "port": "http"},
     "network-name: port must be a number 0..65535, not 'http'"),
    ({"name": "np", "port": 70000},
     "network-name: port must be a number 0..65535, not 70000"),
    ({"name": "np", "port": True}, "network-name: port must be a number 0..65535, not True"),
    ({"name": "np", "port": 1.5}, "network-name: port must be a number 0..65535, not 1.5"),
    ({"name": "np", "address": "node1.example"},
     "network-name: address must be an IPv4 address such as 127.0.0.1, not 'node1.example'; "
     "leave it out to use the node's address"),
    ({"name": "np", "address": "::1"},
     "network-name: address must be an IPv4 address such as 127.0.0.1, not '::1'; leave it out "
     "to use the node's address"),
    ({"name": "np", "address": "0.0.0.0"},
     "network-name: address must be an IPv4 address such as 127.0.0.1, not '0.0.0.0'; leave it "
     "out to use the node's address"),
    ({"name": "np", "group": ["g"]}, "network-name: group must be a group name, not ['g']"),
    ({"name": "np", "ttl": 5},
     "network-name: unknown property 'ttl'; known properties: name, address, port, group"),
])
def test_validate_refuses_bad_input_in_one_line(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        NetworkName.validate(props)
    assert str(info.value) == message


# -- The resource API in this process ------------------------------------------------------------


def test_online_resolve_alive_offline(tmp_path: Path, names: ServiceWatcher,
                                      resources: list[NetworkName]) -> None:
    name = unique_name()
    resource = NetworkName("np", {"name": name, "port": 5050, "group": "notes"},
                           context(tmp_path, HACLUSTER_ADDRESS="127.0.0.1",
                                   HACLUSTER_CLUSTER="demo"))
    resources.append(resource)
    assert not resource.looks_alive()
    assert not resource.is_alive()
    resource.online()
    expected = {"name": name, "node": "n1", "address": "127.0.0.1", "port": 5050,
                "group": "notes", "cluster": "demo", "instance": network_name_instance(name)}
    assert resolve_network_name(name, timeout=2.0) == expected
    assert wait_until(lambda: record_of(names, name), timeout=5, message="browsed") == expected
    assert resource.looks_alive()
    assert resource.is_alive()
    assert resource.details() == {"name": name, "address": "127.0.0.1", "port": 5050,
                                  "service": network_name_instance(name)}
    resource.online()  # already online: nothing changes
    assert resource.is_alive()

    resource.offline()
    wait_until(lambda: record_of(names, name) is None, timeout=2, message="the goodbye")
    assert not resource.looks_alive()
    assert not resource.is_alive()
    assert query_responders(network_name_instance(name), timeout=0.3) is None
    assert resolve_network_name(name, timeout=0.3) is None
    resource.offline()  # a no-op once offline
    resource.terminate()


def test_browse_network_names_lists_the_owner(tmp_path: Path,
                                               resources: list[NetworkName]) -> None:
    name = unique_name()
    resource = NetworkName("np", {"name": name, "port": "7"}, context(tmp_path, node="n7"))
    resources.append(resource)
    resource.online()
    listed = [n for n in browse_network_names(timeout=0.3) if n["name"] == name]
    assert listed == [{"name": name, "node": "n7", "address": "127.0.0.1", "port": 7,
                       "group": None, "cluster": None, "instance": network_name_instance(name)}]


def test_is_alive_fails_when_the_registration_is_gone(tmp_path: Path,
                                                      resources: list[NetworkName]) -> None:
    resource = NetworkName("np", {"name": unique_name()}, context(tmp_path))
    resources.append(resource)
    resource.online()
    assert resource.is_alive()
    zc = shared_zeroconf()
    registered = zc.registry.async_get_info_name(resource.instance.lower())
    assert registered is not None
    zc.unregister_service(registered)  # withdrawn behind the resource's back
    assert not resource.looks_alive()
    assert not resource.is_alive()
    resource.terminate()  # must not raise for a resource that is already gone


def test_no_answer_goes_out_after_the_goodbye(tmp_path: Path, names: ServiceWatcher,
                                             resources: list[NetworkName]) -> None:
    """A query just before offline queues a multicast answer (sent 20 ms to 1 s later, RFC 6762
    aggregation); sent after the goodbye, it would put the name back in every browser's cache
    for 75 minutes. Offline must drop the queued answers."""
    name = unique_name()
    resource = NetworkName("np", {"name": name}, context(tmp_path))
    resources.append(resource)
    resource.online()
    wait_until(lambda: record_of(names, name), timeout=5, message="browsed")
    for _ in range(3):  # queue answers in both the aggregation and the one-second queues
        assert query_responders(network_name_instance(name), timeout=1.0) is not None
    resource.offline()
    wait_until(lambda: record_of(names, name) is None, timeout=2, message="the goodbye")
    # Observe the whole window in which a queued answer would go out (up to ~1.5 s): no record
    # of the name may come back into a browser's cache (goodbye records keep 1 s of TTL).
    zc = shared_zeroconf()

    def ghost_records() -> list[Any]:
        return [r for r in zc.cache.entries_with_name(network_name_instance(name)) if r.ttl > 1]

    with pytest.raises(AssertionError, match="timed out"):
        wait_until(ghost_records, timeout=1.6, message="a ghost answer")
    assert record_of(names, name) is None


class Sniffer:
    """Every mDNS packet on loopback that mentions `needle`, with its arrival time."""

    def __init__(self, needle: str) -> None:
        self.needle = needle.encode()
        self.packets: list[tuple[float, DNSIncoming]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(("", 5353))
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1"))
        self.sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(9000)
            except TimeoutError:
                continue
            if self.needle in data:
                self.packets.append((time.monotonic(), DNSIncoming(data, source)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def txt_records(self, node: str, goodbye: bool) -> list[float]:
        """Arrival times of packets with a TXT record of `node`, goodbyes (TTL 0) or not."""
        return [at for at, packet in self.packets
                if any(isinstance(r, DNSText) and f"node={node}".encode() in r.text
                       and (r.ttl == 0) == goodbye for r in packet.answers())]


def test_a_quick_move_sends_no_goodbye_after_the_new_owner_announces(
        tmp_path: Path, names: ServiceWatcher, resources: list[NetworkName]) -> None:
    """Offline on one node, online on the next a moment later: no goodbye of the old owner may
    follow the new owner's announcement on the wire (a browser that does not drop duplicate
    packets would then forget the new owner). zeroconf's own withdrawal spreads three goodbyes
    over 250 ms; ours are all out when offline() returns."""
    name = unique_name()
    old = NetworkName("np", {"name": name}, context(tmp_path, node="old"))
    new = NetworkName("np", {"name": name}, context(tmp_path, node="new"))
    resources.extend([old, new])
    sniffer = Sniffer(name)
    try:
        old.online()
        wait_until(lambda: owner_of(names, name) == "old", timeout=5, message="old owns")
        old.offline()
        new.online()
        wait_until(lambda: owner_of(names, name) == "new", timeout=5, message="new owns")
        wait_until(lambda: len(sniffer.txt_records("new", goodbye=False)) >= 3, timeout=5,
                   message="the new owner's three announcements (~0.45 s)")
    finally:
        sniffer.close()
    goodbyes = sniffer.txt_records("old", goodbye=True)
    assert goodbyes, "the old owner said no goodbye"
    assert max(goodbyes) < min(sniffer.txt_records("new", goodbye=False))
    assert owner_of(names, name) == "new"


def test_online_again_at_once_is_seen(tmp_path: Path, names: ServiceWatcher,
                                      resources: list[NetworkName]) -> None:
    """Online, offline, online within a second: browsers ignore a packet identical to one seen
    in the past 0.8 s, so each registration must announce (and say goodbye) in its own words."""
    name = unique_name()
    for round_ in range(3):
        resource = NetworkName("np", {"name": name}, context(tmp_path))
        resources.append(resource)
        resource.online()
        wait_until(lambda: owner_of(names, name) == "n1", timeout=2,
                   message=f"announcement {round_}")
        resource.offline()
        wait_until(lambda: owner_of(names, name) is None, timeout=2,
                   message=f"goodbye {round_}")


def test_set_port_publishes_the_port(tmp_path: Path, names: ServiceWatcher,
                                     resources: list[NetworkName]) -> None:
    name = unique_name()
    resource = NetworkName("np", {"name": name}, context(tmp_path))
    resources.append(resource)
    resource.online()
    wait_until(lambda: record_of(names, name), timeout=5, message="browsed")
    assert record_of(names, name)["port"] == 0
    resource.set_port(40123)
    wait_until(lambda: (record_of(names, name) or {}).get("port") == 40123, timeout=5,
               message="the browser sees the new port")
    assert resolve_network_name(name, timeout=2.0)["port"] == 40123
    assert resource.is_alive()
    with pytest.raises(ValueError, match="port must be a number 0..65535, not -1"):
        resource.set_port(-1)


def test_address_property_overrides_the_node_address(tmp_path: Path,
                                                     resources: list[NetworkName]) -> None:
    name = unique_name()
    resource = NetworkName("np", {"name": name, "address": "127.0.0.9"}, context(tmp_path))
    resources.append(resource)
    resource.online()
    resolved = resolve_network_name(name, timeout=2.0)
    assert resolved is not None and resolved["address"] == "127.0.0.9"
    assert query_responders(network_name_instance(name))["props"]["address"] == "127.0.0.9"


def test_the_same_name_twice_on_one_node_is_refused(tmp_path: Path,
                                                    resources: list[NetworkName]) -> None:
    name = unique_name()
    first = NetworkName("np1", {"name": name}, context(tmp_path))
    second = NetworkName("np2", {"name": name}, context(tmp_path))
    resources.extend([first, second])
    first.online()
    with pytest.raises(RuntimeError) as info:
        second.online()
    assert str(info.value) == (f"network name {name} is already registered on this node by "
                               "another resource; give each network-name its own name")
    second.offline()  # never online: a no-op, and the first stays registered
    assert first.is_alive()


@pytest.mark.parametrize(("address", "message"), [
    ("192.0.2.77", "192.0.2.77 is not an address of this host; use one of: "),
    ("0.0.0.0", "zeroconf already runs on 127.0.0.1 in this process, not all"),
])
def test_an_unusable_node_address_fails_online_clearly(tmp_path: Path, address: str,
                                                       message: str) -> None:
    shared_zeroconf()  # this test process runs zeroconf on loopback
    name = unique_name()
    resource = NetworkName("np", {"name": name}, context(tmp_path, HACLUSTER_ADDRESS=address))
    with pytest.raises(RuntimeError) as info:
        resource.online()
    assert str(info.value).startswith(f"network name {name}: {message}")
    assert not resource.looks_alive()


# -- Moving between owners (resource monitors as nodes) ------------------------------------------


def start_monitor(node: str, tmp_path: Path, procs: ProcessTracker,
                  events: list[dict[str, Any]]) -> MonitorClient:
    log = open(tmp_path / f"monitor-{node}.log", "ab")  # noqa: SIM115 - the monitor holds it
    client = MonitorClient(node, tmp_path / node, tmp_path / "data", on_event=events.append,
                           stderr=log)
    log.close()
    procs.track(client.pid)
    client.wait_ready()
    return client


def states_of(events: list[dict[str, Any]], resource: str) -> list[str]:
    return [e["state"] for e in list(events)
            if e.get("event") == "state" and e.get("resource") == resource]


def state_of(events: list[dict[str, Any]], resource: str) -> str | None:
    states = states_of(events, resource)
    return states[-1] if states else None


def resolve_in_new_process(name: str, procs: ProcessTracker) -> dict[str, Any] | None:
    """A client with an empty cache, as `hacluster attach` would be."""
    proc = subprocess.Popen([sys.executable, "-c", RESOLVER, name, "3"], stdout=subprocess.PIPE,
                            text=True)
    procs.track(proc)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return json.loads(out)


def test_network_name_moves_with_its_group(tmp_path: Path, procs: ProcessTracker,
                                           names: ServiceWatcher) -> None:
    name = unique_name()
    props = {"name": name, "group": "notes"}
    env = {"HACLUSTER_ADDRESS": "127.0.0.1"}
    events1: list[dict[str, Any]] = []
    events2: list[dict[str, Any]] = []
    node1 = start_monitor("node1", tmp_path, procs, events1)
    node2 = start_monitor("node2", tmp_path, procs, events2)
    try:
        node1.online("notes-name", "network-name", props, env, TIMING)
        wait_until(lambda: state_of(events1, "notes-name") == "online", timeout=10,
                   message="online on node1")
        wait_until(lambda: owner_of(names, name) == "node1", timeout=5, message="node1 owns")

        # Planned move: a clean offline says goodbye, and browsers drop the name at once.
        offline_sent = time.monotonic()
        node1.offline("notes-name")
        wait_until(lambda: owner_of(names, name) is None, timeout=2, message="the goodbye")
        goodbye_seen = time.monotonic() - offline_sent
        assert goodbye_seen < 2.0  # hang guard only; measured figure in the report
        node2.online("notes-name", "network-name", props, env, TIMING)
        wait_until(lambda: owner_of(names, name) == "node2", timeout=5, message="node2 owns")
        assert resolve_in_new_process(name, procs)["node"] == "node2"

        # Failover after a crash: no goodbye; the new owner's announcement replaces the records.
        node2.kill()
        node2.wait_exit(5)
        node1.online("notes-name", "network-name", props, env, TIMING)
        wait_until(lambda: owner_of(names, name) == "node1", timeout=5,
                   message="a browser sees node1 after the failover")
        assert resolve_in_new_process(name, procs)["node"] == "node1"
        assert query_responders(network_name_instance(name))["props"]["node"] == "node1"
        # IsAlive ran every 0.2 s all along (the resolver alone takes longer) and never failed.
        assert state_of(events1, "notes-name") == "online"
        assert "failed" not in states_of(events1, "notes-name") + states_of(events2, "notes-name")
    finally:
        node1.shutdown(timeout=5)
        node2.shutdown(timeout=5)
    # Shutting the monitor down terminated the resource: goodbye again.
    wait_until(lambda: owner_of(names, name) is None, timeout=2, message="goodbye at shutdown")
