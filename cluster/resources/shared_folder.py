"""shared-folder: the stand-in for MSCS's Physical Disk resource.

Online means the folder exists, is a directory and takes writes; IsAlive proves it still does by
writing, reading back and deleting a probe file (a stale NFS mount or a read-only remount fails
there, where a mere stat would pass). Offline leaves the folder alone: it holds the app's data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from cluster.resources.base import ResourceType, check_known, parse_bool, require

logger = logging.getLogger(__name__)

TYPE = "shared-folder"


class SharedFolder(ResourceType):
    type_name = TYPE
    PROPS = ("path", "create")

    @classmethod
    def validate(cls, props: dict[str, Any]) -> dict[str, Any]:
        check_known(TYPE, props, cls.PROPS)
        path = require(TYPE, props, "path", "path={data}/myapp")
        if not isinstance(path, str):
            raise ValueError(f"{TYPE}: path must be a directory path, not {path!r}")
        return {"path": path, "create": parse_bool(TYPE, "create", props.get("create", False))}

    @property
    def path(self) -> Path:
        return Path(self.props["path"])

    def online(self) -> None:
        path = self.path
        if self.props["create"]:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RuntimeError(f"cannot create folder {path}: {exc.strerror}") from None
        if not path.exists():
            raise RuntimeError(f"folder {path} does not exist; create it or set create=true")
        if not path.is_dir():
            raise RuntimeError(f"{path} is not a folder; point path at a directory")
        self._probe()

    def _probe(self) -> None:
        """Write, read back and delete a probe file; raise RuntimeError saying what failed."""
        owner = f"{self.ctx.node}-{os.getpid()}-{threading.get_ident()}"
        payload = owner.encode()
        probe = self.path / f".hacluster-probe-{owner}"
        try:
            with open(probe, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            if probe.read_bytes() != payload:
                raise RuntimeError(f"folder {self.path}: probe file read back different bytes")
        except OSError as exc:
            raise RuntimeError(f"folder {self.path} is not writable: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()

    def offline(self) -> None:
        """Nothing to release: the folder and its data stay."""

    def terminate(self) -> None:
        """Nothing to release."""

    def looks_alive(self) -> bool:
        return self.path.is_dir()

    def is_alive(self) -> bool:
        self._probe()
        return True

    def details(self) -> dict[str, Any]:
        return {"path": self.props["path"]}

    @classmethod
    def admin_panel(cls, spec: dict[str, Any], status: dict[str, Any]) -> list[tuple[str, str]]:
        """The folder and its documents: size and last change of the newest few (the
        notepad's file), read from the shared store's data directory."""
        from datetime import UTC, datetime

        path = Path(str((spec.get("properties") or {}).get("path") or ""))
        rows = [("path", str(path))]
        try:
            entries = [e for e in os.scandir(path) if not e.name.startswith(".")
                       and e.is_file(follow_symlinks=False)]
            files = sorted(((e.name, e.stat()) for e in entries),
                           key=lambda item: item[1].st_mtime, reverse=True)
        except FileNotFoundError:
            return [*rows, ("folder", "missing: it is created when the folder comes online "
                            "with create=true, or by hand")]
        except OSError as exc:
            return [*rows, ("folder", f"cannot read it: {exc.strerror}")]
        rows.append(("files", str(len(files))))
        for name, info in files[:5]:
            changed = datetime.fromtimestamp(info.st_mtime, UTC).strftime("%Y-%m-%d %H:%M:%S")
            rows.append((name, f"{info.st_size} bytes, last change {changed} UTC"))
        return rows
