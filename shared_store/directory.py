"""DirectoryStore: the embedded backend, one pretty-printed JSON file per record.

Key ``spec/groups/notepad`` is the file ``<store>/spec/groups/notepad.json`` holding
``{"value": ..., "version": N}``, readable with ``cat`` on purpose (workshops read them).

Concurrency: reads take no lock, because every write is temp file + fsync + rename + directory
fsync (``fsio``), so a reader sees a whole old or a whole new file. Writers serialise their
read-check-write on an ``flock`` of a lock file under ``<store>/.locks/``, one per key (and
one for the event log). Per key, because a writer that is frozen while it holds a lock (a
SIGSTOPped node renewing its own lease) must block only writers of that key, never the other
nodes' renewals; a lock per top-level directory (measured in docs/performance.md, shared store)
froze the whole cluster that way. A lock not had within LOCK_TIMEOUT raises StoreUnavailable
instead of blocking forever. flock works across processes, and on Linux NFS it is mapped onto
POSIX locks, which work across hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared_store.base import Record, Store, Watch
from shared_store.errors import Conflict, StoreError, StoreUnavailable
from shared_store.fsio import (
    atomic_create,
    atomic_write,
    ensure_dir,
    fsync_dir,
    store_error,
    sweep_stale_temps,
)
from shared_store.keys import EVENTS, RESERVED_TOP, validate_key

logger = logging.getLogger(__name__)

FORMAT = 1
CLUSTER_FILE = "cluster.json"
SECRET_FILE = "secret"
LOCKS_DIR = ".locks"
LOCK_TIMEOUT = 2.0  # s: longer than any healthy read-check-write, shorter than a lease
# Top-level directories whose keys are long-lived and each locked alone (lock files are never
# removed, so short-lived keys such as requests/ share their directory's lock).
KEY_LOCKED = frozenset({"spec", "status"})
SUBDIRS = ("spec", "status", "events", "checkpoints", "data")
SEQ_DIGITS = 12
#: How far append_event probes forward from its cached seq before rescanning the directory.
_SEQ_PROBE = 64


def record_bytes(version: int, value: Any) -> bytes:
    """The on-disk form of a record: indented, sorted, newline-terminated JSON."""
    return (json.dumps({"version": version, "value": value}, indent=2, sort_keys=True,
                       allow_nan=False) + "\n").encode()


def parse_record(key: str, path: str, data: bytes) -> Record:
    """Parse a record file; StoreError naming the file if it is damaged. Never rewrites it."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"{path}: damaged record, not valid JSON ({exc}); restore the file from a backup "
            f"or delete it, then retry"
        ) from None
    if (
        not isinstance(doc, dict)
        or set(doc) != {"version", "value"}
        or isinstance(doc["version"], bool)
        or not isinstance(doc["version"], int)
        or doc["version"] < 1
    ):
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise StoreError(
            f'{path}: not a store record (expected {{"version": <int >= 1>, "value": ...}}, '
            f"found {found}); fix the file by hand or delete it, then retry"
        )
    return Record(key, doc["value"], doc["version"])


