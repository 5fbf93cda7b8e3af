"""``hacluster admin``: the Cluster Administrator in the terminal (Textual)."""

from __future__ import annotations

from shared_store import Store


def run_admin(store: Store) -> None:
    """Run the dashboard on ``store`` until the user quits (q)."""
    from cluster.admin.app import AdminApp  # Textual loads only when the dashboard runs

    AdminApp(store).run()


__all__ = ["run_admin"]
