"""The cluster API: what the ``hacluster`` commands and the dashboard do, as plain functions.

Each function validates its input completely before it writes anything, so a refused request
leaves the store unchanged. Errors are ``ApiError`` with a one-line message that says what to do
and the exit code the CLI uses (2: bad input, 1: the operation failed or timed out).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from cluster import events
from cluster.model import (
    GroupSpec,
    GroupState,
    GroupStatus,
    ModelError,
    NodeState,
    ResourcePolicy,
    ResourceSpec,
    ResourceState,
    check_name,
    dependency_order,
)
from cluster.node.snapshot import read_snapshot
from cluster.processes import kill_tree, wait_gone
from cluster.resources import UnknownResourceType, get_type
from shared_store import Conflict, Store

BAD_INPUT = 2
FAILED = 1


class ApiError(Exception):
    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def _bad(message: str) -> ApiError:
    return ApiError(message, BAD_INPUT)


def _model(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ModelError as exc:
        raise _bad(str(exc)) from exc


# --- reading ------------------------------------------------------------------------------


def status(store: Store, now: float | None = None) -> dict[str, Any]:
    """The contract shape of ``hacluster status --json``."""
    now = time.time() if now is None else now
    snap = read_snapshot(store)
    nodes = []
    for name in sorted(set(snap.nodes) | set(snap.node_specs)):
        node = snap.nodes.get(name)
        state = snap.node_state(name, now)
        nodes.append({"name": name, "state": state.value,
                      "epoch": node.epoch if node else 0,
                      "address": node.address if node else None,
                      "pid": node.pid if node and state != NodeState.DOWN else None})
    groups = []
    for name in sorted(snap.groups):
        st = snap.group_status_of(name)
        owner_down = st.owner is not None and snap.node_state(st.owner, now) == NodeState.DOWN
        state = st.state
        if owner_down and state in (GroupState.ONLINE.value, GroupState.PARTIAL.value):
            state = GroupState.PENDING.value  # its owner died: failing over
        resources = []
        for res in snap.group_resources(name):
            rs = snap.resource_status_of(res.name)
            current = rs.node == st.owner and rs.owner_epoch == st.owner_epoch and not owner_down
            resources.append({"name": res.name, "type": res.type,
                              "state": rs.state if current else ResourceState.OFFLINE.value,
                              "pid": rs.pid if current else None})
        groups.append({"name": name, "state": state, "owner": st.owner,
                       "epoch": st.owner_epoch, "resources": resources})
    return {"cluster": store.name, "nodes": nodes, "groups": groups}


def known_nodes(store: Store) -> set[str]:
    return {r.key.rsplit("/", 1)[-1] for r in store.list("status/nodes")} | {
        r.key.rsplit("/", 1)[-1] for r in store.list("spec/nodes")}


def _require_node(store: Store, name: str) -> None:
    check_name_bad("node", name)
    if name not in known_nodes(store):
        nodes = ", ".join(sorted(known_nodes(store))) or "none yet"
        raise _bad(f"unknown node {name!r} (known: {nodes}); start it with "
                   f"'hacluster node start {name}'")


def check_name_bad(kind: str, name: str) -> str:
    return _model(lambda: check_name(kind, name))


def _group_spec(store: Store, name: str) -> GroupSpec:
    check_name_bad("group", name)
    record = store.get(f"spec/groups/{name}")
    if record is None:
        raise _bad(f"unknown group {name!r}; list groups with 'hacluster status'")
    return _model(lambda: GroupSpec.from_record(name, record.value, record.version))


def _resource_spec(store: Store, name: str) -> ResourceSpec:
    check_name_bad("resource", name)
    record = store.get(f"spec/resources/{name}")
    if record is None:
        raise _bad(f"unknown resource {name!r}; list resources with 'hacluster status'")
    return _model(lambda: ResourceSpec.from_record(name, record.value, record.version))


def resolve_group(store: Store, name: str) -> str:
    """A group name, or the group of a resource name (``attach``, ``admin`` accept both)."""
    if store.get(f"spec/groups/{check_name_bad('group or resource', name)}") is not None:
        return name
    record = store.get(f"spec/resources/{name}")
    if record is not None and isinstance(record.value, dict):
        return str(record.value.get("group"))
    raise _bad(f"unknown group or resource {name!r}; list them with 'hacluster status'")


# --- groups -------------------------------------------------------------------------------


def build_group(store: Store, name: str, preferred_owners: Iterable[str] = (),
                failback: str = "never", failover_threshold: int | None = None,
                failover_period: float = 6 * 3600.0, possible_owners: Iterable[str] = (),
                anti_affinity: str | None = None, desired: str = "online") -> GroupSpec:
    check_name_bad("group", name)
    spec = GroupSpec(name=name, preferred_owners=tuple(preferred_owners),
                     possible_owners=tuple(possible_owners), failback=failback,
                     failover_threshold=failover_threshold, failover_period=failover_period,
                     anti_affinity=anti_affinity, desired=desired)
    _model(lambda: spec.validate(f"group {name}"))
    for node in (*spec.preferred_owners, *spec.possible_owners):
        _require_node(store, node)
    if len(set(spec.preferred_owners)) != len(spec.preferred_owners):
        raise _bad(f"group {name}: a preferred owner is listed twice; list each node once")
    return spec


def _create(store: Store, kind: str, other: str, name: str, record: dict[str, Any]) -> None:
    """Create-only put of a group or resource spec; names are unique across both kinds."""
    if store.get(f"spec/{other}s/{name}") is not None:
        raise _bad(f"{name!r} is already a {other} name; choose another {kind} name")
    try:
        store.put(f"spec/{kind}s/{name}", record, expect_version=0)
    except Conflict as exc:
        raise _bad(f"{kind} {name!r} already exists; delete it first or choose another "
                   "name") from exc


def create_group(store: Store, spec: GroupSpec) -> None:
    _create(store, "group", "resource", spec.name, spec.to_record())
    events.append(store, "group-created", f"group {spec.name} created", group=spec.name)


def set_group_desired(store: Store, name: str, desired: str) -> None:
    spec = _group_spec(store, name)
    store.put(f"spec/groups/{name}", replace(spec, desired=desired).to_record(),
              expect_version=spec.version)
    if desired == "online":
        _clear_failed(store, name)
    events.append(store, f"group-{desired}-requested", f"{name}: bring {desired} requested",
                  group=name)


def _clear_failed(store: Store, group: str) -> None:
    """An administrator's ``online`` forgives past failures (MSCS resets a failed group)."""
    def fix(current: Any) -> Any:
        status = GroupStatus.from_record(group, current or {})
        if status.state != GroupState.FAILED.value:
            return current
        owner = status.owner if status.owner else None
        return replace(status, state=GroupState.PENDING.value if owner else
                       GroupState.OFFLINE.value, failed_at=None, failovers=()).to_record()

    if store.get(f"status/groups/{group}") is not None:
        store.update(f"status/groups/{group}", fix)
    for res in store.list("spec/resources"):
        if isinstance(res.value, dict) and res.value.get("group") == group:
            key = f"status/resources/{res.key.rsplit('/', 1)[-1]}"
            if store.get(key) is not None:
                store.update(key, lambda v: {**(v or {}), "failures": []})


