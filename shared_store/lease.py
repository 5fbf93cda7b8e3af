"""Ownership leases with fencing epochs, built only on get and compare-and-swap put.

Backend-independent on purpose: the same code fences nodes on every backend. The clock is a
parameter (wall-clock seconds; ``time.time()`` in production) so that tests move time instead
of sleeping (as kazoo's lease recipe takes ``utcnow``). Whether a lease is valid is derived from
``expires_at`` and the clock, never stored.

Record value: ``{"holder", "epoch", "expires_at", "acquired_at", **extra}``. ``epoch`` grows by
one on every acquisition, also when the same holder re-acquires, so that anything stamped with
an older epoch can be recognised as stale.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from shared_store.base import Record, Store
from shared_store.errors import Conflict, StoreError

logger = logging.getLogger(__name__)

LEASE_FIELDS = frozenset({"holder", "epoch", "expires_at", "acquired_at"})


@dataclass(frozen=True)
class Lease:
    """A lease as its holder last wrote it; ``version`` is the record version for CAS."""

    key: str
    holder: str | None
    epoch: int
    expires_at: float
    version: int
    extra: dict = field(default_factory=dict)
    acquired_at: float = 0.0

    def is_valid(self, now: float) -> bool:
        """Held by someone and not yet expired at ``now``."""
        return self.holder is not None and self.expires_at > now

    @classmethod
    def from_record(cls, record: Record) -> Lease:
        """Parse a lease record; StoreError naming the key if it is not one."""
        value = record.value
        if not isinstance(value, dict):
            raise _malformed(record.key, f"expected an object, found {type(value).__name__}")
        holder, epoch = value.get("holder"), value.get("epoch")
        expires_at, acquired_at = value.get("expires_at"), value.get("acquired_at", 0.0)
        if holder is not None and not isinstance(holder, str):
            raise _malformed(record.key, f"holder {holder!r} is not a string or null")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise _malformed(record.key, f"epoch {epoch!r} is not a whole number >= 0")
        for name, number in (("expires_at", expires_at), ("acquired_at", acquired_at)):
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise _malformed(record.key, f"{name} {number!r} is not a number")
        extra = {k: v for k, v in value.items() if k not in LEASE_FIELDS}
        return cls(record.key, holder, epoch, float(expires_at), record.version, extra,
                   float(acquired_at))


def _malformed(key: str, why: str) -> StoreError:
    return StoreError(
        f"lease record {key!r} is malformed ({why}); fix it by hand or delete it so that it "
        f"can be acquired afresh"
    )


def read_lease(store: Store, key: str) -> Lease | None:
    """The lease at ``key`` as stored, or None if there is none."""
    record = store.get(key)
    return None if record is None else Lease.from_record(record)


def _check_args(holder: object, ttl: object, now: object, extra: object) -> dict:
    if not isinstance(holder, str) or not holder:
        raise StoreError(f"invalid lease holder {holder!r}: use a non-empty name")
    for name, number in (("ttl", ttl), ("now", now)):
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(
            number
        ):
            raise StoreError(f"invalid lease {name} {number!r}: use a number of seconds")
    if isinstance(ttl, int | float) and ttl <= 0:
        raise StoreError(f"invalid lease ttl {ttl!r}: use a number of seconds > 0")
    if extra is None:
        return {}
    if not isinstance(extra, dict):
        raise StoreError(f"invalid lease extra {extra!r}: pass a dict")
    clash = LEASE_FIELDS.intersection(extra)
    if clash:
        raise StoreError(
            f"lease extra must not set {sorted(clash)}: the lease functions own those fields"
        )
    return dict(extra)


def _value(holder: str | None, epoch: int, expires_at: float, acquired_at: float,
           extra: dict) -> dict[str, Any]:
    return {**extra, "holder": holder, "epoch": epoch, "expires_at": expires_at,
            "acquired_at": acquired_at}


def acquire_lease(
    store: Store, key: str, holder: str, ttl: float, now: float, extra: dict | None = None
) -> Lease:
    """Take the lease if it is absent, released, expired, or already ours; else Conflict.

    Every acquisition bumps the epoch, re-acquisition by the same holder included.
    """
    extra = _check_args(holder, ttl, now, extra)
    record = store.get(key)
    if record is None:
        epoch, expect_version = 1, 0
    else:
        current = Lease.from_record(record)
        if current.holder not in (None, holder) and current.expires_at > now:
            raise Conflict(
                f"lease {key!r} is held by {current.holder!r} (epoch {current.epoch}) for "
                f"another {current.expires_at - now:.2f} s"
            )
        epoch, expect_version = current.epoch + 1, record.version
    expires_at = float(now + ttl)
    written = store.put(key, _value(holder, epoch, expires_at, float(now), extra),
                        expect_version=expect_version)
    logger.debug("%s acquired lease %s epoch %d", holder, key, epoch)
    return Lease(key, holder, epoch, expires_at, written.version, extra, float(now))


def renew_lease(
    store: Store, lease: Lease, ttl: float, now: float, extra: dict | None = None
) -> Lease:
    """Extend a lease we hold; Conflict if the record changed since, i.e. the lease is lost.

    ``extra=None`` keeps the lease's extra fields; a dict replaces them.
    """
    if lease.holder is None:
        raise StoreError(f"cannot renew lease {lease.key!r}: it was released; acquire it again")
    extra = lease.extra if extra is None else _check_args(lease.holder, ttl, now, extra)
    _check_args(lease.holder, ttl, now, None)
    record = store.get(lease.key)
    if record is None or record.version != lease.version:
        found = "deleted" if record is None else f"now at version {record.version}"
        raise Conflict(
            f"lease {lease.key!r} was lost: expected version {lease.version}, {found}"
        )
    acquired_at = Lease.from_record(record).acquired_at
    expires_at = float(now + ttl)
    value = _value(lease.holder, lease.epoch, expires_at, acquired_at, extra)
    written = store.put(lease.key, value, expect_version=lease.version)
    return Lease(lease.key, lease.holder, lease.epoch, expires_at, written.version, dict(extra),
                 acquired_at)


def release_lease(store: Store, lease: Lease, extra: dict | None = None) -> bool:
    """Give the lease up (holder None, expires_at 0, epoch kept); False if it was lost already.

    ``extra=None`` keeps the lease's extra fields; a dict replaces them.
    """
    if extra is not None:
        extra = _check_args(lease.holder or "released", 1, 0, extra)
    else:
        extra = lease.extra
    record = store.get(lease.key)
    if record is None or record.version != lease.version:
        return False
    value = _value(None, lease.epoch, 0.0, Lease.from_record(record).acquired_at, extra)
    try:
        store.put(lease.key, value, expect_version=lease.version)
    except Conflict:
        return False
    return True
