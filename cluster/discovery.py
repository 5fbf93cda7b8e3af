"""Zeroconf discovery: nodes announce themselves; clients find clusters, nodes and network names.

Zeroconf serves discovery and addressing, never liveness (NOTES.md "zeroconf"): a SIGKILLed
announcer lingers in browsers' caches for ~1,125 s, so whether a node is alive comes from its
store lease. Three choices follow from measurements:

- One Zeroconf instance per process (`shared_zeroconf`), on loopback unless told otherwise. It
  listens on 0.0.0.0:5353 whatever the interface, but sends only on the chosen one.
- Registrations skip the ~1.7 s probe (`cooperating_responders`) and do not wait for the repeated
  announcements: a network name coming online during a failover must not pay for either. Names
  are unique by construction, since the store decides who owns a group.
- Browsers ask QM questions (answers by multicast). Several processes on one host share port
  5353 through SO_REUSEPORT, and a unicast answer sent to port 5353 reaches only one of them,
  which may not be the one that asked.
- Resolving a name, and IsAlive, ask the live responders from an ephemeral port ("legacy
  unicast"): answered at once and straight back, never from a cache that may still hold an
  owner that crashed, and without starting a Zeroconf instance.

TXT records carry names, a store location and a format version, never a secret.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ipaddress
import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import psutil
from zeroconf import (
    DNSAddress,
    DNSIncoming,
    DNSOutgoing,
    DNSPointer,
    DNSQuestion,
    DNSQuestionType,
    DNSRecord,
    DNSService,
    DNSText,
    InterfaceChoice,
    ServiceBrowser,
    ServiceInfo,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceInfo
from zeroconf.const import (
    _CLASS_IN,
    _FLAGS_QR_QUERY,
    _MDNS_ADDR,
    _MDNS_PORT,
    _TYPE_A,
    _TYPE_SRV,
    _TYPE_TXT,
)

logger = logging.getLogger(__name__)

NODE_SERVICE_TYPE = "_hacluster._tcp.local."
NETWORK_NAME_SERVICE_TYPE = "_hanotepad._tcp.local."
FORMAT_VERSION = 1
DEFAULT_INTERFACE = "127.0.0.1"
ALL_INTERFACES = "all"
DEFAULT_BROWSE_TIMEOUT = 1.0  # s: answers to a first query arrive within ~0.2 s on a LAN
LOOP_TIMEOUT = 5.0  # s: a zeroconf loop call that takes longer is stuck
RESOLVE_RECORD_TIMEOUT = 1.0  # s: resolving one browsed service whose records are not cached
TXT_STRING_MAX = 255  # bytes per key=value string (RFC 6763 6.1)

_LABEL_BAD = re.compile(r"[^A-Za-z0-9-]+")
QM = DNSQuestionType.QM


class DiscoveryError(RuntimeError):
    """Zeroconf could not be started or did not answer; the message says what to do."""


# -- Interfaces ----------------------------------------------------------------------------------


def _host_ipv4_addresses() -> dict[str, list[str]]:
    """IPv4 addresses of this host by interface name."""
    return {name: [a.address for a in addrs if a.family == socket.AF_INET]
            for name, addrs in psutil.net_if_addrs().items()}


def resolve_interface(spec: str) -> str:
    """An IPv4 address of this host (or "all") for `--interface`/`--address`, from an address,
    an interface name (eth0) or a host name (localhost). Raises ValueError with one line."""
    spec = (spec or "").strip()
    if not spec:
        raise ValueError("empty interface; give an IPv4 address, an interface name or 'all'")
    if spec.lower() == ALL_INTERFACES:
        return ALL_INTERFACES
    by_name = _host_ipv4_addresses()
    if spec in by_name:
        if not by_name[spec]:
            raise ValueError(f"interface {spec} has no IPv4 address; choose another interface")
        return by_name[spec][0]
    try:
        address = ipaddress.ip_address(spec)
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.gethostbyname(spec))
        except (OSError, UnicodeError, ValueError):
            raise ValueError(f"unknown interface or host {spec!r}; give an IPv4 address, an "
                             f"interface name ({', '.join(sorted(by_name))}) or 'all'") from None
    if address.version != 4:
        raise ValueError(f"{spec}: zeroconf discovery here is IPv4 only; give an IPv4 address")
    if address.is_unspecified:
        return ALL_INTERFACES
    ours = sorted({a for addrs in by_name.values() for a in addrs})
    if str(address) not in ours:
        raise ValueError(f"{address} is not an address of this host; use one of: "
                         f"{', '.join(ours)}")
    return str(address)


# -- The process-wide instance -------------------------------------------------------------------

_lock = threading.Lock()
_shared: Zeroconf | None = None
_shared_interface: str | None = None
_shared_pid: int | None = None
_atexit_registered = False


def shared_zeroconf(interface: str = DEFAULT_INTERFACE) -> Zeroconf:
    """This process's Zeroconf instance, created on first use and closed at exit (with goodbye
    packets for whatever is still registered). Raises DiscoveryError if it cannot start or if
    it already runs on another interface: one instance per process."""
    global _shared, _shared_interface, _shared_pid, _atexit_registered
    try:
        address = resolve_interface(interface)
    except ValueError as exc:
        raise DiscoveryError(str(exc)) from None
    with _lock:
        if _shared is not None and _shared_pid == os.getpid() and not _shared.done:
            if address != _shared_interface:
                raise DiscoveryError(
                    f"zeroconf already runs on {_shared_interface} in this process, not "
                    f"{address}; use one interface per process")
            return _shared
        choice: Any = InterfaceChoice.All if address == ALL_INTERFACES else [address]
        try:
            zc = Zeroconf(interfaces=choice, use_asyncio=False)  # own thread, whatever the caller
        except OSError as exc:
            raise DiscoveryError(f"cannot start zeroconf on {address}: {exc.strerror or exc}; "
                                 "is UDP port 5353 usable here?") from None
        _shared, _shared_interface, _shared_pid = zc, address, os.getpid()
        if not _atexit_registered:
            atexit.register(close_shared_zeroconf)
            _atexit_registered = True
        logger.debug("zeroconf started on %s", address)
        return zc


def close_shared_zeroconf() -> None:
    """Close this process's instance (goodbyes for what is still registered); idempotent."""
    global _shared, _shared_interface
    with _lock:
        zc, _shared, _shared_interface = _shared, None, None
    if zc is not None and _shared_pid == os.getpid():
        try:
            zc.close()
        except Exception as exc:  # at exit, a failing close must not hide the real outcome
            logger.warning("closing zeroconf: %s", exc)


