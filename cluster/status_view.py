"""Human views of ``hacluster status``: a plain table, and a live one for ``--watch``."""

from __future__ import annotations

import io
import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from cluster import api
from shared_store import Store


def build_table(current: dict[str, Any]) -> Table:
    table = Table(title=f"cluster {current['cluster']}", title_justify="left", expand=False)
    for column in ("kind", "name", "state", "where", "epoch", "pid"):
        table.add_column(column)
    for node in current["nodes"]:
        table.add_row("node", node["name"], node["state"], node["address"] or "",
                      str(node["epoch"]), str(node["pid"] or ""))
    for group in current["groups"]:
        table.add_row("group", group["name"], group["state"], group["owner"] or "",
                      str(group["epoch"]), "")
        for res in group["resources"]:
            table.add_row("  resource", f"  {res['name']} ({res['type']})", res["state"], "",
                          "", str(res["pid"] or ""))
    return table


def render_text(current: dict[str, Any]) -> str:
    console = Console(width=100, file=io.StringIO())
    console.print(build_table(current))
    return console.file.getvalue().rstrip()  # type: ignore[attr-defined]


def watch_status(store: Store) -> None:
    """Redraw on every store change (and each second, for lease expiries); ctrl+c leaves.
    Not on a terminal (a pipe, a log), each changed table is printed in full instead."""
    with store.watch("status") as watch:
        if not sys.stdout.isatty():
            last = ""
            while True:
                text = render_text(api.status(store))
                if text != last:
                    print(text, flush=True)
                    last = text
                watch.wait(1.0)
        with Live(build_table(api.status(store)), auto_refresh=False) as live:
            while True:
                watch.wait(1.0)
                live.update(build_table(api.status(store)), refresh=True)
