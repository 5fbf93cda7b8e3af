"""``hacluster``: cluster.exe for HA Notepad. Thin commands over ``cluster.api``.

Exit codes: 0 success, 1 the operation failed or timed out, 2 bad usage or bad input, always
with one line on stderr that says what to do.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cluster import api
from cluster.api import ApiError
from cluster.model import ModelError
from shared_store import StoreError

STORE_HELP = "cluster store directory (default: $HACLUSTER_STORE, else the user data dir)"


def default_store() -> str:
    import platformdirs

    return str(platformdirs.user_data_path("hacluster") / "cluster")


def fail(message: str, code: int = 2) -> None:
    click.echo(f"hacluster: error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One exception type per kind of failure becomes one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            fail(str(exc), exc.code)
        except (StoreError, ModelError) as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            sys.exit(130)

    return wrapper


store_option = click.option("--store", "store_path", envvar="HACLUSTER_STORE",
                            default=default_store, show_default=False, help=STORE_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
wait_option = click.option("--wait", type=click.FloatRange(min=0), default=None,
                           metavar="SECONDS", help="wait for the outcome")


def open_store(path: str):  # noqa: ANN201 - Store
    from shared_store import open_store as _open

    return _open(path)


def split_names(_ctx: Any, _param: Any, value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(n.strip() for n in value.split(",") if n.strip())


class OneLineErrors(click.Group):
    """Usage errors as one line that says what to do, with exit code 2."""

    LAZY = {"discover": ("cluster.discovery", "discover_command")}  # zeroconf loads on use

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            import importlib

            module, attr = self.LAZY[cmd_name]
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "hacluster"
            where = where.replace("main", "hacluster", 1) if where.startswith("main") else where
            fail(f"{exc.format_message()} (see '{where} --help')", 2)
        except click.Abort:
            sys.exit(130)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """HA Notepad's cluster: nodes, groups and resources in the Microsoft Cluster Service model."""


# --- init / status / events -----------------------------------------------------------------


@main.command()
@store_option
@click.option("--name", default="hacluster", show_default=True, help="cluster name")
@click.option("--lease-ttl", type=click.FloatRange(min=0.2, max=600), default=2.0,
              show_default=True, metavar="SECONDS", help="node lease time to live")
@handle_errors
def init(store_path: str, name: str, lease_ttl: float) -> None:
    """Create a new cluster store."""
    from shared_store import init_store

    api.check_name_bad("cluster", name)
    init_store(store_path, name=name, settings={"lease_ttl": lease_ttl})
    click.echo(f"created cluster {name} in {store_path} (lease TTL {lease_ttl:g} s)")


@main.command()
@store_option
@json_option
@click.option("--watch", is_flag=True, help="a live table that follows every change")
@handle_errors
def status(store_path: str, as_json: bool, watch: bool) -> None:
    """Nodes, groups and resources, and where each runs."""
    store = open_store(store_path)
    if watch:
        from cluster.status_view import watch_status

        watch_status(store)
        return
    current = api.status(store)
    if as_json:
        click.echo(json.dumps(current))
        return
    from cluster.status_view import render_text

    click.echo(render_text(current))


@main.command()
@store_option
@json_option
@click.option("--follow", is_flag=True, help="keep printing new events")
@click.option("--since", type=int, default=0, help="only events after this sequence number")
@handle_errors
def events(store_path: str, as_json: bool, follow: bool, since: int) -> None:
    """The cluster's event log, oldest first."""
    from cluster.events import format_line

    store = open_store(store_path)
    last = since
    while True:
        batch = store.events(since=last)
        for event in batch:
            click.echo(json.dumps(event) if as_json else format_line(event))
            last = event["seq"]
        if not follow:
            return
        sys.stdout.flush()
        if not batch:
            for event in store.wait_events(last, timeout=1.0):
                click.echo(json.dumps(event) if as_json else format_line(event))
                last = event["seq"]


# --- nodes ----------------------------------------------------------------------------------


@main.group()
def node() -> None:
    """Start, stop, pause or crash a node."""


@node.command("start")
@store_option
@click.argument("name")
@click.option("--local-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the node's local disk (default: under the user state dir)")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="address for consoles and announcements")
@click.option("--detach", is_flag=True, help="run in the background, logging to a file")
@handle_errors
def node_start(store_path: str, name: str, local_dir: Path | None, address: str,
               detach: bool) -> None:
    """Run the node service (MSCS's cluster service) for NAME."""
    from cluster.node.service import NodeAlreadyRunning, NodeService

    api.check_name_bad("node", name)
    store = open_store(store_path)
    local = (local_dir or api.default_local_dir(store, name)).absolute()
    if detach:
        _start_detached(store, store_path, name, local, address)
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s {name} %(levelname)s %(message)s")
    service = NodeService(store, name, local, address)
    service.install_signal_handlers()
    try:
        code = service.run()
    except NodeAlreadyRunning as exc:
        fail(str(exc), 1)
    sys.exit(code)


