"""The Store interface that every backend implements, and the records and changes it returns.

Public methods validate their input and wrap private abstract ones (``_get``, ``_put`` ...), so a
backend only implements storage; key syntax, JSON checks, retries and event waiting live here
once, and the contract test suite holds every backend to the same behaviour.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from shared_store.errors import Conflict, StoreError
from shared_store.keys import (
    EVENTS,
    under_prefix,
    validate_key,
    validate_prefix,
    validate_writable,
)

logger = logging.getLogger(__name__)

#: Events kept by default; settings["event_retention"] overrides it (tests use small numbers).
DEFAULT_EVENT_RETENTION = 10_000


@dataclass(frozen=True)
class Record:
    """One stored value. ``version`` starts at 1 and grows by 1 on every put of the key.

    A delete forgets the version: a key created again starts over at 1.
    """

    key: str
    value: Any
    version: int


@dataclass(frozen=True)
class Change:
    """A key under a watched prefix changed; ``kind`` is "put" or "delete".

    Changes say *that* a key changed, not to what: read the store for the current value
    (level-triggered, so that a missed or coalesced change can never leave a reader stale).
    """

    key: str
    kind: str


class Watch:
    """Changes under one prefix, buffered until ``wait()`` takes them. Thread-safe.

    Changes that arrive between two ``wait()`` calls are kept, and several changes of one key
    coalesce into one entry holding the latest kind. Backends feed it with ``_deliver``.
    """

    def __init__(self, prefix: str, on_close: Callable[[Watch], None] | None = None) -> None:
        self.prefix = prefix
        self._cond = threading.Condition()
        self._pending: dict[str, str] = {}
        self._closed = False
        self._error: StoreError | None = None
        self._on_close = on_close

    def wait(self, timeout: float | None) -> list[Change]:
        """Block until at least one change or ``timeout`` seconds; ``[]`` on timeout.

        A wait that ``close()`` interrupts returns ``[]``; waiting on a closed watch raises
        StoreError. If the backend can no longer see changes (directory removed), the pending
        changes are returned first and the next call raises that error.
        """
        with self._cond:
            if self._closed and not self._pending:
                raise StoreError(f"the watch on {self.prefix!r} is closed; open a new one")
            if timeout is None:
                self._cond.wait_for(self._ready)
            else:
                self._cond.wait_for(self._ready, max(0.0, timeout))
            if self._pending:
                changes = [Change(key, kind) for key, kind in self._pending.items()]
                self._pending.clear()
                return changes
            if self._error is not None and not self._closed:
                raise self._error
            return []

    def _ready(self) -> bool:
        return bool(self._pending) or self._closed or self._error is not None

    def close(self) -> None:
        """Stop receiving changes and wake any thread blocked in ``wait()``."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        if self._on_close is not None:
            self._on_close(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def _deliver(self, changes: Iterable[Change]) -> None:
        """Buffer the changes under this watch's prefix (called by the backend's thread)."""
        with self._cond:
            if self._closed:
                return
            added = False
            for change in changes:
                if under_prefix(change.key, self.prefix):
                    self._pending.pop(change.key, None)  # re-insert: latest kind, latest order
                    self._pending[change.key] = change.kind
                    added = True
            if added:
                self._cond.notify_all()

    def _fail(self, error: StoreError) -> None:
        """The backend can no longer report changes; waiters get ``error``."""
        with self._cond:
            if self._error is None:
                self._error = error
                self._cond.notify_all()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def normalize_json(value: Any, what: str) -> Any:
    """Return ``value`` as it will read back from the store (tuples become lists ...)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not storable as JSON ({exc}); pass dicts, lists, "
                         f"strings, finite numbers, booleans or None") from None


def _check_version(expect_version: object) -> int | None:
    if expect_version is None:
        return None
    if isinstance(expect_version, bool) or not isinstance(expect_version, int) or (
        expect_version < 0
    ):
        raise StoreError(
            f"invalid expect_version {expect_version!r}: use None (unconditional), "
            f"0 (create-only) or the version you read"
        )
    return expect_version


def utc_now_iso() -> str:
    """Current time as ISO 8601 in UTC with milliseconds, e.g. 2025-01-01T12:00:00.123+00:00."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store(ABC):
    """The cluster database: versioned JSON records under ``/``-separated keys.

    Atomicity, which the cluster layer relies on:

    - each ``put`` and ``delete`` is atomic: a reader sees the old record or the new one, never
      a mix, and a writer killed mid-write leaves the old record intact;
    - ``put(key, value, expect_version=N)`` is a compare-and-swap: it writes only if the record's
      version is still N, else raises Conflict; ``expect_version=0`` is create-only;
    - ``delete(key, expect_version=N)`` is a compare-and-delete;
    - ``append_event`` assigns a sequence number unique and increasing across all processes;
    - ``update`` is a read-modify-write made safe by CAS retries.

    Reads (get, list, events) take no lock. Unreachable storage raises StoreUnavailable.
    """

    name: str
    settings: dict
    data_dir: Path
    checkpoints_dir: Path
    url: str

    def __init__(self) -> None:
        self._closed = False

    # -- records -------------------------------------------------------------------------

    def get(self, key: str) -> Record | None:
        """The record at ``key``, or None if there is none."""
        self._check_open()
        return self._get(validate_key(key))

    def put(self, key: str, value: Any, expect_version: int | None = None) -> Record:
        """Write ``value``; None: unconditional, 0: create-only, N: only if still at version N."""
        self._check_open()
        validate_writable(validate_key(key))
        expected = _check_version(expect_version)
        return self._put(key, normalize_json(value, f"the value for {key!r}"), expected)

    def delete(self, key: str, expect_version: int | None = None) -> bool:
        """Remove ``key``; False if it was absent. With expect_version, Conflict on mismatch."""
        self._check_open()
        validate_writable(validate_key(key))
        return self._delete(key, _check_version(expect_version))

    def list(self, prefix: str) -> list[Record]:
        """Records whose key is ``prefix`` or starts with ``prefix + '/'``, sorted by key."""
        self._check_open()
        return self._list(validate_prefix(prefix))

    def watch(self, prefix: str) -> Watch:
        """Changes under ``prefix`` made by any process, from now on. Close it when done."""
        self._check_open()
        return self._watch(validate_prefix(prefix))

    def update(
        self, key: str, fn: Callable[[Any | None], Any], retries: int = 50
    ) -> Record:
        """Read-modify-write: store ``fn(current value or None)`` with CAS, retrying on races.

        ``fn`` may run several times, so it must not have side effects. Raises Conflict when
        ``retries`` attempts all lost their race.
        """
        for attempt in range(max(1, retries)):
            current = self.get(key)
            new_value = fn(None if current is None else current.value)
            try:
                return self.put(key, new_value, current.version if current else 0)
            except Conflict:
                # Back off a little so that contending writers spread out.
                time.sleep(min(0.05, 0.0005 * (attempt + 1)))
        raise Conflict(f"update of {key!r} lost {retries} compare-and-swap races in a row; "
                       f"retry later or reduce contention on this key")

    # -- events --------------------------------------------------------------------------

    def append_event(self, event: dict) -> int:
        """Add ``event`` to the log; returns its ``seq``. Adds ``time`` (UTC) if absent."""
        self._check_open()
        if not isinstance(event, dict):
            raise StoreError(f"an event must be a dict, got {type(event).__name__}")
        stored = dict(event)
        stored.pop("seq", None)  # the store assigns it
        stored.setdefault("time", utc_now_iso())
        return self._append_event(normalize_json(stored, "the event"))

    def events(self, since: int = 0, limit: int | None = None) -> list[dict]:
        """Events with ``seq > since``, oldest first, at most ``limit`` of them."""
        self._check_open()
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise StoreError(f"invalid since={since!r}: use 0 or a seq returned earlier")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise StoreError(f"invalid limit={limit!r}: use None or a count >= 0")
        return self._events(since, limit)

    def wait_events(self, since: int, timeout: float) -> list[dict]:
        """Like ``events(since)``, but waits up to ``timeout`` seconds for the first new one."""
        if not isinstance(timeout, int | float) or not math.isfinite(timeout):
            raise StoreError(f"invalid timeout={timeout!r}: use a number of seconds")
        deadline = time.monotonic() + timeout
        with self.watch(EVENTS) as watch:  # opened before reading: no change slips between
            while True:
                found = self.events(since)
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                watch.wait(remaining)

    @property
    def event_retention(self) -> int:
        """How many of the newest events the log keeps (settings["event_retention"])."""
        value = self.settings.get("event_retention", DEFAULT_EVENT_RETENTION)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise StoreError(
                f"invalid settings.event_retention {value!r} in the store's cluster settings; "
                f"use a whole number >= 1"
            )
        return value

    # -- misc ----------------------------------------------------------------------------

    def secret(self) -> bytes:
        """The cluster secret (32 random bytes) that authenticates console connections."""
        self._check_open()
        return self._secret()

    def close(self) -> None:
        """Release watches, threads and file handles. Further calls raise StoreError."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed; open it again with open_store()")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- what a backend implements (arguments already validated) ------------------------

    @abstractmethod
    def _get(self, key: str) -> Record | None: ...

    @abstractmethod
    def _put(self, key: str, value: Any, expect_version: int | None) -> Record: ...

    @abstractmethod
    def _delete(self, key: str, expect_version: int | None) -> bool: ...

    @abstractmethod
    def _list(self, prefix: str) -> list[Record]: ...

    @abstractmethod
    def _watch(self, prefix: str) -> Watch: ...

    @abstractmethod
    def _append_event(self, event: dict) -> int: ...

    @abstractmethod
    def _events(self, since: int, limit: int | None) -> list[dict]: ...

    @abstractmethod
    def _secret(self) -> bytes: ...

    @abstractmethod
    def _close(self) -> None: ...
