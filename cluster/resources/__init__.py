"""Resource types, found through the `hacluster.resource_types` entry point group.

Third-party types plug in the way resource DLLs did in MSCS: a distribution declares an entry
point `name = "module:Class"` and the monitor and the CLI find it by name.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from cluster.resources.base import ResourceContext, ResourceType

logger = logging.getLogger(__name__)

GROUP = "hacluster.resource_types"

__all__ = [
    "GROUP",
    "ResourceContext",
    "ResourceType",
    "UnknownResourceType",
    "get_type",
    "load_types",
]


class UnknownResourceType(KeyError):
    """No resource type by that name; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown resource type"


@cache
def load_types() -> dict[str, type[ResourceType]]:
    """All installed resource types by name. A type that fails to import is logged and skipped."""
    types: dict[str, type[ResourceType]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in must not hide the others
            logger.error("cannot load resource type %s (%s): %s", ep.name, ep.value, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, ResourceType)):
            logger.error("resource type %s (%s) is not a ResourceType subclass", ep.name, ep.value)
            continue
        types[ep.name] = cls
    return types


def get_type(name: str) -> type[ResourceType]:
    types = load_types()
    try:
        return types[name]
    except KeyError:
        known = ", ".join(sorted(types)) or "none installed"
        raise UnknownResourceType(
            f"unknown resource type {name!r}; known types: {known}"
        ) from None