def _run(zc: Zeroconf, coro: Coroutine[Any, Any, Any], what: str) -> Any:
    """Run a coroutine on the instance's loop from another thread, with a deadline."""
    if zc.loop is None or zc.done:
        coro.close()
        raise DiscoveryError(f"cannot {what}: zeroconf is closed")
    future = asyncio.run_coroutine_threadsafe(coro, zc.loop)
    try:
        return future.result(LOOP_TIMEOUT)
    except FutureTimeout:
        future.cancel()
        raise DiscoveryError(f"cannot {what}: zeroconf did not answer within "
                             f"{LOOP_TIMEOUT:g} s") from None


async def _pass() -> None:
    await asyncio.sleep(0)


def _flush(zc: Zeroconf, what: str) -> None:
    """Return once tasks scheduled before now have taken their first step: the first
    announcement (or goodbye) of a registration change is then on the wire."""
    _run(zc, _pass(), what)


class Registration:
    """One service this process announces, announced and withdrawn without waiting.

    Registering starts ~0.45 s of repeated announcements in the background; an update or a
    withdrawal cancels the repeats still due, or a quick online-offline would announce the
    service again after its goodbye and browsers would see a ghost.
    """

    def __init__(self, zc: Zeroconf, info: ServiceInfo) -> None:
        self.zc = zc
        self.info = info
        self._repeats: asyncio.Future[Any] | None = None

    @property
    def active(self) -> bool:
        """True while this instance answers for the service (its registry holds this info)."""
        return not self.zc.done and self.zc.registry.async_get_info_name(self.info.key) is \
            self.info

    async def _register(self) -> asyncio.Future[Any]:
        return await self.zc.async_register_service(self.info, cooperating_responders=True)

    def _drop_queued_answers(self) -> None:
        """Forget answers to earlier queries that still wait in the responder's queues.

        Multicast answers wait 20 ms to 1 s (RFC 6762 aggregation) and are sent without a
        second look at the registry: an answer queued before a goodbye would follow it and put
        the old records back into every browser's cache, for up to 75 minutes.
        """
        info = self.info
        ours = {info.key}
        sharing_server = [i for i in self.zc.registry.async_get_infos_server(info.server_key or "")
                          if i is not info]
        if info.server_key and not sharing_server:
            ours.add(info.server_key)

        def is_ours(record: DNSRecord) -> bool:
            return record.key in ours or (isinstance(record, DNSPointer)
                                          and record.alias.lower() == info.key)

        try:
            queues = [self.zc.out_queue.queue, self.zc.out_delay_queue.queue]
        except AttributeError:  # another zeroconf version: nothing we can reach
            logger.debug("zeroconf has no outgoing queues to clean")
            return
        for queue in queues:
            for group in queue:
                for record in [r for r in group.answers if is_ours(r)]:
                    del group.answers[record]
                for record, additionals in group.answers.items():
                    if any(is_ours(a) for a in additionals):
                        group.answers[record] = {a for a in additionals if not is_ours(a)}

    async def _update(self, info: ServiceInfo) -> asyncio.Future[Any]:
        if self._repeats is not None:
            self._repeats.cancel()
        self._drop_queued_answers()
        return await self.zc.async_update_service(info)

    async def _withdraw(self) -> None:
        if self._repeats is not None:
            self._repeats.cancel()
            self._repeats = None
        if self.active:
            self._drop_queued_answers()
            await self.zc.async_unregister_service(self.info)

    def register(self) -> None:
        """Announce without probing; return once the first announcement is sent."""
        what = f"announce {self.info.name}"
        self._repeats = _run(self.zc, self._register(), what)
        _flush(self.zc, what)

    def update(self, info: ServiceInfo) -> None:
        """Replace the records (cache-flush: browsers replace theirs); same name, new data."""
        what = f"update {info.name}"
        self._repeats = _run(self.zc, self._update(info), what)
        self.info = info
        _flush(self.zc, what)

    def withdraw(self) -> None:
        """Goodbye packets; return once the first is sent. A no-op when not registered."""
        what = f"withdraw {self.info.name}"
        _run(self.zc, self._withdraw(), what)
        _flush(self.zc, what)


