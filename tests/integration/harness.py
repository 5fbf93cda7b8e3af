"""A real cluster for integration tests: a temporary store, real node processes, and an
independent checker that samples every process on the machine and fails the test if two live
instances of one generic app ever exist at the same instant."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from cluster import api
from cluster.processes import kill_tree
from shared_store import Store, open_store
from tests.helpers.wait import wait_until

PYTHON = sys.executable


def hacluster(store: Path, *args: str, check: bool = True,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PYTHON, "-m", "cluster", *args, "--store", str(store)],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"hacluster {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr.strip()}")
    return proc


class InstanceChecker(threading.Thread):
    """Samples all processes >= 20 times a second; records the most simultaneous live
    instances of the app whose command line matches ``marker``."""

    def __init__(self, marker: list[str], interval: float = 0.02) -> None:
        super().__init__(daemon=True, name="instance-checker")
        self.marker = marker
        self.interval = interval
        self.max_seen = 0
        self.samples = 0
        self.violations: list[tuple[float, list[int]]] = []
        self._stop_event = threading.Event()

    def instances(self) -> list[int]:
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            try:
                if proc.info["cmdline"] == self.marker and \
                        proc.info["status"] != psutil.STATUS_ZOMBIE:
                    found.append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def run(self) -> None:
        while not self._stop_event.is_set():
            found = self.instances()
            self.samples += 1
            self.max_seen = max(self.max_seen, len(found))
            if len(found) > 1:
                self.violations.append((time.time(), found))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


class Cluster:
    def __init__(self, root: Path, lease_ttl: float = 2.0) -> None:
        self.root = root
        self.store = root / "store"
        self.lease_ttl = lease_ttl
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self._store: Store | None = None
        hacluster(self.store, "init", "--name", "test", "--lease-ttl", str(lease_ttl))
        # A unique sleep duration makes this test's app recognisable among all processes.
        self.app_marker = ["sleep", f"{100000 + random.randint(0, 10**6)}.{os.getpid()}"]
        self.checker = InstanceChecker(self.app_marker)
        self.checker.start()

    # nodes -------------------------------------------------------------------------------

    def start_node(self, name: str, wait: bool = True) -> subprocess.Popen[bytes]:
        local = self.root / name
        local.mkdir(exist_ok=True)
        log_path = self.root / f"{name}.log"
        self.logs[name] = log_path
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [PYTHON, "-m", "cluster", "node", "start", name, "--store", str(self.store),
                 "--local-dir", str(local)],
                stdout=log, stderr=log, start_new_session=True)
        self.nodes[name] = proc
        if wait:
            wait_until(lambda: self.node_state(name) == "up", timeout=20,
                       message=f"{name} to be up")
        return proc

    def start_nodes(self, *names: str) -> None:
        for name in names:
            self.start_node(name, wait=False)
        for name in names:
            wait_until(lambda n=name: self.node_state(n) == "up", timeout=20,
                       message=f"{name} to be up")

    def tree(self, name: str) -> list[int]:
        try:
            root = psutil.Process(self.nodes[name].pid)
            return [root.pid, *(p.pid for p in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's whole process tree at once (a crash)."""
        kill_tree(self.nodes[name].pid)
        self.nodes[name].wait(5)

    def signal_service(self, name: str, sig: int) -> None:
        os.kill(self.nodes[name].pid, sig)

    def close(self) -> None:
        self.checker.stop()
        if self._store is not None:
            self._store.close()
        for proc in self.nodes.values():
            kill_tree(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        # Anything of ours that escaped the trees (an app reparented after a monitor died).
        for pid in self.checker.instances():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # reading -----------------------------------------------------------------------------

    def open(self) -> Store:
        if self._store is None:
            self._store = open_store(self.store)
        return self._store

    def status(self) -> dict[str, Any]:
        """In-process, through the same library call as ``hacluster status --json``."""
        return api.status(self.open())

    def node_state(self, name: str) -> str | None:
        return next((n["state"] for n in self.status()["nodes"] if n["name"] == name), None)

    def group(self, name: str) -> dict[str, Any]:
        return next(g for g in self.status()["groups"] if g["name"] == name)

    def wait_group(self, name: str, predicate: Callable[[dict[str, Any]], bool],
                   timeout: float = 20, message: str = "") -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            group = self.group(name)
            return group if predicate(group) else None
        return wait_until(check, timeout=timeout, interval=0.05,
                          message=message or f"group {name} condition")

    def wait_online(self, name: str, owner: str | None = None,
                    timeout: float = 20) -> dict[str, Any]:
        return self.wait_group(
            name, lambda g: g["state"] == "online" and (owner is None or g["owner"] == owner)
            and all(r["state"] == "online" for r in g["resources"]),
            timeout, f"{name} online" + (f" on {owner}" if owner else ""))

    def events(self) -> list[dict[str, Any]]:
        out = hacluster(self.store, "events", "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def app_pids(self) -> list[int]:
        return self.checker.instances()

    def app_owner(self) -> str | None:
        """The node whose process tree runs the app, by psutil."""
        pids = set(self.app_pids())
        for name in self.nodes:
            if pids & set(self.tree(name)):
                return name
        return None

    def create_app_group(self, group: str = "g", preferred: str = "node1,node2,node3",
                         extra_group: tuple[str, ...] = (),
                         extra_resource: tuple[str, ...] = ()) -> None:
        hacluster(self.store, "group", "create", group, "--preferred-owners", preferred,
                  *extra_group)
        hacluster(self.store, "resource", "create", f"{group}-app", "--group", group,
                  "--type", "generic-app", "--prop", "command=" + " ".join(self.app_marker),
                  *extra_resource)

    def assert_never_two(self) -> None:
        assert self.checker.samples > 0
        assert not self.checker.violations, (
            f"two live instances at once: {self.checker.violations[:3]}")

    def dump_logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.read_text(errors='replace')[-4000:]}"
                         for n, p in self.logs.items() if p.exists())
