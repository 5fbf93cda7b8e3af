"""Fixtures for end-to-end tests: a real cluster (tests/integration/harness.py) and real
terminals (tests/helpers/terminal.py). Every node tree and every terminal's process group is
killed at teardown, pass or fail; on failure the node logs are printed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.procs import ProcessTracker
from tests.helpers.terminal import Terminal
from tests.integration.harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(tmp_path, lease_ttl=getattr(request, "param", 2.0))
    try:
        yield c
    finally:
        c.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(c.dump_logs())


@pytest.fixture(scope="session")
def notepad_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One node with the notepad online, shared by the tests that leave it online (they may
    type in it, restart it, move it offline and back): starting a cluster costs more than
    most of those tests. Tests that crash a node take a ``cluster`` of their own."""
    from tests.e2e.notepad import GROUP, create_notepad

    cluster = Cluster(tmp_path_factory.mktemp("shared-cluster"))
    try:
        cluster.start_nodes("node1")
        create_notepad(cluster)
        cluster.wait_online(GROUP)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def terminals(request: pytest.FixtureRequest) -> Iterator[Callable[..., Terminal]]:
    """``terminals(argv, rows=24, cols=80, ...)``: a Terminal closed at teardown."""
    opened: list[Terminal] = []

    def open_terminal(argv: list[str], **kwargs: object) -> Terminal:
        term = Terminal(argv, **kwargs)  # type: ignore[arg-type]
        opened.append(term)
        return term
    with ProcessTracker() as tracker:
        try:
            yield open_terminal
        finally:
            report = getattr(request.node, "rep_call", None)
            for term in opened:
                tracker.track_tree(term.proc.pid)
                if report is not None and report.failed:
                    print(f"--- terminal {term.proc.args[4:]}\n{term.text()}")
                term.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
