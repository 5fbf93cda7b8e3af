"""Cluster events: every state change becomes one readable sentence in the store's event log."""

from __future__ import annotations

import logging
from typing import Any

from shared_store import Store

logger = logging.getLogger(__name__)


def append(store: Store, kind: str, message: str, **where: Any) -> int:
    """Append ``{"kind", "message", "node"?, "group"?, "resource"?}``; ``seq`` and ``time`` are
    added by the store."""
    event: dict[str, Any] = {"kind": kind, "message": message}
    event.update({k: v for k, v in where.items() if v is not None})
    seq = store.append_event(event)
    logger.debug("event %d: %s", seq, message)
    return seq


def format_line(event: dict[str, Any]) -> str:
    """One human line: ``12:03:04.512  #42  group-failover  node1's lease expired; ...``."""
    time_text = str(event.get("time", ""))
    clock = time_text[11:23] if len(time_text) >= 23 else time_text
    seq = f"#{event.get('seq', '?')}"
    return f"{clock}  {seq:<6} {event.get('kind', ''):<22} {event.get('message', '')}"
