"""The resource API of MSCS (Online, Offline, Terminate, LooksAlive, IsAlive) as a Python class.

Each resource type is one module with one `ResourceType` subclass, loaded by the resource monitor
through the `hacluster.resource_types` entry point group. The monitor creates a fresh instance for
every online attempt and treats an exception from any method as a failure of the resource.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cluster.console.server import ConsoleSettings

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class ResourceContext:
    """What a resource may know about where it runs; it never sees the store itself."""

    node: str
    local_dir: Path
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    # Called (from any thread) when the resource fails by itself: the event path, not a poll.
    report_failure: Callable[[str], None] = lambda reason: None
    # Where this node serves consoles of interactive apps (None: no console host).
    console: ConsoleSettings | None = None


class ResourceType(ABC):
    """Resource API of MSCS: Online, Offline, Terminate, LooksAlive, IsAlive.

    An exception from any method counts as failure. `terminate` must not raise for a resource
    that is already dead, and `offline` must be a no-op for one that was never online.
    """

    type_name: ClassVar[str]

    def __init__(self, name: str, props: dict[str, Any], ctx: ResourceContext) -> None:
        self.name = name
        self.props = type(self).validate(props)
        self.ctx = ctx

    @classmethod
    @abstractmethod
    def validate(cls, props: dict[str, Any]) -> dict[str, Any]:
        """Return normalised props or raise ValueError with one clear line.

        Called by the CLI with unresolved placeholders ({data}, {local}, {node}), so it checks
        shapes and values, never the filesystem. It must accept its own output (idempotent).
        """

    @abstractmethod
    def online(self) -> None:
        """Block until the resource is online, or raise."""

    @abstractmethod
    def offline(self) -> None:
        """Stop gracefully."""

    @abstractmethod
    def terminate(self) -> None:
        """Stop immediately; never raise for an already-dead resource."""

    @abstractmethod
    def looks_alive(self) -> bool:
        """Cheap check, called often."""

    @abstractmethod
    def is_alive(self) -> bool:
        """Thorough check, called rarely."""

    def pid(self) -> int | None:
        return None

    def pgid(self) -> int | None:
        """Process group the service must kill if the monitor dies."""
        return None

    def details(self) -> dict[str, Any]:
        """Extra status for the administrator (command, started_at, ...)."""
        return {}

    @classmethod
    def admin_panel(cls, spec: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, str]]:
        """Rows (label, value) for this type's page in ``hacluster admin`` (the extension
        pages of Cluster Administrator). Called by the dashboard, never on a node, so it must
        not block for long; an exception costs this section only.

        ``spec``: the resource's spec record plus ``name``, with placeholders resolved for
        the node that runs it. ``status``: its status record (``state``, ``pid``, ``details``
        ...) plus ``observed_at`` (the dashboard's clock) and, for checkpointed paths,
        ``checkpoints``: ``[{"path", "files", "bytes", "modified"}]`` held by the store.
        Default: the properties.
        """
        def text(value: Any) -> str:
            if isinstance(value, bool):
                return "yes" if value else "no"
            if isinstance(value, list | tuple):
                return " ".join(str(v) for v in value) or "-"
            if isinstance(value, dict):
                return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
            return "-" if value is None or value == "" else str(value)

        return [(str(key), text(value))
                for key, value in (spec.get("properties") or {}).items()]


# Helpers shared by the types' validate(): props arrive as TOML values or as strings from
# `--prop KEY=VALUE`, so each accepts both shapes and says what it expected.


def check_known(type_name: str, props: dict[str, Any], known: Iterable[str]) -> None:
    if not isinstance(props, dict):
        raise ValueError(f"{type_name}: properties must be a table of KEY = VALUE")
    known = list(known)
    unknown = sorted(set(props) - set(known))
    if unknown:
        raise ValueError(
            f"{type_name}: unknown property {unknown[0]!r}; known properties: {', '.join(known)}"
        )


def parse_bool(type_name: str, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{type_name}: {key} must be true or false, not {value!r}")


def parse_seconds(type_name: str, key: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{type_name}: {key} must be a number of seconds, not {value!r}") from None
    if isinstance(value, bool) or not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{type_name}: {key} must be a positive number of seconds, not {value!r}")
    return seconds


def parse_argv(type_name: str, key: str, value: Any) -> list[str]:
    """A command as a shell-like string (split with shlex) or a list of strings."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"{type_name}: cannot parse {key} {value!r}: {exc}") from None
    elif isinstance(value, list | tuple) and all(isinstance(a, str) for a in value):
        argv = list(value)
    else:
        raise ValueError(f"{type_name}: {key} must be a string or a list of strings")
    if not argv or not argv[0]:
        raise ValueError(f"{type_name}: {key} is empty; give the program to run")
    return argv


def require(type_name: str, props: dict[str, Any], key: str, example: str) -> Any:
    value = props.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{type_name}: property {key!r} is required (e.g. --prop {example})")
    return value
