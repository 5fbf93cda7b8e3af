"""The dashboard's actions: each is the ``cluster.api`` call the CLI makes, run in a worker,
confirmed by a dialog where it disrupts; offered by key bindings and the command palette."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import SystemCommand
from textual.screen import Screen

from cluster import api
from cluster.admin.dialogs import BEST, ConfirmDialog, MoveDialog
from cluster.admin.messages import ActionDone
from cluster.admin.mirror import ClusterView
from cluster.admin.model import Item
from shared_store import Store, StoreError

if TYPE_CHECKING:
    from textual.app import App

    _Base = App[None]
else:
    _Base = object

STOP_WAIT = 30.0  # as `hacluster node stop`

# Which selected item each action applies to (a resource's group for group actions).
ACTION_KINDS: dict[str, frozenset[str]] = {
    "move": frozenset({"group", "resource"}),
    "online": frozenset({"group", "resource"}),
    "offline": frozenset({"group", "resource"}),
    "fail": frozenset({"resource"}),
    "pause": frozenset({"node"}),
    "resume": frozenset({"node"}),
    "stop_node": frozenset({"node"}),
    "crash": frozenset({"node"}),
}


def _then(call: Callable[[], object], text: str) -> Callable[[], str]:
    """An action for ``run_api``: make the API call, then say what the CLI would say."""
    def run() -> str:
        call()
        return text

    return run


class AdminActions(_Base):
    """Mixed into AdminApp, which provides the store, the current view and the selection."""

    store: Store
    view: ClusterView | None
    selected: Item

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Item actions apply to the selection, and only on the main screen (not under a
        dialog or the timeline)."""
        kinds = ACTION_KINDS.get(action)
        if kinds is None and action not in ("filter", "filter_selected", "timeline"):
            return True
        if len(self.screen_stack) > 1:
            return False
        return kinds is None or self.selected.kind in kinds

    def _group_of(self, item: Item) -> str:
        if item.kind == "group" or self.view is None:
            return item.name
        spec = self.view.snapshot.resources.get(item.name)
        return spec.group if spec else item.name

    def _node_entries(self) -> list[dict[str, Any]]:
        return list(self.view.status["nodes"]) if self.view else []

    def _owner_of(self, group: str) -> str | None:
        if self.view is None:
            return None
        return next((g["owner"] for g in self.view.status["groups"] if g["name"] == group),
                    None)

    def action_move(self) -> None:
        self.ask_move(self._group_of(self.selected))

    def action_online(self) -> None:
        self.ask_online(self.selected)

    def action_offline(self) -> None:
        self.ask_offline(self.selected)

    def action_fail(self) -> None:
        self.ask_fail(self.selected.name)

    def action_pause(self) -> None:
        self.ask_pause(self.selected.name)

    def action_resume(self) -> None:
        self.ask_resume(self.selected.name)

    def action_stop_node(self) -> None:
        self.ask_stop(self.selected.name)

    def action_crash(self) -> None:
        self.ask_crash(self.selected.name)

    def ask_move(self, group: str) -> None:
        def chosen(to: str | None) -> None:
            if to is None:
                return
            target = None if to == BEST else to
            self.run_api(lambda: f"moving {group} to "
                            f"{api.move_group(self.store, group, target)}")

        self.push_screen(MoveDialog(group, self._owner_of(group), self._node_entries()),
                         chosen)

    def ask_online(self, item: Item) -> None:
        store = self.store
        if item.kind == "resource":
            name = item.name
            self.run_api(_then(partial(api.set_resource_desired, store, name, "online"),
                                  f"{name}: online requested"))
        else:
            group = self._group_of(item)
            self.run_api(_then(partial(api.set_group_desired, store, group, "online"),
                                  f"{group}: online requested"))

    def ask_offline(self, item: Item) -> None:
        store = self.store
        if item.kind == "resource":
            name = item.name
            self._confirm(f"Take resource {name} offline?",
                          "Resources that depend on it go offline first.", "Take offline",
                          _then(partial(api.set_resource_desired, store, name, "offline"),
                                f"{name}: offline requested"))
        else:
            group = self._group_of(item)
            self._confirm(f"Take group {group} offline?",
                          "All its resources stop, in reverse dependency order.",
                          "Take offline",
                          _then(partial(api.set_group_desired, store, group, "offline"),
                                f"{group}: offline requested"))

    def ask_fail(self, resource: str) -> None:
        self._confirm(f"Simulate a failure of {resource}?",
                      "Its node terminates it and handles it as a real failure: a restart, "
                      "or a failover past the restart threshold.", "Fail it",
                      _then(partial(api.fail_resource, self.store, resource),
                            f"{resource}: failure requested"))

    def ask_pause(self, node: str) -> None:
        self._confirm(f"Pause node {node}?", "Its groups move away and it hosts nothing until "
                      "resumed.", "Pause",
                      _then(partial(api.set_node_paused, self.store, node, True),
                            f"node {node} paused"))

    def ask_resume(self, node: str) -> None:
        self.run_api(_then(partial(api.set_node_paused, self.store, node, False),
                              f"node {node} resumed"))

    def ask_stop(self, node: str) -> None:
        self._confirm(f"Stop node {node}?", "Graceful: its groups move away first, then the "
                      "node service leaves the cluster.", "Stop",
                      _then(partial(api.stop_node, self.store, node, STOP_WAIT),
                            f"node {node} stopped"))

    def ask_crash(self, node: str) -> None:
        def crash() -> str:
            pids = api.kill_node(self.store, node)
            return f"killed node {node}: {len(pids)} process(es) ({', '.join(map(str, pids))})"

        self._confirm(f"Crash node {node}?", "SIGKILL of its whole process tree, as a power "
                      "cut would: its groups fail over once its lease expires.", "Crash", crash)

    def _confirm(self, title: str, message: str, confirm: str, fn: Callable[[], str]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.run_api(fn)

        self.push_screen(ConfirmDialog(title, message, confirm), answered)

    @work(thread=True, group="actions", exit_on_error=False)
    def run_api(self, fn: Callable[[], str]) -> None:
        """One ``cluster.api`` call; its result or its one-line error becomes a notification."""
        try:
            text, ok = fn(), True
        except (api.ApiError, StoreError) as exc:
            text, ok = str(exc), False
        self.post_message(ActionDone(text, ok))

    # --- the command palette -----------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Failover timeline", "Where the seconds of each failover go",
                            self.action_timeline)
        if self.view is None:
            return
        selected = self.selected
        for node in self.view.status["nodes"]:
            name = node["name"]
            here = selected == Item("node", name)
            yield SystemCommand(f"Pause node {name}", "Drain it: its groups move away",
                                partial(self.ask_pause, name), here)
            yield SystemCommand(f"Resume node {name}", "Let it host groups again",
                                partial(self.ask_resume, name), here)
            yield SystemCommand(f"Stop node {name}", "Graceful stop: groups move first",
                                partial(self.ask_stop, name), here)
            yield SystemCommand(f"Crash node {name}", "SIGKILL its process tree (demo)",
                                partial(self.ask_crash, name), here)
        for group in self.view.status["groups"]:
            name = group["name"]
            here = self._group_of(selected) == name and selected.kind in ("group", "resource")
            yield SystemCommand(f"Move group {name}", "Choose the node it moves to",
                                partial(self.ask_move, name), here)
            yield SystemCommand(f"Bring group {name} online", "Also forgives past failures",
                                partial(self.ask_online, Item("group", name)), here)
            yield SystemCommand(f"Take group {name} offline", "All its resources stop",
                                partial(self.ask_offline, Item("group", name)), here)
            for res in group["resources"]:
                mine = selected == Item("resource", res["name"])
                yield SystemCommand(f"Bring resource {res['name']} online", "In group " + name,
                                    partial(self.ask_online, Item("resource", res["name"])),
                                    mine)
                yield SystemCommand(f"Take resource {res['name']} offline", "In group " + name,
                                    partial(self.ask_offline, Item("resource", res["name"])),
                                    mine)
                yield SystemCommand(f"Simulate failure of {res['name']}",
                                    "MSCS Initiate Failure",
                                    partial(self.ask_fail, res["name"]), mine)