def move_group(store: Store, name: str, to: str | None = None,
               now: float | None = None) -> str:
    """Ask the owner to move the group (MSCS Move Group); returns the chosen node."""
    from cluster.policy import place

    now = time.time() if now is None else now
    _group_spec(store, name)
    snap = read_snapshot(store)
    status = snap.group_status_of(name)
    if status.owner is None or snap.node_state(status.owner, now) == NodeState.DOWN:
        raise ApiError(f"{name} is not running on any node; bring it online with "
                       f"'hacluster group online {name}'", FAILED)
    if to is None:
        to = place(snap, name, now, exclude=[status.owner])
        if to is None:
            raise ApiError(f"no other node can host {name} now; start or resume a node",
                           FAILED)
    else:
        _require_node(store, to)
        if to == status.owner:
            raise _bad(f"{name} already runs on {to}")
        if snap.node_state(to, now) != NodeState.UP:
            raise ApiError(f"{to} cannot host {name}: it is {snap.node_state(to, now).value}",
                           FAILED)
        if snap.groups[name].possible_owners and to not in snap.groups[name].possible_owners:
            raise _bad(f"{to} is not a possible owner of {name}")
    store.put(f"status/groups/{name}", replace(status, target=to).to_record(),
              expect_version=status.version)
    events.append(store, "group-move-requested", f"move of {name} to {to} requested",
                  group=name)
    return to


