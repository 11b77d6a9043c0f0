"""The pytest plugin: ``workflow_runtime``, an isolated World and worker for each test.

The World is a fresh SQLite file in the test's temporary directory, or, when
``WORKFLOWKIT_TEST_WORLD`` names a ``postgresql://`` database, a fresh schema in it that is
dropped afterwards. Options go in a marker:
``@pytest.mark.workflowkit(virtual_clock=True, cache_runs=False, evict_after=0)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import workflowkit
from workflowkit.ids import new_id
from workflowkit.runtime.runtime import Runtime


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "workflowkit(**options): options for the workflow_runtime fixture "
        "(virtual_clock, cache_runs, evict_after, lease_seconds, ...)",
    )


@pytest.fixture
def workflow_runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A fresh World and embedded worker for one test, configured process-wide.

    Options from ``@pytest.mark.workflowkit(...)`` go to ``workflowkit.configure``.
    """
    marker = request.node.get_closest_marker("workflowkit")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    base = os.environ.get("WORKFLOWKIT_TEST_WORLD", "")
    schema = None
    if base.startswith(("postgresql://", "postgres://")):
        schema = "wk_test_" + new_id("wrun").split("_", 1)[1].lower()
        url = f"{base}{'&' if '?' in base else '?'}schema={schema}"
    else:
        url = f"sqlite:///{tmp_path / 'workflowkit.db'}"
    runtime = workflowkit.configure(url, **options)
    try:
        yield runtime
    finally:
        workflowkit.shutdown()
        if schema is not None:
            _drop_schema(base, schema)


def _drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
