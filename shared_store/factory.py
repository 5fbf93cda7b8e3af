"""Open or create a store from a URL: the one place that knows which backend a URL means."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from shared_store.base import Store, normalize_json
from shared_store.directory import DirectoryStore, create_store_dir
from shared_store.errors import StoreError

logger = logging.getLogger(__name__)

_WATCH_MODES = {"poll": True, "inotify": False}


def _parse(url: str | Path) -> tuple[str, bool | None]:
    """(directory, polling from the URL or None) for a path or file:// URL."""
    if isinstance(url, Path):
        return os.path.abspath(url), None
    if not isinstance(url, str) or not url:
        raise StoreError(f"invalid store URL {url!r}: use a directory path or file:///path")
    if "://" not in url:
        return os.path.abspath(os.path.expanduser(url)), None
    parts = urlsplit(url)
    if parts.scheme == "etcd":
        raise StoreError(
            f"etcd backend is not available yet ({url}); use a directory store: a path or "
            f"file:///path (add ?watch=poll on NFS)"
        )
    if parts.scheme != "file":
        raise StoreError(
            f"unsupported store URL scheme {parts.scheme!r} in {url}; use a directory path or "
            f"file:///path"
        )
    if parts.netloc not in ("", "localhost"):
        raise StoreError(
            f"file URL {url} names host {parts.netloc!r}; use file:///path (three slashes) "
            f"for a local or mounted directory"
        )
    polling = None
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        if name != "watch" or values[-1] not in _WATCH_MODES:
            raise StoreError(
                f"unsupported option {name}={values[-1]!r} in {url}; the only option is "
                f"watch=poll (for NFS) or watch=inotify"
            )
        polling = _WATCH_MODES[values[-1]]
    path = unquote(parts.path)
    if not path:
        raise StoreError(f"store URL {url} has no path; use file:///path")
    return os.path.abspath(path), polling


def open_store(url: str | Path, *, polling: bool | None = None) -> Store:
    """Open an existing store. ``polling=True`` (or ``?watch=poll``) watches by polling,
    which sees other hosts' writes on NFS, where inotify sees only local ones."""
    root, url_polling = _parse(url)
    if polling is None:
        polling = bool(url_polling)
    return DirectoryStore(root, polling=polling)


def init_store(url: str | Path, *, name: str, settings: dict) -> Store:
    """Create a new store (``hacluster init``) and open it; never overwrites an existing one."""
    root, url_polling = _parse(url)
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise StoreError(f"invalid cluster name {name!r}: use a non-empty printable name")
    if not isinstance(settings, dict):
        raise StoreError(f"invalid settings {settings!r}: pass a dict such as "
                         f"{{'lease_ttl': 2.0}}")
    create_store_dir(root, name, normalize_json(settings, "settings"))
    logger.info("created cluster store %r at %s", name, root)
    return DirectoryStore(root, polling=bool(url_polling))
