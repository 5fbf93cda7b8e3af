"""Zeroconf discovery: nodes announce themselves; clients find clusters, nodes and network names.

Zeroconf serves discovery and addressing, never liveness (NOTES.md "zeroconf"): a SIGKILLed
announcer lingers in browsers' caches for ~1,125 s, so whether a node is up comes from its store
lease. What follows was measured with zeroconf 0.154 on loopback:

- One Zeroconf instance per process (`shared_zeroconf`), on loopback unless told otherwise. It
  listens on 0.0.0.0:5353 whatever the interface, but sends only on the chosen one.
- Registrations skip the ~1.7 s probe (`cooperating_responders`) and do not wait for the
  repeated announcements: a network name coming online during a failover pays for neither.
  Names are unique by construction, since the store decides who owns a group.
- Browsers drop a packet identical to one seen in the past 0.8 s, so each registration carries
  TXT `since` and never repeats the previous one's bytes. A withdrawal drops the answers still
  queued and sends its goodbyes within 50 ms: nothing of an old owner follows its goodbye, or
  the next owner's announcement.
- Passive watchers (`ServiceWatcher`, an announcer's peers) ask QM questions: processes on one
  host share port 5353 through SO_REUSEPORT, and a unicast answer to port 5353 reaches only one
  of them, maybe not the asker.
- One-shot questions (`hacluster discover`, `resolve_network_name`, IsAlive) ask the live
  responders from an ephemeral port ("legacy unicast"): answered at once and straight back,
  where multicast answers wait up to a second, never from a cache that may still hold an owner
  that crashed, and without starting a Zeroconf instance.

TXT records carry names, a store location (without credentials), a format version and `since`,
never a secret.
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
    _TYPE_PTR,
    _TYPE_SRV,
    _TYPE_TXT,
)

logger = logging.getLogger(__name__)

NODE_SERVICE_TYPE = "_hacluster._tcp.local."
NETWORK_NAME_SERVICE_TYPE = "_hanotepad._tcp.local."
FORMAT_VERSION = 1
DEFAULT_INTERFACE = "127.0.0.1"
ALL_INTERFACES = "all"
DEFAULT_BROWSE_TIMEOUT = 2.0  # s: answers come at once, but a busy machine may be slow
LOOP_TIMEOUT = 5.0  # s: a zeroconf loop call that takes longer is stuck
RESOLVE_RECORD_TIMEOUT = 1.0  # s: resolving one browsed service whose records are not cached
TXT_STRING_MAX = 255  # bytes per key=value string (RFC 6763 6.1)
GOODBYES = 3  # goodbye packets per withdrawal, against a lost packet
GOODBYE_INTERVAL = 0.025  # s: all sent before withdraw() returns, see Registration

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
    """One service this process announces: announced without waiting, withdrawn quickly.

    Registering starts ~0.45 s of repeated announcements in the background; an update or a
    withdrawal cancels the repeats still due, or a quick online-offline would announce the
    service again after its goodbye and browsers would see a ghost. The goodbyes all go out
    within ~50 ms, before withdraw() returns (zeroconf's own spread over 250 ms): a trailing
    goodbye would otherwise follow the next owner's announcement and erase it from browsers,
    which then drop that owner's repeats as duplicate packets.
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
        if not self.active:
            return
        self._drop_queued_answers()
        info = self.info
        self.zc.registry.async_remove(info)
        # Address records stay if another registration of this process uses the same host.
        shares_host = bool(self.zc.registry.async_get_infos_server(info.server_key or ""))
        goodbye = self.zc.generate_service_broadcast(info, 0, not shares_host)
        for i in range(GOODBYES):
            if i:
                await asyncio.sleep(GOODBYE_INTERVAL)
            self.zc.async_send(goodbye)

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
        """Send the goodbye packets (~50 ms) and return. A no-op when not registered."""
        _run(self.zc, self._withdraw(), f"withdraw {self.info.name}")


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


def since_now() -> str:
    """TXT `since`: when this registration began, to the microsecond. Besides telling when an
    owner came online, it makes each registration's packets differ from the last one's:
    browsers drop a packet identical to one seen in the past 0.8 s, and an owner's new
    announcement, or its goodbye, must never look like the previous registration's."""
    return f"{time.time():.6f}"


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


def info_details(info: ServiceInfo) -> dict[str, Any]:
    """A resolved ServiceInfo in the shape `query_responders` gives: instance, props, port,
    server, address."""
    props = {k: v or "" for k, v in info.decoded_properties.items()}
    addresses = info.parsed_addresses()
    return {"instance": info.name, "props": props, "port": info.port,
            "server": info.server.lower() if info.server else None,
            "address": addresses[0] if addresses else props.get("address") or None}


def node_record(details: dict[str, Any]) -> dict[str, Any] | None:
    """A node: cluster, node, store, format, address, port, instance; None if not one of ours."""
    props = details["props"]
    if not props.get("cluster") or not props.get("node"):
        return None
    fmt = props.get("format", "")
    return {"cluster": props["cluster"], "node": props["node"], "store": props.get("store"),
            "format": int(fmt) if fmt.isdigit() else None, "address": details["address"],
            "port": details["port"], "instance": details["instance"]}


def network_name_record(details: dict[str, Any]) -> dict[str, Any] | None:
    """A network name: name, node (the owner), address, port, group, cluster, instance."""
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
                 parse: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
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
            if zeroconf.cache.current_entry_with_name_and_alias(service_type, name) is None:
                # Gone already: the browser reports one change per name per batch and lets a
                # pending Added hide a Removed (a goodbye right after an announcement).
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
        record = self._parse(info_details(info))
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


def _legacy_query(questions: list[DNSQuestion], interface: str, timeout: float,
                  until: Callable[[DNSIncoming], bool]) -> None:
    """Send one query from an ephemeral port (RFC 6762 6.7 "legacy unicast") and feed each
    response to `until` until it returns True or `timeout` passes.

    Responders answer such a query at once and straight to the asking socket, where a multicast
    answer may wait up to a second (aggregation, and the one-second rule after an announcement);
    it needs no Zeroconf instance (a fresh client saves the ~0.3 s of starting one), and only
    live responders answer: no cache can hold an owner that crashed.
    Raises DiscoveryError for a socket error or an unusable interface.
    """
    try:
        address = resolve_interface(interface)
    except ValueError as exc:
        raise DiscoveryError(str(exc)) from None
    query_id = random.randint(1, 0xFFFF)
    out = DNSOutgoing(_FLAGS_QR_QUERY, multicast=False, id_=query_id)
    for question in questions:
        out.add_question(question)
    if address == ALL_INTERFACES:
        bind_to, send_on = "", sorted({a for addrs in _host_ipv4_addresses().values()
                                       for a in addrs})
    else:
        bind_to, send_on = address, [address]
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.bind((bind_to, 0))
            for source_address in send_on:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                socket.inet_aton(source_address))
                for packet in out.packets():
                    sock.sendto(packet, (_MDNS_ADDR, _MDNS_PORT))
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                try:
                    data, source = sock.recvfrom(9000)
                except TimeoutError:
                    return
                incoming = DNSIncoming(data, source)
                if (incoming.valid and incoming.is_response() and incoming.id == query_id
                        and until(incoming)):
                    return
    except OSError as exc:
        raise DiscoveryError(f"cannot query zeroconf on {address}: "
                             f"{exc.strerror or exc}") from None


