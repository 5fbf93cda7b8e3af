"""The shared store: where cluster state lives (see DESIGN.md, "The shared store")."""

from shared_store.base import Change, Record, Store, Watch
from shared_store.directory import DirectoryStore
from shared_store.errors import Conflict, StoreError, StoreUnavailable
from shared_store.factory import init_store, open_store
from shared_store.lease import Lease, acquire_lease, release_lease, renew_lease

__all__ = [
    "Change",
    "Conflict",
    "DirectoryStore",
    "Lease",
    "Record",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Watch",
    "acquire_lease",
    "init_store",
    "open_store",
    "release_lease",
    "renew_lease",
]
