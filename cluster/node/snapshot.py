"""Read the store once into an immutable ``Snapshot`` for one tick of decisions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cluster.model import (
    GroupSpec,
    GroupStatus,
    LocalResource,
    ModelError,
    NodeSpec,
    NodeStatus,
    ResourceSpec,
    ResourceStatus,
    Snapshot,
)
from shared_store import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _parse(store: Store, prefix: str, parser: Callable[[str, Any, int], T],
           problems: list[str]) -> dict[str, T]:
    items: dict[str, T] = {}
    for record in store.list(prefix):
        name = record.key.rsplit("/", 1)[-1]
        try:
            items[name] = parser(name, record.value, record.version)
        except ModelError as exc:
            problems.append(str(exc))
    return items


def read_snapshot(store: Store, local: Mapping[str, LocalResource] | None = None,
                  problems: list[str] | None = None) -> Snapshot:
    """A record that does not fit the model is left out and reported in ``problems``; a group
    whose spec or status does not fit is left out entirely, so nobody acts on half a picture.
    A record the store cannot read at all (torn JSON) raises StoreError: the tick is skipped."""
    found: list[str] = [] if problems is None else problems
    groups = _parse(store, "spec/groups", GroupSpec.from_record, found)
    group_status = _parse(store, "status/groups", GroupStatus.from_record, found)
    resources = _parse(store, "spec/resources", ResourceSpec.from_record, found)
    bad_groups = {p.split(":", 1)[0].rsplit("/", 1)[-1] for p in found
                  if p.startswith(("spec/groups/", "status/groups/"))}
    for name in bad_groups:
        groups.pop(name, None)
    return Snapshot(
        cluster=store.name,
        lease_ttl=float(store.settings.get("lease_ttl", 2.0)),
        node_specs=_parse(store, "spec/nodes", NodeSpec.from_record, found),
        nodes=_parse(store, "status/nodes", NodeStatus.from_record, found),
        groups=groups,
        group_status=group_status,
        resources={n: r for n, r in resources.items() if r.group in groups},
        resource_status=_parse(store, "status/resources", ResourceStatus.from_record, found),
        local=dict(local or {}),
    )
