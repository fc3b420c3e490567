"""pytest plugin (auto-registered): the ``workbench_replay`` fixture.

    def test_refund_regression(workbench_replay):
        workbench_replay("1a2b3c", db="traces/regressions.duckdb")

The fixture is :func:`workbench.testing.assert_replays`. ``--workbench-db PATH`` sets the
default database for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: Any) -> None:
    parser.addoption("--workbench-db", default=None, help="trace store for the workbench_replay fixture")


@pytest.fixture
def workbench_replay(request: Any) -> Callable[..., Any]:
    """Assert that a recorded run replays identically against the current code."""
    from workbench.testing import assert_replays

    default_db = request.config.getoption("--workbench-db")

    def check(run_id: str, db: str | None = None, graph: Any = None) -> Any:
        return assert_replays(run_id, db=db or default_db, graph=graph)

    return check