# -- Records -------------------------------------------------------------------------------------


def label(text: str) -> str:
    """A DNS-safe label: letters, digits and '-', at most 63 characters."""
    cleaned = _LABEL_BAD.sub("-", text).strip("-")[:63].strip("-")
    return cleaned or "unnamed"


def public_store_url(store_url: str) -> str:
    """The store location without user or password, for a TXT record anyone can read."""
    parts = urlsplit(store_url)
    if parts.netloc and "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        return urlunsplit(parts)
    return store_url


def txt_properties(values: dict[str, str | None]) -> dict[str, str]:
    """Drop empty values and any key=value longer than a TXT string can hold (logged)."""
    kept: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value == "":
            continue
        if len(f"{key}={value}".encode()) > TXT_STRING_MAX:
            logger.warning("TXT %s is longer than %d bytes; not announced", key, TXT_STRING_MAX)
            continue
        kept[key] = value
    return kept


def _info_details(info: ServiceInfo) -> dict[str, Any]:
    props = {k: v or "" for k, v in info.decoded_properties.items()}
    addresses = info.parsed_addresses()
    return {"instance": info.name, "props": props, "port": info.port,
            "address": addresses[0] if addresses else props.get("address") or None}


def node_record(info: ServiceInfo) -> dict[str, Any] | None:
    """A browsed node: cluster, node, store, format, address, port; None if not one of ours."""
    details = _info_details(info)
    props = details["props"]
    if not props.get("cluster") or not props.get("node"):
        return None
    fmt = props.get("format", "")
    return {"cluster": props["cluster"], "node": props["node"], "store": props.get("store"),
            "format": int(fmt) if fmt.isdigit() else None, "address": details["address"],
            "port": details["port"], "instance": details["instance"]}


def network_name_record(info: ServiceInfo) -> dict[str, Any] | None:
    """A browsed network name: name, node (the owner), address, port, group, cluster."""
    details = _info_details(info)
    props = details["props"]
    if not props.get("name") or not props.get("node"):
        return None
    return {"name": props["name"], "node": props["node"], "address": details["address"],
            "port": details["port"], "group": props.get("group"),
            "cluster": props.get("cluster"), "instance": details["instance"]}


# -- Browsing ------------------------------------------------------------------------------------


