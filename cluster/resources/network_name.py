"""network-name: MSCS's Network Name resource, the client access point that moves with a group.

Online registers `<name>._hanotepad._tcp.local.` (host `<name>.local.`) pointing at this node's
address, with TXT node, name, address (and group, cluster when known); clients find the group
wherever it runs with `cluster.discovery.resolve_network_name`, then read the console port from
the store (`hacluster attach`). Offline and terminate withdraw it with goodbye packets, so
browsers drop it at once; after a crash the new owner's announcement replaces the records
(cache-flush). IsAlive asks the network, not a cache, whether the registration still answers.

Registration skips zeroconf's probe (~1.7 s): the store already made this node the only owner.
It runs inside the resource monitor, on that process's one shared Zeroconf instance.

The node's address comes from `HACLUSTER_ADDRESS` in the resource environment (default
127.0.0.1); property `address` overrides the announced address. UseNetworkName: an app in the
group sees the name in the environment variable `HACLUSTER_NETWORK_NAME` (set by the node service).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from typing import Any

from zeroconf import ServiceInfo

from cluster.discovery import (
    ALL_INTERFACES,
    DEFAULT_INTERFACE,
    NETWORK_NAME_SERVICE_TYPE,
    DiscoveryError,
    Registration,
    network_name_instance,
    query_responders,
    resolve_interface,
    resolve_network_name,
    shared_zeroconf,
    since_now,
    txt_properties,
)
from cluster.resources.base import ResourceContext, ResourceType, check_known, require

logger = logging.getLogger(__name__)

TYPE = "network-name"
ENV_VAR = "HACLUSTER_NETWORK_NAME"  # UseNetworkName: what the app sees
ADDRESS_ENV = "HACLUSTER_ADDRESS"  # the node's address, from the node service
CLUSTER_ENV = "HACLUSTER_CLUSTER"  # optional: announced in TXT when present
IS_ALIVE_TIMEOUT = 1.0  # s: a responder on the same host answers in about a millisecond

_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

__all__ = ["ENV_VAR", "TYPE", "NetworkName", "resolve_network_name"]


def _port(value: Any) -> int:
    """A port from an int or a string of digits; 0 means "not published yet"."""
    if isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and value.strip().isdigit():
        port = int(value.strip())
    else:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"{TYPE}: port must be a number 0..65535, not {value!r}")
    return port


class NetworkName(ResourceType):
    type_name = TYPE
    PROPS = ("name", "address", "port", "group")

    @classmethod
    def validate(cls, props: dict[str, Any]) -> dict[str, Any]:
        check_known(TYPE, props, cls.PROPS)
        name = require(TYPE, props, "name", "name=notepad")
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            raise ValueError(f"{TYPE}: name {name!r} must be one DNS label: letters, digits and "
                             "'-', at most 63, not starting or ending with '-' (e.g. notepad)")
        out: dict[str, Any] = {"name": name, "port": _port(props.get("port", 0))}
        address = props.get("address")
        if address is not None and address != "":
            try:
                parsed = ipaddress.ip_address(address) if isinstance(address, str) else None
            except ValueError:
                parsed = None
            if parsed is None or parsed.version != 4 or parsed.is_unspecified:
                raise ValueError(f"{TYPE}: address must be an IPv4 address such as 127.0.0.1, "
                                 f"not {address!r}; leave it out to use the node's address")
            out["address"] = str(parsed)
        group = props.get("group")
        if group is not None and group != "":
            if not isinstance(group, str) or not group.strip():
                raise ValueError(f"{TYPE}: group must be a group name, not {group!r}")
            out["group"] = group
        return out

    def __init__(self, name: str, props: dict[str, Any], ctx: ResourceContext) -> None:
        super().__init__(name, props, ctx)
        self.interface = ctx.env.get(ADDRESS_ENV) or DEFAULT_INTERFACE
        self.address: str = self.props.get("address") or self.interface
        self._registration: Registration | None = None
        self._since = since_now()

    @property
    def network_name(self) -> str:
        return self.props["name"]

    @property
    def instance(self) -> str:
        return network_name_instance(self.network_name)

    def _build_info(self, port: int) -> ServiceInfo:
        props = txt_properties({"node": self.ctx.node, "name": self.network_name,
                                "address": self.address, "group": self.props.get("group"),
                                "cluster": self.ctx.env.get(CLUSTER_ENV), "since": self._since})
        return ServiceInfo(NETWORK_NAME_SERVICE_TYPE, self.instance,
                           addresses=[socket.inet_aton(self.address)],
                           port=port, properties=props, server=f"{self.network_name}.local.")

    def online(self) -> None:
        if self.looks_alive():
            return
        try:
            zc = shared_zeroconf(self.interface)
        except DiscoveryError as exc:
            raise RuntimeError(f"network name {self.network_name}: {exc}") from None
        if "address" not in self.props:
            node_address = resolve_interface(self.interface)  # valid: zeroconf runs on it
            if node_address == ALL_INTERFACES:
                raise RuntimeError(f"network name {self.network_name}: the node's address "
                                   f"{self.interface} is a wildcard; give the node an address "
                                   "(--address HOST) or set property address")
            self.address = node_address
        self._since = since_now()
        info = self._build_info(self.props["port"])
        if zc.registry.async_get_info_name(info.key) is not None:
            raise RuntimeError(f"network name {self.network_name} is already registered on this "
                               "node by another resource; give each network-name its own name")
        registration = Registration(zc, info)
        try:
            registration.register()
        except DiscoveryError as exc:
            raise RuntimeError(f"network name {self.network_name}: {exc}") from None
        self._registration = registration
        logger.info("network name %s online at %s on %s", self.network_name, self.address,
                    self.ctx.node)

    def set_port(self, port: int) -> None:
        """Publish the port clients should use once it is known (browsers see an update)."""
        port = _port(port)
        self.props["port"] = port
        if self._registration is None or not self._registration.active:
            return
        self._registration.update(self._build_info(port))

    def _withdraw(self) -> None:
        registration, self._registration = self._registration, None
        if registration is None:
            return
        registration.withdraw()
        logger.info("network name %s offline on %s", self.network_name, self.ctx.node)

    def offline(self) -> None:
        """Withdraw with goodbye packets; a no-op when not online."""
        try:
            self._withdraw()
        except DiscoveryError as exc:
            raise RuntimeError(f"network name {self.network_name}: {exc}") from None

    def terminate(self) -> None:
        """As offline (a goodbye costs nothing), but never raises."""
        try:
            self._withdraw()
        except Exception as exc:  # terminate must not raise
            logger.warning("network name %s: withdrawing failed: %s", self.network_name, exc)

    def looks_alive(self) -> bool:
        return self._registration is not None and self._registration.active

    def is_alive(self) -> bool:
        """The registration answers a query sent over the network (not from a cache)."""
        if not self.looks_alive():
            return False
        answer = query_responders(self.instance, self.interface, IS_ALIVE_TIMEOUT)
        if answer is None:
            logger.warning("network name %s: no answer to a query within %g s",
                           self.network_name, IS_ALIVE_TIMEOUT)
            return False
        owner = answer["props"].get("node")
        if owner != self.ctx.node:
            logger.warning("network name %s: answered by node %s, not this node (%s)",
                           self.network_name, owner, self.ctx.node)
            return False
        return True

    def details(self) -> dict[str, Any]:
        return {"name": self.network_name, "address": self.address, "port": self.props["port"],
                "service": self.instance}