class _Answers:
    """Records gathered from responses: TXT and SRV by instance, A by host, PTR by type."""

    def __init__(self) -> None:
        self.txt: dict[str, dict[str, str]] = {}
        self.srv: dict[str, tuple[int, str]] = {}
        self.hosts: dict[str, list[str]] = {}
        self.instances: dict[str, dict[str, str]] = {}  # type -> lower-case instance -> name

    def add(self, incoming: DNSIncoming, service_types: tuple[str, ...] = ()) -> None:
        for record in incoming.answers():
            key = record.name.lower()
            if record.ttl == 0:
                continue  # a goodbye
            if isinstance(record, DNSText):
                self.txt[key] = _parse_txt(record.text)
            elif isinstance(record, DNSService):
                self.srv[key] = (record.port, record.server.lower())
            elif isinstance(record, DNSAddress) and record.type == _TYPE_A:
                self.hosts.setdefault(key, []).append(socket.inet_ntoa(record.address))
            elif isinstance(record, DNSPointer) and key in service_types:
                self.instances.setdefault(key, {})[record.alias.lower()] = record.alias

    def details(self, instance: str) -> dict[str, Any] | None:
        """{instance, props, port, server, address} of an instance whose TXT arrived."""
        key = instance.lower()
        if key not in self.txt:
            return None
        props = self.txt[key]
        port, server = self.srv.get(key, (None, None))
        address = (self.hosts.get(server or "") or [None])[0] or props.get("address") or None
        return {"instance": instance, "props": props, "port": port, "server": server,
                "address": address}


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


def query_responders(instance: str, interface: str = DEFAULT_INTERFACE,
                     timeout: float = 1.0) -> dict[str, Any] | None:
    """Ask the live responders, not any cache, about one service instance: the first answer
    as {instance, props (the TXT), port, server, address}, or None within `timeout`."""
    found: list[dict[str, Any]] = []

    def first_answer(incoming: DNSIncoming) -> bool:
        answers = _Answers()
        answers.add(incoming)
        details = answers.details(instance)
        if details is not None:
            found.append(details)
        return bool(found)

    _legacy_query([DNSQuestion(instance, _TYPE_SRV, _CLASS_IN),
                   DNSQuestion(instance, _TYPE_TXT, _CLASS_IN)], interface, timeout, first_answer)
    return found[0] if found else None


