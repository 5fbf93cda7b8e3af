"""Key syntax, shared by every backend.

Keys map onto file names in the directory backend and onto etcd keys later, so they are kept
to a portable subset: ``/``-separated segments of ``[A-Za-z0-9._-]``.
"""

from __future__ import annotations

import re

from shared_store.errors import StoreError

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_SEGMENT = 200  # leaves room for ".<segment>.json.tmp-<pid>-<rand>" under NAME_MAX (255)
# First segments that hold raw files, not records.
RESERVED_TOP = frozenset({"data", "checkpoints"})
# Whole keys that would collide with the store's own files (cluster.json).
RESERVED_KEYS = frozenset({"cluster"})
EVENTS = "events"

_HOW = "use '/'-separated segments of letters, digits, '.', '_' or '-', e.g. 'spec/groups/notepad'"


def _check_segments(key: str, what: str) -> None:
    if key.startswith("/"):
        raise StoreError(f"invalid {what} {key!r}: it must not start with '/'; {_HOW}")
    for segment in key.split("/"):
        if not segment:
            raise StoreError(f"invalid {what} {key!r}: empty segment; {_HOW}")
        if not _SEGMENT.fullmatch(segment):
            raise StoreError(f"invalid {what} {key!r}: bad character in {segment!r}; {_HOW}")
        if segment.startswith("."):
            # Covers "." and "..", and keeps hidden temp and lock files out of the key space.
            raise StoreError(f"invalid {what} {key!r}: segment {segment!r} starts with '.'; {_HOW}")
        if segment.endswith(".json"):
            raise StoreError(
                f"invalid {what} {key!r}: segment {segment!r} ends in '.json' (the store adds it); "
                f"{_HOW}"
            )
        if len(segment) > MAX_SEGMENT:
            raise StoreError(
                f"invalid {what} {key!r}: segment longer than {MAX_SEGMENT} characters; {_HOW}"
            )


def validate_key(key: object) -> str:
    """Return ``key`` if it names a record, else raise StoreError saying how to write one."""
    if not isinstance(key, str):
        raise StoreError(f"invalid key {key!r}: keys are strings; {_HOW}")
    if not key:
        raise StoreError(f"invalid key '': empty; {_HOW}")
    _check_segments(key, "key")
    top = key.split("/", 1)[0]
    if top in RESERVED_TOP:
        raise StoreError(
            f"invalid key {key!r}: '{top}/' holds raw files, not records; "
            f"use the store's data_dir / checkpoints_dir paths for files"
        )
    if key in RESERVED_KEYS:
        raise StoreError(f"invalid key {key!r}: reserved for the store's own cluster.json")
    return key


def validate_prefix(prefix: object) -> str:
    """Like validate_key, but ``""`` (the whole store) is allowed; a trailing '/' is dropped."""
    if not isinstance(prefix, str):
        raise StoreError(f"invalid prefix {prefix!r}: prefixes are strings; {_HOW}")
    if prefix in ("", "/"):
        return ""
    return validate_key(prefix.removesuffix("/"))


def validate_writable(key: str) -> str:
    """Refuse put/delete under ``events/``: only append_event writes there, under its lock."""
    if key == EVENTS or key.startswith(EVENTS + "/"):
        raise StoreError(
            f"invalid key {key!r}: 'events/' is written only by append_event(); "
            f"use append_event() to add an event"
        )
    return key


def under_prefix(key: str, prefix: str) -> bool:
    """True if ``key`` equals ``prefix`` or lies below it ("" matches everything)."""
    return not prefix or key == prefix or key.startswith(prefix + "/")
