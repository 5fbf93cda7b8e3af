"""Exceptions of the shared store.

Callers catch ``StoreError`` for anything the store refuses; ``Conflict`` tells a lost race from
bad input, and ``StoreUnavailable`` tells "the store cannot be reached" from both, so that the
cluster layer can count its lease as lost instead of crashing.
"""

from __future__ import annotations


class StoreError(Exception):
    """Bad input or a corrupt record; the message names the file and says what to do."""


class Conflict(StoreError):
    """A compare-and-swap lost: the record changed (or exists, for create-only) meanwhile."""


class StoreUnavailable(StoreError):
    """The store cannot be reached: its directory is gone, unmounted, or the disk fails."""
