"""The source article's story, step by step, on a live 3-node cluster running HA Notepad.

Each step says what to watch, acts (when the presenter presses Enter, or at once with ``--auto``),
checks what happened on the real cluster, and says how long it took. The same steps serve the
tmux walkthrough's narrator pane and the unattended ``./demo.sh --auto`` run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster import api
from cluster.console.attach import connect, find_console
from cluster.console.protocol import Kind, encode
from cluster.node.snapshot import read_snapshot
from shared_store import Store

GROUP = api.NOTEPAD_GROUP
APP = "notepad-app"
DEMO_TEXT = "hello from the demo"


class StepFailed(Exception):
    """What a step expected did not happen; the message says what was seen instead."""


@dataclass
class Demo:
    store: Store
    store_path: Path
    root: Path  # the demo directory: node local dirs live here
    interactive: bool
    figures: dict[str, float] = field(default_factory=dict)
    typed: str = ""
    baseline: str = ""  # notes.txt when step 3 was announced
    crashed: str | None = None  # the node step 6 crashed, which step 7 brings back

    # --- reading the cluster ------------------------------------------------------------

    def group(self) -> dict[str, Any]:
        return dict(api.group_entry(api.status(self.store), GROUP))

    def owner(self) -> str:
        owner = self.group().get("owner")
        if not owner:
            raise StepFailed("the notepad group has no owner")
        return str(owner)

    def app_pid(self) -> int | None:
        res = next((r for r in self.group().get("resources", []) if r["name"] == APP), {})
        return res.get("pid")

    def notes(self) -> str:
        path = self.store.data_dir / "notepad" / "notes.txt"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def wait_online(self, timeout: float, owner: str | None = None,
                    not_pid: int | None = None, not_owner: str | None = None) -> dict[str, Any]:
        def ready(status: dict[str, Any]) -> bool:
            g = api.group_entry(status, GROUP)
            app = next((r for r in g.get("resources", []) if r["name"] == APP), {})
            return (g.get("state") == "online" and (owner is None or g.get("owner") == owner)
                    and g.get("owner") != not_owner
                    and app.get("pid") not in (None, not_pid))
        try:
            return dict(api.group_entry(api.wait_for(self.store, ready, timeout,
                                                     "notepad to come online"), GROUP))
        except api.ApiError as exc:
            raise StepFailed(f"{exc} (it is {self.group().get('state')} on "
                             f"{self.group().get('owner')})") from exc

    def check_text(self) -> str:
        if self.typed and self.typed not in self.notes():
            raise StepFailed(f"the notepad lost text: {self.typed!r} is not in notes.txt")
        return f"the text is intact ({len(self.notes())} characters in notes.txt)"

    def timed(self, name: str, action: Callable[[], Any], until: Callable[[], Any]) -> float:
        started = time.monotonic()
        action()
        until()
        elapsed = time.monotonic() - started
        self.figures[name] = round(elapsed, 3)
        return elapsed


@dataclass(frozen=True)
class Step:
    title: str
    watch: str
    prompt: str  # what Enter will do
    run: Callable[[Demo], list[str]]
    before: Callable[[Demo], None] | None = None  # runs when the step is announced


# --- the steps ---------------------------------------------------------------------------


def step_nodes(demo: Demo) -> list[str]:
    lines = []
    for node in api.status(demo.store)["nodes"]:
        proc = api.node_process(demo.store, node["name"])
        monitor = ""
        if proc is not None:
            kids = [p for p in proc.children() if "cluster.monitor" in " ".join(p.cmdline())]
            monitor = f", resource monitor pid {kids[0].pid}" if kids else ""
        lines.append(f"{node['name']}: {node['state']}, lease epoch {node['epoch']}, "
                     f"node service pid {node['pid']}{monitor}")
    if sum(1 for n in api.status(demo.store)["nodes"] if n["state"] == "up") < 3:
        raise StepFailed("fewer than 3 nodes are up")
    return lines


def step_group(demo: Demo) -> list[str]:
    snap = read_snapshot(demo.store)
    lines = [f"group {GROUP} runs on {demo.owner()} ({demo.group()['state']}), "
             f"failback {snap.groups[GROUP].failback}"]
    for res in snap.group_resources(GROUP):
        deps = f", depends on {', '.join(res.depends_on)}" if res.depends_on else ""
        lines.append(f"  {res.name} ({res.type}){deps}")
    lines.append("online order: dependencies first; offline: the reverse")
    return lines


def note_baseline(demo: Demo) -> None:
    """Remember notes.txt when step 3 is announced: what the presenter types next is new."""
    demo.baseline = demo.notes()


def step_type(demo: Demo) -> list[str]:
    if demo.interactive:
        try:  # the editor autosaves after a short idle: give the last keystrokes time to land
            _wait(lambda: demo.notes() != demo.baseline, 3, "notes.txt to change")
        except StepFailed:
            return ["nothing new in notes.txt yet: type into the attach pane, then go on"]
        now = demo.notes()
        added = now[len(demo.baseline):] if now.startswith(demo.baseline) else now
        lines = [line.strip() for line in added.splitlines() if line.strip()]
        demo.typed = lines[-1] if lines else ""
        if not demo.typed:
            return ["notes.txt changed, but no new text: type a line into the attach pane"]
    else:
        endpoint = find_console(demo.store, GROUP)
        if endpoint is None:
            raise StepFailed("the notepad's console is not online")
        sock, _, _ = connect(endpoint, demo.store.secret(), 24, 80)
        with sock:
            sock.setblocking(True)
            sock.sendall(encode(Kind.INPUT, DEMO_TEXT.encode()))
            demo.typed = DEMO_TEXT
            demo.timed("autosave", lambda: None, lambda: _wait(
                lambda: DEMO_TEXT in demo.notes(), 5, "the editor to autosave"))
    return [f"notes.txt on the shared store has {demo.typed!r}: the editor saved it "
            f"(autosave, {demo.figures.get('autosave', 0) * 1000:.0f} ms)"
            if demo.figures.get("autosave") else f"notes.txt has {demo.typed!r}"]


def step_move(demo: Demo) -> list[str]:
    source = demo.owner()
    target = _other_node(demo, source)
    elapsed = demo.timed("planned_move", lambda: api.move_group(demo.store, GROUP, target),
                         lambda: demo.wait_online(20, owner=target))
    return [f"moved {GROUP} from {source} to {target} in {elapsed:.2f} s: offline in reverse "
            "order, hand-over, online in order", demo.check_text()]


def step_app_failure(demo: Demo) -> list[str]:
    owner, pid = demo.owner(), demo.app_pid()
    elapsed = demo.timed("local_restart", lambda: api.fail_resource(demo.store, APP),
                         lambda: demo.wait_online(20, owner=owner, not_pid=pid))
    return [f"{APP} failed on {owner} and was restarted there in {elapsed:.2f} s "
            f"(pid {pid} -> {demo.app_pid()}; MSCS restarts 3 times in 15 min before failing "
            "the group over)", demo.check_text()]


def step_crash(demo: Demo) -> list[str]:
    victim = demo.owner()
    demo.crashed = victim
    elapsed = demo.timed("failover", lambda: api.kill_node(demo.store, victim),
                         lambda: demo.wait_online(30, not_owner=victim))
    new_owner = demo.owner()
    if new_owner == victim:
        raise StepFailed(f"{GROUP} is still on the crashed node {victim}")
    return [f"{victim} crashed (SIGKILL of its whole process tree); {GROUP} came online on "
            f"{new_owner} after {elapsed:.2f} s (lease TTL "
            f"{demo.store.settings.get('lease_ttl', 2.0):g} s, then claim and online)",
            demo.check_text()]


def step_comeback(demo: Demo) -> list[str]:
    victim = demo.crashed or "node1"
    owner = demo.owner()
    old_epoch = _node_field(demo, victim, "epoch")
    elapsed = demo.timed("rejoin", lambda: _restart_node(demo, victim),
                         lambda: _wait(lambda: _node_field(demo, victim, "state") == "up", 10,
                                       f"{victim} to be up"))
    new_epoch = _node_field(demo, victim, "epoch")
    still = demo.owner()
    if still != owner:
        raise StepFailed(f"failback is 'never' but {GROUP} moved from {owner} to {still}")
    return [f"{victim} rejoined in {elapsed:.2f} s (lease epoch {old_epoch} -> {new_epoch}); "
            f"failback is 'never' (the MSCS default), so {GROUP} stays on {owner}",
            "with --failback immediate (or a window such as 22-06) it would move back to its "
            "preferred owner"]


def _restart_node(demo: Demo, name: str) -> None:
    pid, _ = api.start_node_detached(demo.store, demo.store_path, name, demo.root / name)
    pids = demo.root / "pids"  # demo.sh's record: './demo.sh stop' ends this node too
    if pids.exists():
        with pids.open("a", encoding="utf-8") as out:
            out.write(f"{pid}\n")


def step_pause(demo: Demo) -> list[str]:
    owner = demo.owner()
    elapsed = demo.timed("drain", lambda: api.set_node_paused(demo.store, owner, True),
                         lambda: demo.wait_online(20, not_owner=owner))
    new_owner = demo.owner()
    api.set_node_paused(demo.store, owner, False)
    return [f"paused {owner}: {GROUP} drained to {new_owner} in {elapsed:.2f} s; {owner} "
            "resumed and may host groups again", demo.check_text()]


STEPS = [
    Step("The cluster and its nodes",
         "each node pane: a node service holding a lease; its resource monitor is a child "
         "process", "show the nodes", step_nodes),
    Step("The notepad group and its resources",
         "a group is the unit of failover; resources come online in dependency order",
         "show the group", step_group),
    Step("Type something into the notepad",
         "the attach pane: the editor runs on the owner node, its file on the shared store",
         "check what was saved", step_type, before=note_baseline),
    Step("A planned move (Move Group)",
         "the attach pane follows the editor to the next node", "move the group", step_move),
    Step("An application failure",
         "the owner's log: the monitor sees the exit at once; the service restarts it in place",
         "fail notepad-app", step_app_failure),
    Step("The owner node crashes",
         "the attach pane shows a banner, then the editor on a survivor with your text",
         "crash the owner node", step_crash),
    Step("The node comes back: the failback policy",
         "the crashed node's pane: it rejoins with a new epoch", "restart the crashed node",
         step_comeback),
    Step("Pause a node (drain)",
         "the group moves away from a paused node", "pause the owner node", step_pause),
]


def _other_node(demo: Demo, source: str) -> str:
    up = [n["name"] for n in api.status(demo.store)["nodes"] if n["state"] == "up"
          and n["name"] != source]
    if not up:
        raise StepFailed("no other node is up")
    return sorted(up)[0]


def _node_field(demo: Demo, name: str, key: str) -> Any:
    return next((n.get(key) for n in api.status(demo.store)["nodes"] if n["name"] == name),
                None)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise StepFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)  # bounded poll: some conditions (a file's content) touch no store key