def delete_group(store: Store, name: str) -> None:
    _group_spec(store, name)
    members = [r.key.rsplit("/", 1)[-1] for r in store.list("spec/resources")
               if isinstance(r.value, dict) and r.value.get("group") == name]
    if members:
        raise _bad(f"group {name} still has resources ({', '.join(members)}); delete them "
                   "first")
    store.delete(f"spec/groups/{name}")
    store.delete(f"status/groups/{name}")
    events.append(store, "group-deleted", f"group {name} deleted", group=name)


# --- resources ----------------------------------------------------------------------------


def build_resource(store: Store, name: str, group: str, rtype: str,
                   properties: Mapping[str, Any] | None = None,
                   depends_on: Iterable[str] = (), policy: Mapping[str, Any] | None = None,
                   new_groups: Iterable[str] = (),
                   new_resources: Mapping[str, tuple[str, list[str]]] | None = None,
                   ) -> ResourceSpec:
    """Validate a resource against the store and against the groups and resources that are
    about to be created with it (``apply``)."""
    check_name_bad("resource", name)
    if group not in set(new_groups):
        _group_spec(store, group)
    try:
        type_class = get_type(rtype)
    except UnknownResourceType as exc:
        raise _bad(str(exc)) from exc
    try:
        props = type_class.validate(dict(properties or {}))
    except ValueError as exc:
        raise _bad(f"resource {name}: {exc}") from exc
    where = f"resource {name}"
    resource_policy = _model(lambda: ResourcePolicy.from_record(dict(policy or {}), where))
    spec = ResourceSpec(name=name, group=group, type=rtype, properties=props,
                        depends_on=tuple(depends_on), policy=resource_policy)
    graph: dict[str, tuple[Any, list[str]]] = {
        r.key.rsplit("/", 1)[-1]: (r.value.get("group"), list(r.value.get("depends_on") or []))
        for r in store.list("spec/resources") if isinstance(r.value, dict)}
    graph.update(new_resources or {})
    graph[name] = (group, list(spec.depends_on))
    for dep in spec.depends_on:
        if dep not in graph:
            raise _bad(f"resource {name} depends on unknown resource {dep!r}; create it first")
        if graph[dep][0] != group:
            raise _bad(f"resource {name} (group {group}) cannot depend on {dep} (group "
                       f"{graph[dep][0]}): dependencies stay within one group")
    _model(lambda: dependency_order({n: deps for n, (_, deps) in graph.items()}))
    return spec


def create_resource(store: Store, spec: ResourceSpec) -> None:
    _create(store, "resource", "group", spec.name, spec.to_record())
    events.append(store, "resource-created", f"resource {spec.name} ({spec.type}) created "
                  f"in {spec.group}", resource=spec.name, group=spec.group)


def set_resource_desired(store: Store, name: str, desired: str) -> None:
    spec = _resource_spec(store, name)
    store.put(f"spec/resources/{name}", replace(spec, desired=desired).to_record(),
              expect_version=spec.version)
    if desired == "online" and store.get(f"status/resources/{name}") is not None:
        store.update(f"status/resources/{name}", lambda v: {**(v or {}), "failures": []})
    events.append(store, f"resource-{desired}-requested", f"{name}: {desired} requested",
                  resource=name, group=spec.group)


def fail_resource(store: Store, name: str) -> None:
    """MSCS "Initiate Failure": the owner terminates it and handles it as a real failure."""
    spec = _resource_spec(store, name)
    record = store.get(f"status/resources/{name}")
    state = record.value.get("state") if record and isinstance(record.value, dict) else None
    if state not in (ResourceState.ONLINE.value, ResourceState.ONLINE_PENDING.value):
        raise ApiError(f"{name} is not online (it is {state or 'offline'}); nothing to fail",
                       FAILED)
    store.put(f"requests/fail-{name}-{uuid.uuid4().hex[:8]}",
              {"op": "fail", "resource": name, "group": spec.group, "time": time.time()},
              expect_version=0)