class _FileLock:
    """An exclusive flock on one lock file, also exclusive between threads of this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextlib.contextmanager
    def held(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        if not self._thread_lock.acquire(timeout=timeout):
            raise StoreUnavailable(f"{self.path} stayed locked by another thread for "
                                   f"{timeout:g} s; try again")
        try:
            fd = self._open()
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreUnavailable(
                            f"{self.path} stayed locked for {timeout:g} s (its holder may be "
                            "frozen or its host gone); try again") from None
                    time.sleep(0.002)  # flock has no timed wait: poll, bounded by the deadline
                except OSError as exc:
                    raise store_error(exc, self.path, "lock") from exc
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _open(self) -> int:
        # After a fork the child shares the parent's open file description, and with it the
        # lock: reopen so that parent and child exclude each other.
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError as exc:
                raise StoreUnavailable(
                    f"cannot open lock file {self.path}: its directory is gone; check that the "
                    f"store is mounted, then open it again"
                ) from exc
            except OSError as exc:
                raise store_error(exc, self.path, "open lock file") from exc
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


class DirectoryStore(Store):
    """A Store kept in a local or shared (NFS) directory; see the module docstring."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        polling: bool = False,
        poll_interval: float = 0.1,
        lock_scope: str = "key",
    ) -> None:
        """Open the store at ``root`` (use ``open_store``, which checks the URL first)."""
        super().__init__()
        if lock_scope not in ("key", "top", "store"):
            raise StoreError(f"invalid lock_scope {lock_scope!r}: use 'key', 'top' or 'store'")
        self.root = os.path.abspath(os.fspath(root))
        self.polling = polling
        self.poll_interval = poll_interval
        self.lock_scope = lock_scope
        config = read_cluster_file(self.root)
        self.name: str = config["name"]
        self.settings: dict = config["settings"]
        self.data_dir = Path(self.root, "data")
        self.checkpoints_dir = Path(self.root, "checkpoints")
        self.url = Path(self.root).as_uri() + ("?watch=poll" if polling else "")
        self._locks: dict[str, _FileLock] = {}
        self._locks_guard = threading.Lock()
        self._hub = None
        self._hub_guard = threading.Lock()
        self._seq_cache: int | None = None
        self._sweep_temps()

    # -- paths ---------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (for people and tests; it need not exist)."""
        return Path(self._path(validate_key(key)))

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key + ".json")

    def _event_path(self, seq: int) -> str:
        return os.path.join(self.root, EVENTS, f"{seq:0{SEQ_DIGITS}d}.json")

    def _lock_for(self, key: str) -> _FileLock:
        top = key.split("/", 1)[0]
        if self.lock_scope == "key" and top in KEY_LOCKED:
            name = key.replace("/", "~")  # "~" never occurs in a key: names cannot collide
        else:
            name = top if self.lock_scope != "store" else "store"
        with self._locks_guard:
            lock = self._locks.get(name)
            if lock is None:
                locks_dir = os.path.join(self.root, LOCKS_DIR)
                if not os.path.isdir(locks_dir):
                    self._check_root()
                    self._io(ensure_dir, locks_dir, action="create")
                lock = self._locks[name] = _FileLock(os.path.join(locks_dir, name + ".lock"))
            return lock

    # -- records -------------------------------------------------------------------------

    def _get(self, key: str) -> Record | None:
        return self._read(key, self._path(key))

    def _read(self, key: str, path: str) -> Record | None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            self._check_root()
            return None
        except OSError as exc:
            raise store_error(exc, path, "read") from exc
        return parse_record(key, path, data)

    def _put(self, key: str, value: Any, expect_version: int | None) -> Record:
        path = self._path(key)
        with self._lock_for(key).held():
            current = self._read(key, path)
            current_version = current.version if current else 0
            if expect_version is not None and expect_version != current_version:
                raise Conflict(_conflict_message(key, expect_version, current_version))
            record = Record(key, value, current_version + 1)
            self._io(ensure_dir, os.path.dirname(path), action="create")
            self._io(atomic_write, path, record_bytes(record.version, value), action="write")
        return record

    def _delete(self, key: str, expect_version: int | None) -> bool:
        path = self._path(key)
        with self._lock_for(key).held():
            current = self._read(key, path)
            current_version = current.version if current else 0
            if expect_version is not None and expect_version != current_version:
                raise Conflict(_conflict_message(key, expect_version, current_version))
            if current is None:
                return False
            self._io(os.unlink, path, action="delete")
            self._io(fsync_dir, os.path.dirname(path), action="sync")
        return True

    def _list(self, prefix: str) -> list[Record]:
        records = []
        if prefix:
            record = self._get(prefix)
            if record is not None:
                records.append(record)
        base = os.path.join(self.root, prefix) if prefix else self.root
        for key, path in self._walk(base, prefix):
            record = self._read(key, path)
            if record is not None:  # deleted since the scan
                records.append(record)
        self._check_root()
        return sorted(records, key=lambda r: r.key)

    def _walk(self, directory: str, key_prefix: str) -> Iterator[tuple[str, str]]:
        """(key, path) of the record files below ``directory``, skipping temp and raw files."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise store_error(exc, directory, "list") from exc
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if not key_prefix and name in RESERVED_TOP:
                continue
            key_base = f"{key_prefix}/{name}" if key_prefix else name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                if _valid_key(key_base):
                    yield from self._walk(entry.path, key_base)
            elif name.endswith(".json"):
                key = key_base[:-5]
                if _valid_key(key):
                    yield key, entry.path

    # -- events --------------------------------------------------------------------------

    def _append_event(self, event: dict) -> int:
        events_dir = os.path.join(self.root, EVENTS)
        with self._lock_for(EVENTS).held():
            self._io(ensure_dir, events_dir, action="create")
            seq = self._last_seq_locked() + 1
            event["seq"] = seq
            path = self._event_path(seq)
            try:
                atomic_create(path, record_bytes(1, event))
            except FileExistsError:
                # Only if someone copied event files in by hand: rescan and take the next seq.
                self._seq_cache = None
                seq = self._last_seq_locked() + 1
                event["seq"] = seq
                self._io(atomic_create, self._event_path(seq), record_bytes(1, event),
                         action="write")
            except OSError as exc:
                raise store_error(exc, path, "write") from exc
            self._seq_cache = seq
            retention = self.event_retention
            if seq % self._prune_batch(retention) == 0:
                self._prune_locked(seq - retention)
        return seq

    @staticmethod
    def _prune_batch(retention: int) -> int:
        return max(1, min(1000, retention // 10))

    def _last_seq_locked(self) -> int:
        """The highest seq in use (lock held). Event files always form a contiguous range:
        appends are serialised and pruning removes the oldest, so probing forward from a seq
        that still exists finds the end; otherwise scan the directory."""
        cached = self._seq_cache
        if cached and os.path.exists(self._event_path(cached)):
            for probe in range(cached + 1, cached + _SEQ_PROBE):
                if not os.path.exists(self._event_path(probe)):
                    return probe - 1
        seqs = self._event_seqs()
        return max(seqs) if seqs else 0

    def _event_seqs(self) -> list[int]:
        events_dir = os.path.join(self.root, EVENTS)
        try:
            names = os.listdir(events_dir)
        except FileNotFoundError:
            self._check_root()
            return []
        except OSError as exc:
            raise store_error(exc, events_dir, "list") from exc
        return [
            int(name[:-5]) for name in names
            if name.endswith(".json") and name[:-5].isdigit() and len(name) == SEQ_DIGITS + 5
        ]

    def _prune_locked(self, keep_above: int) -> None:
        events_dir = os.path.join(self.root, EVENTS)
        doomed = sorted(seq for seq in self._event_seqs() if seq <= keep_above)
        for seq in doomed:  # oldest first, so the log stays a contiguous range if interrupted
            try:
                os.unlink(self._event_path(seq))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise store_error(exc, self._event_path(seq), "prune") from exc
        sweep_stale_temps(events_dir)
        if doomed:
            self._io(fsync_dir, events_dir, action="sync")
            logger.debug("pruned %d events up to seq %d", len(doomed), keep_above)

    def _events(self, since: int, limit: int | None) -> list[dict]:
        if since > 0 and os.path.exists(self._event_path(since)):
            # Fast path (wait_events, followers): the log is a contiguous range, so the events
            # after one that still exists are since+1, since+2 ... up to the first missing one.
            found: list[dict] = []
            seq = since + 1
            while limit is None or len(found) < limit:
                event = self._read_event(seq)
                if event is None:
                    break
                found.append(event)
                seq += 1
            if found or os.path.exists(self._event_path(since)):  # else pruned meanwhile
                return found
        found = []
        for seq in sorted(seq for seq in self._event_seqs() if seq > since):
            if limit is not None and len(found) >= limit:
                break
            event = self._read_event(seq)
            if event is not None:  # else pruned meanwhile
                found.append(event)
        return found

    def _read_event(self, seq: int) -> dict | None:
        path = self._event_path(seq)
        record = self._read(f"{EVENTS}/{seq:0{SEQ_DIGITS}d}", path)
        if record is None:
            return None
        if not isinstance(record.value, dict):
            raise StoreError(f"{path}: an event must be a JSON object; fix or delete the file")
        return {**record.value, "seq": seq}

    # -- watching ------------------------------------------------------------------------

    def _watch(self, prefix: str) -> Watch:
        self._check_root()
        self._io(ensure_dir, os.path.join(self.root, prefix) if prefix else self.root,
                 action="create")
        with self._hub_guard:
            if self._hub is None:
                from shared_store.watching import WatchHub  # watchdog costs ~50 ms to import

                self._hub = WatchHub(self.root, polling=self.polling,
                                     poll_interval=self.poll_interval)
            hub = self._hub
        watch = Watch(prefix, on_close=hub.remove)
        hub.add(watch)
        return watch

    # -- misc ----------------------------------------------------------------------------

    def _secret(self) -> bytes:
        path = os.path.join(self.root, SECRET_FILE)
        try:
            with open(path, encoding="ascii") as f:
                text = f.read().strip()
        except FileNotFoundError:
            self._check_root()
            raise StoreError(
                f"{path} is missing; copy it from another node's store or re-create the "
                f"store with 'hacluster init'"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            if isinstance(exc, OSError):
                raise store_error(exc, path, "read") from exc
            text = ""
        try:
            secret = bytes.fromhex(text)
        except ValueError:
            secret = b""
        if len(secret) < 16:
            raise StoreError(
                f"{path} does not hold a hex secret of at least 16 bytes; restore it from a "
                f"backup or write a new one with: python3 -c 'import secrets; "
                f"print(secrets.token_hex(32))' > {path}"
            )
        return secret

    def _close(self) -> None:
        with self._hub_guard:
            hub, self._hub = self._hub, None
        if hub is not None:
            hub.close()
        with self._locks_guard:
            for lock in self._locks.values():
                lock.close()
            self._locks.clear()

    def _check_root(self) -> None:
        """Raise StoreUnavailable if the store itself is gone (rather than just one key)."""
        try:
            os.stat(os.path.join(self.root, CLUSTER_FILE))
        except FileNotFoundError:
            raise StoreUnavailable(
                f"the store at {self.root} is gone (no {CLUSTER_FILE}); check that it is "
                f"mounted, or restore it"
            ) from None
        except NotADirectoryError:
            raise StoreUnavailable(
                f"the store at {self.root} is gone ({self.root} is not a directory); check that "
                f"it is mounted, or restore it"
            ) from None
        except OSError as exc:
            raise store_error(exc, self.root, "reach") from exc

    def _io(self, fn: Any, *args: Any, action: str) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                self._check_root()
            raise store_error(exc, args[0], action) from exc

    def _sweep_temps(self) -> None:
        """Remove temp files of writers that died (older than a minute) in record dirs."""
        for directory, dirnames, _ in os.walk(self.root):
            if directory == self.root:
                dirnames[:] = [d for d in dirnames if d not in RESERVED_TOP]
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            sweep_stale_temps(directory)


def _valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except StoreError:
        return False
    return True


def _conflict_message(key: str, expected: int, found: int) -> str:
    have = f"version {found}" if found else "no record"
    if expected == 0:
        return f"{key!r} already exists ({have}); read it and retry with its version"
    return f"{key!r} changed: expected version {expected}, found {have}; re-read and retry"


# -- cluster.json ------------------------------------------------------------------------


def read_cluster_file(root: str) -> dict:
    """Validate ``<root>/cluster.json``; StoreError naming the file and the fix otherwise."""
    path = os.path.join(root, CLUSTER_FILE)
    try:
        is_dir = stat.S_ISDIR(os.stat(root).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        is_dir = None
    except OSError as exc:
        raise store_error(exc, root, "open the store at") from exc
    if is_dir is None:
        raise StoreError(f"no cluster store at {root}; create one with "
                         f"'hacluster init --store {root}'")
    if not is_dir:
        raise StoreError(f"no cluster store at {root}: it is a file, not a directory; "
                         f"give the store's directory, or create one elsewhere with "
                         f"'hacluster init --store PATH'")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise StoreError(f"no cluster store at {root}; create one with "
                         f"'hacluster init --store {root}'") from None
    except OSError as exc:
        raise store_error(exc, path, "read") from exc
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"{path}: damaged, not valid JSON ({exc}); restore it from a backup or fix it "
            f"by hand"
        ) from None
    if not isinstance(doc, dict) or "format" not in doc:
        raise StoreError(
            f'{path}: not a cluster file (expected {{"name": ..., "format": {FORMAT}, '
            f'"settings": {{...}}}}); restore it from a backup or fix it by hand'
        )
    if doc["format"] != FORMAT:
        raise StoreError(
            f"{path}: store format {doc['format']!r} is not supported (this version reads "
            f"format {FORMAT}); use the ha-notepad version that created the store"
        )
    name, settings = doc.get("name"), doc.get("settings", {})
    if not isinstance(name, str) or not name or not isinstance(settings, dict):
        raise StoreError(
            f'{path}: "name" must be a non-empty string and "settings" an object; '
            f"fix the file by hand"
        )
    return {"name": name, "format": FORMAT, "settings": settings}


def create_store_dir(root: str, name: str, settings: dict) -> None:
    """Lay out a new store at ``root``; refuses (StoreError) to touch an existing one.

    ``cluster.json`` is written last and create-only, so an interrupted or concurrent init
    never leaves something that opens as a store, and never overwrites one.
    """
    cluster_path = os.path.join(root, CLUSTER_FILE)
    if os.path.lexists(cluster_path):
        raise StoreError(
            f"a cluster store already exists at {root}; use it, or choose another path"
        )
    if os.path.exists(root) and not os.path.isdir(root):
        raise StoreError(f"cannot create a store at {root}: it is a file; choose another path")
    try:
        if os.path.isdir(root) and os.listdir(root):
            raise StoreError(
                f"cannot create a store at {root}: the directory is not empty (an interrupted "
                f"init?); choose an empty or new directory, or empty this one"
            )
        ensure_dir(root)
        for sub in (*SUBDIRS, LOCKS_DIR):
            ensure_dir(os.path.join(root, sub))
        secret_path = os.path.join(root, SECRET_FILE)
        fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (secrets.token_hex(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        doc = {"name": name, "format": FORMAT, "settings": settings}
        atomic_create(cluster_path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    except FileExistsError:
        raise StoreError(
            f"another process is creating a store at {root} right now; use that one"
        ) from None
    except OSError as exc:
        raise store_error(exc, exc.filename or root, "create the store at") from exc