def query_service_types(service_types: list[str], interface: str = DEFAULT_INTERFACE,
                        timeout: float = DEFAULT_BROWSE_TIMEOUT) -> dict[str, list[dict[str, Any]]]:
    """Every live instance of each service type that answers within `timeout`, in one query
    (the whole window is waited for: nobody knows how many will answer), as
    `query_responders` details by type."""
    types = tuple(t.lower() for t in service_types)
    answers = _Answers()

    def gather(incoming: DNSIncoming) -> bool:
        answers.add(incoming, types)
        return False

    _legacy_query([DNSQuestion(t, _TYPE_PTR, _CLASS_IN) for t in service_types], interface,
                  timeout, gather)
    found: dict[str, list[dict[str, Any]]] = {}
    for service_type, key in zip(service_types, types, strict=True):
        details = (answers.details(i) for i in answers.instances.get(key, {}).values())
        found[service_type] = [d for d in details if d is not None]
    return found


def _nodes(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    nodes = [n for d in found if (n := node_record(d)) is not None]
    return sorted(nodes, key=lambda n: (n["cluster"], n["node"]))


def _network_names(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = [n for d in found if (n := network_name_record(d)) is not None]
    return sorted(names, key=lambda n: n["name"])


def browse_nodes(timeout: float = DEFAULT_BROWSE_TIMEOUT, interface: str = DEFAULT_INTERFACE,
                 cluster: str | None = None) -> list[dict[str, Any]]:
    """Live nodes that answer within `timeout` seconds (optionally of one cluster), sorted by
    cluster and node. Whether a node is *up* is still the store's business."""
    found = query_service_types([NODE_SERVICE_TYPE], interface, timeout)[NODE_SERVICE_TYPE]
    return [n for n in _nodes(found) if cluster is None or n["cluster"] == cluster]


def browse_network_names(timeout: float = DEFAULT_BROWSE_TIMEOUT,
                         interface: str = DEFAULT_INTERFACE) -> list[dict[str, Any]]:
    """Network names whose owners answer within `timeout` seconds, sorted by name."""
    service_type = NETWORK_NAME_SERVICE_TYPE
    return _network_names(query_service_types([service_type], interface, timeout)[service_type])


def network_name_instance(name: str) -> str:
    return f"{name}.{NETWORK_NAME_SERVICE_TYPE}"


def resolve_network_name(name: str, timeout: float = 2.0,
                         interface: str = DEFAULT_INTERFACE) -> dict[str, Any] | None:
    """Where a network name points now: {name, node, address, port, group, cluster, instance},
    or None if no live owner answered within `timeout` seconds. Asks the owner directly
    (`query_responders`): about a millisecond on one host, and never a stale cache entry of an
    owner that crashed. Raises DiscoveryError for an unusable interface."""
    details = query_responders(network_name_instance(name), interface, timeout)
    return network_name_record(details) if details is not None else None


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
        self.store = public_store_url(store_url)
        self.port = port
        self.info = self._build_info()
        self._registration: Registration | None = None
        self._watcher: ServiceWatcher | None = None

    def _build_info(self) -> ServiceInfo:
        props = txt_properties({"cluster": self.cluster, "node": self.node, "store": self.store,
                                "format": str(FORMAT_VERSION), "since": since_now()})
        node, cluster = label(self.node), label(self.cluster)
        return ServiceInfo(NODE_SERVICE_TYPE, f"{node}.{cluster}.{NODE_SERVICE_TYPE}",
                           addresses=[socket.inet_aton(self.address)], port=self.port,
                           properties=props, server=f"{node}-{cluster}.local.")

    def start(self) -> None:
        """Announce (no probe: about a millisecond) and start watching for peers."""
        if self._registration is not None:
            return
        zc = shared_zeroconf(self.interface)
        self.info = self._build_info()
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
    """List the clusters, nodes and network names whose announcers answer over zeroconf.

    Only live announcers answer; whether a node is up in its cluster is `hacluster status`.
    """
    try:
        found = query_service_types([NODE_SERVICE_TYPE, NETWORK_NAME_SERVICE_TYPE], interface,
                                    timeout)
    except DiscoveryError as exc:
        _fail(str(exc), 1)
        return
    clusters = group_by_cluster(_nodes(found[NODE_SERVICE_TYPE]))
    network_names = [{k: n[k] for k in ("name", "node", "address", "port", "group", "cluster")}
                     for n in _network_names(found[NETWORK_NAME_SERVICE_TYPE])]
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
