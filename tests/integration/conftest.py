from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Cluster


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    ttl = getattr(request, "param", 2.0)
    c = Cluster(tmp_path, lease_ttl=ttl)
    try:
        yield c
    finally:
        c.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(c.dump_logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