def _start_detached(store: Any, store_path: str, name: str, local: Path, address: str) -> None:
    pid, log_path = api.start_node_detached(store, Path(store_path), name, local, address)
    click.echo(f"node {name} started (pid {pid}); log: {log_path}")


@node.command("stop")
@store_option
@click.argument("name")
@click.option("--wait", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS")
@handle_errors
def node_stop(store_path: str, name: str, wait: float) -> None:
    """Graceful stop: the node's groups move away first."""
    api.stop_node(open_store(store_path), name, wait)
    click.echo(f"node {name} stopped")


@node.command("kill")
@store_option
@click.argument("name")
@handle_errors
def node_kill(store_path: str, name: str) -> None:
    """SIGKILL the node's whole process tree (a crash, for demos)."""
    pids = api.kill_node(open_store(store_path), name)
    click.echo(f"killed node {name}: {len(pids)} process(es) ({', '.join(map(str, pids))})")


@node.command("pause")
@store_option
@click.argument("name")
@handle_errors
def node_pause(store_path: str, name: str) -> None:
    """Drain a node: its groups move away and it hosts nothing until resumed."""
    api.set_node_paused(open_store(store_path), name, True)
    click.echo(f"node {name} paused")


@node.command("resume")
@store_option
@click.argument("name")
@handle_errors
def node_resume(store_path: str, name: str) -> None:
    """Let a paused node host groups again."""
    api.set_node_paused(open_store(store_path), name, False)
    click.echo(f"node {name} resumed")


# --- groups ---------------------------------------------------------------------------------


@main.group()
def group() -> None:
    """Create, move, bring online or offline, delete a group."""


@group.command("create")
@store_option
@click.argument("name")
@click.option("--preferred-owners", callback=split_names, default="", metavar="A,B",
              help="nodes in order of preference")
@click.option("--possible-owners", callback=split_names, default="", metavar="A,B",
              help="the only nodes that may host it (default: any)")
@click.option("--failback", default="never", show_default=True,
              metavar="never|immediate|HH-HH")
@click.option("--failover-threshold", type=click.IntRange(min=0), default=None,
              help="failovers allowed in the period (default: nodes - 1)")
@click.option("--failover-period", type=click.FloatRange(min=1), default=6 * 3600.0,
              show_default=True, metavar="SECONDS")
@click.option("--anti-affinity", default=None, metavar="CLASS",
              help="keep apart from groups of the same class when a node is free")
@handle_errors
def group_create(store_path: str, name: str, preferred_owners: tuple[str, ...],
                 possible_owners: tuple[str, ...], failback: str,
                 failover_threshold: int | None, failover_period: float,
                 anti_affinity: str | None) -> None:
    """Create a group: the unit of failover."""
    store = open_store(store_path)
    spec = api.build_group(store, name, preferred_owners, failback, failover_threshold,
                           failover_period, possible_owners, anti_affinity)
    api.create_group(store, spec)
    click.echo(f"group {name} created")


def _wait_group(store: Any, name: str, wait: float | None, want: Callable[[Any], bool],
                what: str) -> None:
    if wait is None:
        return
    current = api.wait_for(store, lambda s: want(api.group_entry(s, name)), wait, what)
    entry = api.group_entry(current, name)
    click.echo(f"{name} is {entry.get('state')}" + (f" on {entry['owner']}"
                                                    if entry.get("owner") else ""))


@group.command("online")
@store_option
@click.argument("name")
@wait_option
@handle_errors
def group_online(store_path: str, name: str, wait: float | None) -> None:
    """Bring a group online (and forgive its past failures)."""
    store = open_store(store_path)
    api.set_group_desired(store, name, "online")
    _wait_group(store, name, wait, lambda g: g.get("state") == "online",
                f"{name} to come online")


@group.command("offline")
@store_option
@click.argument("name")
@wait_option
@handle_errors
def group_offline(store_path: str, name: str, wait: float | None) -> None:
    """Take a group offline, resources in reverse dependency order."""
    store = open_store(store_path)
    api.set_group_desired(store, name, "offline")
    _wait_group(store, name, wait, lambda g: g.get("state") == "offline",
                f"{name} to go offline")


@group.command("move")
@store_option
@click.argument("name")
@click.option("--to", "to", default=None, metavar="NODE", help="target node (default: best)")
@wait_option
@handle_errors
def group_move(store_path: str, name: str, to: str | None, wait: float | None) -> None:
    """Move a group to another node (planned)."""
    store = open_store(store_path)
    target = api.move_group(store, name, to)
    click.echo(f"moving {name} to {target}")
    _wait_group(store, name, wait,
                lambda g: g.get("owner") == target and g.get("state") == "online",
                f"{name} to come online on {target}")


@group.command("delete")
@store_option
@click.argument("name")
@handle_errors
def group_delete(store_path: str, name: str) -> None:
    """Delete an empty group."""
    api.delete_group(open_store(store_path), name)
    click.echo(f"group {name} deleted")


# --- resources ------------------------------------------------------------------------------


@main.group()
def resource() -> None:
    """Create, bring online or offline, fail, delete a resource."""


def parse_props(_ctx: Any, _param: Any, values: tuple[str, ...]) -> dict[str, str]:
    props: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        props[key.strip()] = value
    return props


@resource.command("create")
@store_option
@click.argument("name")
@click.option("--group", "group_name", required=True, metavar="G")
@click.option("--type", "rtype", required=True, metavar="TYPE")
@click.option("--prop", "props", multiple=True, callback=parse_props, metavar="KEY=VALUE")
@click.option("--depends-on", multiple=True, metavar="R")
@click.option("--restart-threshold", type=click.IntRange(min=0), default=None)
@click.option("--restart-period", type=click.FloatRange(min=0.1), default=None,
              metavar="SECONDS")
@click.option("--restart-action", type=click.Choice(["restart", "restart-no-failover",
                                                     "dont-restart"]), default=None)
@click.option("--separate-monitor", is_flag=True, default=None,
              help="host it in a resource monitor of its own")
@handle_errors
def resource_create(store_path: str, name: str, group_name: str, rtype: str,
                    props: dict[str, str], depends_on: tuple[str, ...],
                    restart_threshold: int | None, restart_period: float | None,
                    restart_action: str | None, separate_monitor: bool | None) -> None:
    """Create a resource in a group."""
    store = open_store(store_path)
    policy = {k: v for k, v in {"restart_threshold": restart_threshold,
                                "restart_period": restart_period,
                                "restart_action": restart_action,
                                "separate_monitor": separate_monitor}.items() if v is not None}
    spec = api.build_resource(store, name, group_name, rtype, props, depends_on, policy)
    api.create_resource(store, spec)
    click.echo(f"resource {name} created in {group_name}")


def _resource_command(name: str, help_text: str, fn: Callable[[Any, str], None],
                      done: str) -> None:
    @resource.command(name, help=help_text)
    @store_option
    @click.argument("resource_name", metavar="NAME")
    @handle_errors
    def command(store_path: str, resource_name: str) -> None:
        fn(open_store(store_path), resource_name)
        click.echo(done.format(name=resource_name))


_resource_command("online", "Bring a resource online (and forgive its past failures).",
                  lambda s, n: api.set_resource_desired(s, n, "online"), "{name}: online requested")
_resource_command("offline", "Take a resource offline (its dependents go first).",
                  lambda s, n: api.set_resource_desired(s, n, "offline"),
                  "{name}: offline requested")
_resource_command("fail", "Simulate a failure (MSCS Initiate Failure).", api.fail_resource,
                  "{name}: failure requested")
_resource_command("delete", "Delete a resource (and its checkpoints).", api.delete_resource,
                  "resource {name} deleted")


# --- clients --------------------------------------------------------------------------------


@main.command()
@store_option
@click.argument("name")
@json_option
@handle_errors
def attach(store_path: str, name: str, as_json: bool) -> None:
    """The console of an interactive app (group or resource name); ctrl+] detaches."""
    from cluster.console.attach import AttachError
    from cluster.console.attach import attach as run_attach

    store = open_store(store_path)
    group_name = api.resolve_group(store, name)
    try:
        code = run_attach(store, group_name, as_json)
    except AttachError as exc:
        fail(str(exc), exc.code)
    sys.exit(code)


@main.command()
@store_option
@wait_option
@handle_errors
def notepad(store_path: str, wait: float | None) -> None:
    """Create the HA Notepad group (shared folder, network name, editor) and bring it online."""
    store = open_store(store_path)
    if not api.create_notepad(store):
        click.echo("the notepad group exists already; nothing changed")
        return
    click.echo("created the notepad group (notepad-disk, notepad-name, notepad-app); "
               "bringing it online")
    _wait_group(store, api.NOTEPAD_GROUP, wait, lambda g: g.get("state") == "online",
                "notepad to come online")


@main.command()
@store_option
@handle_errors
def admin(store_path: str) -> None:
    """The Cluster Administrator: a live dashboard of nodes, groups, resources and events."""
    from cluster.admin import run_admin

    run_admin(open_store(store_path))


# --- apply ----------------------------------------------------------------------------------


@main.command()
@store_option
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@handle_errors
def apply(store_path: str, file: Path) -> None:
    """Create or update groups and resources from a TOML file."""
    done = api.apply_file(open_store(store_path), file)
    click.echo(f"applied {file}: {', '.join(done) or 'nothing'}")


def run() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()


if __name__ == "__main__":
    run()
