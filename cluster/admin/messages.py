"""Messages from the store follower and the action workers to the dashboard (dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from cluster.admin.mirror import ClusterView


@dataclass
class ViewChanged(Message):
    """The cluster as of now; a newer one supersedes any not yet handled."""

    view: ClusterView

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ViewChanged)


@dataclass
class EventsArrived(Message):
    """New events, oldest first (never coalesced: each batch is new)."""

    events: list[dict[str, Any]]


@dataclass
class StoreHealth(Message):
    """The store became unreachable (``problem``) or is back (None)."""

    problem: str | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StoreHealth)


@dataclass
class ActionDone(Message):
    """An administrator action finished: what the CLI would have printed, or its error."""

    text: str
    ok: bool