def delete_resource(store: Store, name: str) -> None:
    spec = _resource_spec(store, name)
    dependents = [r.key.rsplit("/", 1)[-1] for r in store.list("spec/resources")
                  if isinstance(r.value, dict) and name in (r.value.get("depends_on") or [])]
    if dependents:
        raise _bad(f"{', '.join(dependents)} depend(s) on {name}; delete or change them first")
    store.delete(f"spec/resources/{name}")
    store.delete(f"status/resources/{name}")
    shutil.rmtree(store.checkpoints_dir / name, ignore_errors=True)
    events.append(store, "resource-deleted", f"resource {name} deleted", resource=name,
                  group=spec.group)


# --- nodes --------------------------------------------------------------------------------


def set_node_paused(store: Store, name: str, paused: bool) -> None:
    _require_node(store, name)
    store.update(f"spec/nodes/{name}", lambda v: {**(v or {}), "paused": paused})
    events.append(store, "node-paused" if paused else "node-resumed",
                  f"{name} {'paused: its groups move away' if paused else 'resumed'}",
                  node=name)


def node_process(store: Store, name: str) -> psutil.Process | None:
    """The node service's process on this machine, if it is alive and is one."""
    _require_node(store, name)
    record = store.get(f"status/nodes/{name}")
    pid = record.value.get("pid") if record and isinstance(record.value, dict) else None
    if not pid:
        return None
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc if "node" in cmdline and name in cmdline else None


def stop_node(store: Store, name: str, wait: float = 30.0) -> None:
    proc = node_process(store, name)
    if proc is None:
        raise ApiError(f"{name} is not running on this machine", FAILED)
    proc.send_signal(signal.SIGTERM)
    if wait_gone([proc], wait):
        raise ApiError(f"{name} did not stop within {wait:g} s; see its log, or "
                       f"'hacluster node kill {name}'", FAILED)


def kill_node(store: Store, name: str) -> list[int]:
    """SIGKILL the node's whole process tree at once: a crash, for demos."""
    proc = node_process(store, name)
    if proc is None:
        raise ApiError(f"{name} is not running on this machine", FAILED)
    return kill_tree(proc.pid)


# --- waiting ------------------------------------------------------------------------------


def wait_for(store: Store, predicate: Callable[[dict[str, Any]], bool], timeout: float,
             what: str) -> dict[str, Any]:
    """Wait, on store watches, until ``predicate(status)`` holds; ApiError(1) on timeout."""
    deadline = time.monotonic() + timeout
    with store.watch("status") as watch:
        while True:
            current = status(store)
            if predicate(current):
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiError(f"timed out after {timeout:g} s waiting for {what}", FAILED)
            watch.wait(min(left, 0.25))