class ServiceWatcher:
    """A live view of one service type: instance name -> parsed record, kept by a browser.

    Added and updated services are read from the cache (the announcement carries every record)
    or, failing that, asked for on the zeroconf loop; removed ones (goodbyes) disappear at once.
    """

    def __init__(self, zc: Zeroconf, service_type: str,
                 parse: Callable[[ServiceInfo], dict[str, Any] | None]) -> None:
        self._zc = zc
        self._type = service_type
        self._parse = parse
        self._records: dict[str, dict[str, Any]] = {}
        self._present: set[str] = set()  # names whose pointer record is current
        self._cond = threading.Condition()
        self._browser: ServiceBrowser | None = None

    def start(self) -> ServiceWatcher:
        if self._browser is None:
            self._browser = ServiceBrowser(self._zc, self._type, handlers=[self._on_change],
                                           question_type=QM)
        return self

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                   state_change: ServiceStateChange) -> None:
        key = name.lower()
        with self._cond:
            if state_change is ServiceStateChange.Removed:
                self._present.discard(key)
                self._records.pop(key, None)
                self._cond.notify_all()
                return
            if state_change is ServiceStateChange.Added:
                self._present.add(key)
            elif key not in self._present:
                # Stray records of a withdrawn service (a late answer from some responder)
                # make no service: only its pointer record (Added) does.
                return
        info = AsyncServiceInfo(service_type, name)
        if info.load_from_cache(zeroconf):
            self._store(key, info)
        elif zeroconf.loop is not None and not zeroconf.done:
            # Ask on the zeroconf loop: this thread delivers every change of the browser, and
            # one unresolvable stale name must not hold up the others.
            asyncio.run_coroutine_threadsafe(self._resolve(key, info), zeroconf.loop)

    async def _resolve(self, key: str, info: AsyncServiceInfo) -> None:
        if await info.async_request(self._zc, int(RESOLVE_RECORD_TIMEOUT * 1000),
                                    question_type=QM):
            self._store(key, info)
        else:
            logger.debug("%s announced but did not resolve", info.name)

    def _store(self, key: str, info: ServiceInfo) -> None:
        record = self._parse(info)
        if record is None:
            logger.debug("%s: not a record of ours (%s)", info.name, info.decoded_properties)
            return
        with self._cond:
            if key in self._present:
                self._records[key] = record
                self._cond.notify_all()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(r) for _, r in sorted(self._records.items())]

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any],
                 timeout: float) -> Any:
        """Wait until predicate(snapshot) is truthy; return its value, or None at the deadline."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate([dict(r) for r in self._records.values()])
                remaining = deadline - time.monotonic()
                if value or remaining <= 0:
                    return value or None
                self._cond.wait(remaining)

    def close(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(RuntimeError):  # zeroconf already closed at exit
                browser.cancel()

    def __enter__(self) -> ServiceWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _browse(service_type: str, parse: Callable[[ServiceInfo], dict[str, Any] | None],
            timeout: float, interface: str) -> list[dict[str, Any]]:
    with ServiceWatcher(shared_zeroconf(interface), service_type, parse) as watcher:
        watcher.wait_for(lambda _records: False, timeout)  # listen for the whole window
        return watcher.snapshot()


def browse_nodes(timeout: float = DEFAULT_BROWSE_TIMEOUT, interface: str = DEFAULT_INTERFACE,
                 cluster: str | None = None) -> list[dict[str, Any]]:
    """Nodes that answer within `timeout` seconds (optionally of one cluster), sorted by
    cluster and node. A crashed node may still be listed: liveness is in the store."""
    nodes = _browse(NODE_SERVICE_TYPE, node_record, timeout, interface)
    if cluster is not None:
        nodes = [n for n in nodes if n["cluster"] == cluster]
    return sorted(nodes, key=lambda n: (n["cluster"], n["node"]))


def browse_network_names(timeout: float = DEFAULT_BROWSE_TIMEOUT,
                         interface: str = DEFAULT_INTERFACE) -> list[dict[str, Any]]:
    """Network names that answer within `timeout` seconds, sorted by name."""
    names = _browse(NETWORK_NAME_SERVICE_TYPE, network_name_record, timeout, interface)
    return sorted(names, key=lambda n: n["name"])


def network_name_instance(name: str) -> str:
    return f"{name}.{NETWORK_NAME_SERVICE_TYPE}"


def _parse_txt(text: bytes) -> dict[str, str]:
    props: dict[str, str] = {}
    i = 0
    while i < len(text):
        length = text[i]
        entry = text[i + 1:i + 1 + length].decode("utf-8", "replace")
        i += 1 + length
        key, _, value = entry.partition("=")
        if key:
            props.setdefault(key, value)
    return props


def _answer_from(incoming: DNSIncoming, instance: str) -> dict[str, Any] | None:
    """TXT, SRV and A records of `instance` in one response, or None if it has no TXT."""
    wanted = instance.lower()
    props: dict[str, str] | None = None
    port: int | None = None
    server: str | None = None
    addresses: dict[str, list[str]] = {}
    for record in incoming.answers():
        name = record.name.lower()
        if isinstance(record, DNSText) and name == wanted:
            props = _parse_txt(record.text)
        elif isinstance(record, DNSService) and name == wanted:
            port, server = record.port, record.server.lower()
        elif isinstance(record, DNSAddress) and record.type == _TYPE_A:
            addresses.setdefault(name, []).append(socket.inet_ntoa(record.address))
    if props is None:
        return None
    address = (addresses.get(server or "") or [None])[0] or props.get("address") or None
    return {"props": props, "port": port, "server": server, "address": address}


def query_responders(instance: str, interface: str = DEFAULT_INTERFACE,
                     timeout: float = 1.0) -> dict[str, Any] | None:
    """Ask the live responders, not any cache, about a service instance.

    A one-shot query from an ephemeral port (RFC 6762 6.7 "legacy unicast"): responders answer
    it at once and directly, where a multicast answer may wait up to a second (aggregation, and
    the one-second rule after an announcement); and it needs no Zeroconf instance, so a fresh
    client also saves the ~0.3 s that starting one takes. Returns the first answer as
    {props (the TXT), port, server, address}, or None when nothing answers within `timeout`.
    Raises DiscoveryError for a socket error or an unusable interface.
    """
    try:
        address = resolve_interface(interface)
    except ValueError as exc:
        raise DiscoveryError(str(exc)) from None
    query_id = random.randint(1, 0xFFFF)
    out = DNSOutgoing(_FLAGS_QR_QUERY, multicast=False, id_=query_id)
    out.add_question(DNSQuestion(instance, _TYPE_SRV, _CLASS_IN))
    out.add_question(DNSQuestion(instance, _TYPE_TXT, _CLASS_IN))
    bind_to = "" if address == ALL_INTERFACES else address
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            if bind_to:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                socket.inet_aton(bind_to))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.bind((bind_to, 0))
            for packet in out.packets():
                sock.sendto(packet, (_MDNS_ADDR, _MDNS_PORT))
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                try:
                    data, source = sock.recvfrom(9000)
                except TimeoutError:
                    break
                incoming = DNSIncoming(data, source)
                if incoming.valid and incoming.is_response() and incoming.id == query_id:
                    answer = _answer_from(incoming, instance)
                    if answer is not None:
                        return answer
    except OSError as exc:
        raise DiscoveryError(f"cannot query {instance} on {address}: "
                             f"{exc.strerror or exc}") from None
    return None


def resolve_network_name(name: str, timeout: float = 2.0,
                         interface: str = DEFAULT_INTERFACE) -> dict[str, Any] | None:
    """Where a network name points now: {name, node, address, port, group, cluster, instance},
    or None if no live owner answered within `timeout` seconds. Asks the owner directly
    (`query_responders`): about a millisecond on one host, and never a stale cache entry of an
    owner that crashed. Raises DiscoveryError for an unusable interface."""
    instance = network_name_instance(name)
    answer = query_responders(instance, interface, timeout)
    if answer is None:
        return None
    props = answer["props"]
    if not props.get("node"):
        return None
    return {"name": props.get("name") or name, "node": props["node"],
            "address": answer["address"], "port": answer["port"], "group": props.get("group"),
            "cluster": props.get("cluster"), "instance": instance}


# -- Node announcer ------------------------------------------------------------------------------


class NodeAnnouncer:
    """A node's presence on the network: `<node>.<cluster>._hacluster._tcp.local.` with TXT
    cluster, node, store and format, plus a browser for the other nodes (`peers`).

    The node service creates it at start and closes it at stop; a node that crashes is not
    withdrawn (no goodbye), which is why nothing here decides liveness.
    """

    def __init__(self, cluster: str, node: str, store_url: str, address: str, port: int = 0,
                 interface: str | None = None) -> None:
        self.cluster = cluster
        self.node = node
        self.interface = interface or address
        announced = resolve_interface(address)
        if announced == ALL_INTERFACES:
            raise ValueError(f"cannot announce the wildcard address {address}; give the node "
                             "an address of this host (--address HOST)")
        self.address = announced
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, not {port}")
        props = txt_properties({"cluster": cluster, "node": node,
                                "store": public_store_url(store_url),
                                "format": str(FORMAT_VERSION)})
        self.info = ServiceInfo(
            NODE_SERVICE_TYPE, f"{label(node)}.{label(cluster)}.{NODE_SERVICE_TYPE}",
            addresses=[socket.inet_aton(announced)], port=port, properties=props,
            server=f"{label(node)}-{label(cluster)}.local.")
        self._registration: Registration | None = None
        self._watcher: ServiceWatcher | None = None

    def start(self) -> None:
        """Announce (no probe: about a millisecond) and start watching for peers."""
        if self._registration is not None:
            return
        zc = shared_zeroconf(self.interface)
        registration = Registration(zc, self.info)
        registration.register()
        self._registration = registration
        self._watcher = ServiceWatcher(zc, NODE_SERVICE_TYPE, node_record).start()
        logger.info("announced node %s of cluster %s on %s", self.node, self.cluster,
                    self.address)

    def peers(self) -> list[dict[str, Any]]:
        """Other nodes of this cluster seen so far (a crashed one may linger: see the store)."""
        if self._watcher is None:
            return []
        return [n for n in self._watcher.snapshot()
                if n["cluster"] == self.cluster and n["node"] != self.node]

    def wait_for_peer(self, node: str, timeout: float) -> dict[str, Any] | None:
        if self._watcher is None:
            return None
        return self._watcher.wait_for(
            lambda records: next((r for r in records if r["cluster"] == self.cluster
                                  and r["node"] == node), None), timeout)

    def close(self) -> None:
        """Withdraw with goodbye packets; idempotent, never raises (it runs at stop)."""
        registration, self._registration = self._registration, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        if registration is None:
            return
        try:
            registration.withdraw()
        except DiscoveryError as exc:
            logger.warning("withdrawing node %s: %s", self.node, exc)

    def __enter__(self) -> NodeAnnouncer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- hacluster discover --------------------------------------------------------------------------


def _check_interface(_ctx: Any, _param: Any, value: str) -> str:
    try:
        return resolve_interface(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _fail(message: str, code: int) -> None:
    click.echo(f"hacluster: error: {message}", err=True)
    raise SystemExit(code)


def group_by_cluster(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    clusters: dict[str, list[dict[str, Any]]] = {}
    for n in nodes:
        clusters.setdefault(n["cluster"], []).append(
            {"name": n["node"], "address": n["address"], "port": n["port"],
             "store": n["store"], "format": n["format"]})
    return [{"name": c, "nodes": clusters[c]} for c in sorted(clusters)]


@click.command("discover")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--timeout", type=click.FloatRange(min=0.05, max=60), default=DEFAULT_BROWSE_TIMEOUT,
              show_default=True, metavar="SECONDS", help="how long to listen for answers")
@click.option("--interface", default=DEFAULT_INTERFACE, show_default=True,
              envvar="HACLUSTER_INTERFACE", callback=_check_interface,
              help="IPv4 address or interface name to browse on, or 'all'")
def discover_command(as_json: bool, timeout: float, interface: str) -> None:
    """List the clusters, nodes and network names announced over zeroconf.

    A node that crashed may be listed for a long while: `hacluster status` says who is up.
    """
    try:
        zc = shared_zeroconf(interface)
        with ServiceWatcher(zc, NODE_SERVICE_TYPE, node_record) as nodes, \
                ServiceWatcher(zc, NETWORK_NAME_SERVICE_TYPE, network_name_record) as names:
            nodes.wait_for(lambda _records: False, timeout)  # listen for the whole window
            node_list, name_list = nodes.snapshot(), names.snapshot()
    except DiscoveryError as exc:
        _fail(str(exc), 1)
        return
    clusters = group_by_cluster(sorted(node_list, key=lambda n: (n["cluster"], n["node"])))
    network_names = [{k: n[k] for k in ("name", "node", "address", "port", "group", "cluster")}
                     for n in sorted(name_list, key=lambda n: n["name"])]
    if as_json:
        click.echo(json.dumps({"interface": interface, "clusters": clusters,
                               "network_names": network_names}))
        return
    if not clusters and not network_names:
        click.echo(f"no cluster answered on {interface} within {timeout:g} s; start a node "
                   "(hacluster node start NAME) or try --interface / --timeout")
        return
    for cluster in clusters:
        click.echo(f"cluster {cluster['name']}")
        for n in cluster["nodes"]:
            click.echo(f"  node {n['name']:<16} {n['address'] or '?':<15} store {n['store']}")
    if network_names:
        click.echo("network names")
        for n in network_names:
            click.echo(f"  {n['name']:<20} on {n['node']:<16} {n['address'] or '?'}")