def group_entry(current: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return next((g for g in current["groups"] if g["name"] == name), {})


# --- apply --------------------------------------------------------------------------------


def apply_file(store: Store, path: Path) -> list[str]:
    """Declarative groups and resources from TOML: all validated, then written."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _bad(f"{path}: no such file") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _bad(f"{path}: malformed TOML ({exc}); fix the file and apply again") from exc
    unknown = set(data) - {"groups", "resources"}
    if unknown:
        raise _bad(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; use [groups.NAME] "
                   "and [resources.NAME]")
    groups: dict[str, GroupSpec] = {}
    for name, value in (data.get("groups") or {}).items():
        if not isinstance(value, dict):
            raise _bad(f"{path}: [groups.{name}] must be a table")
        allowed = {"preferred_owners", "possible_owners", "failback", "failover_threshold",
                   "failover_period", "anti_affinity"}
        extra = set(value) - allowed
        if extra:
            raise _bad(f"{path}: [groups.{name}] has unknown key(s) {', '.join(sorted(extra))}")
        try:
            groups[name] = build_group(store, name, **value)
        except TypeError as exc:
            raise _bad(f"{path}: [groups.{name}]: {exc}") from exc
    raw_resources = data.get("resources") or {}
    for name, value in raw_resources.items():
        if not isinstance(value, dict) or "group" not in value or "type" not in value:
            raise _bad(f"{path}: [resources.{name}] needs group and type")
        extra = set(value) - {"group", "type", "properties", "depends_on", "policy"}
        if extra:
            raise _bad(f"{path}: [resources.{name}] has unknown key(s) "
                       f"{', '.join(sorted(extra))}")
    graph = {n: (v["group"], list(v.get("depends_on") or [])) for n, v in raw_resources.items()}
    resources = {
        name: build_resource(store, name, value["group"], value["type"],
                             value.get("properties"), value.get("depends_on") or (),
                             value.get("policy"), new_groups=groups, new_resources=graph)
        for name, value in raw_resources.items()}
    done: list[str] = []
    for spec in groups.values():
        record = store.get(f"spec/groups/{spec.name}")
        desired = record.value.get("desired", "online") if record else "online"
        store.put(f"spec/groups/{spec.name}", replace(spec, desired=desired).to_record())
        done.append(f"group {spec.name}")
    for spec in resources.values():
        record = store.get(f"spec/resources/{spec.name}")
        desired = record.value.get("desired", "online") if record else "online"
        store.put(f"spec/resources/{spec.name}", replace(spec, desired=desired).to_record())
        done.append(f"resource {spec.name}")
    events.append(store, "applied", f"applied {path.name}: {', '.join(done) or 'nothing'}")
    return done


NOTEPAD_GROUP = "notepad"


def notepad_specs(store: Store) -> tuple[GroupSpec, list[ResourceSpec]]:
    """The HA Notepad group of DESIGN.md: a shared folder, a network name, and the editor in a
    console, depending on both, with its session checkpointed."""
    group = build_group(store, NOTEPAD_GROUP, failover_threshold=100)
    disk = build_resource(store, "notepad-disk", NOTEPAD_GROUP, "shared-folder",
                          {"path": "{data}/notepad"}, new_groups=[NOTEPAD_GROUP])
    name = build_resource(store, "notepad-name", NOTEPAD_GROUP, "network-name",
                          {"name": "notepad"}, new_groups=[NOTEPAD_GROUP])
    graph = {"notepad-disk": (NOTEPAD_GROUP, []), "notepad-name": (NOTEPAD_GROUP, [])}
    app = build_resource(
        store, "notepad-app", NOTEPAD_GROUP, "generic-app",
        {"command": "hanotepad {data}/notepad/notes.txt", "console": True,
         "checkpoints": "{local}/state/hanotepad"},
        depends_on=["notepad-disk", "notepad-name"], new_groups=[NOTEPAD_GROUP],
        new_resources=graph)
    return group, [disk, name, app]


def create_notepad(store: Store) -> bool:
    """Create the HA Notepad group and bring it online; False if it exists (nothing changed)."""
    if store.get(f"spec/groups/{NOTEPAD_GROUP}") is not None:
        return False
    group, resources = notepad_specs(store)
    (store.data_dir / "notepad").mkdir(parents=True, exist_ok=True)
    create_group(store, replace(group, desired="offline"))
    for spec in resources:
        create_resource(store, spec)
    set_group_desired(store, NOTEPAD_GROUP, "online")
    return True


def start_node_detached(store: Store, store_path: Path, name: str, local: Path,
                        address: str = "127.0.0.1", timeout: float = 15.0) -> tuple[int, Path]:
    """Start ``hacluster node start`` in the background, logging to ``<local>/node.log``, and
    wait until it holds its lease; returns its pid and log path."""
    local.mkdir(parents=True, exist_ok=True)
    log_path = local / "node.log"
    argv = [sys.executable, "-m", "cluster", "node", "start", name, "--store",
            str(Path(store_path).absolute()), "--local-dir", str(local.absolute()),
            "--address", address]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    with store.watch("status/nodes") as watch:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ApiError(f"node {name} exited at once (code {proc.returncode}); see "
                               f"{log_path}", FAILED)
            record = store.get(f"status/nodes/{name}")
            if record and isinstance(record.value, dict) and record.value.get("pid") == proc.pid:
                return proc.pid, log_path
            watch.wait(0.1)
    raise ApiError(f"node {name} did not join within {timeout:g} s; see {log_path}", FAILED)


def default_local_dir(store: Store, node: str) -> Path:
    import platformdirs

    return platformdirs.user_state_path("hacluster") / store.name / node

