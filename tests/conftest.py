"""Each test gets its own SQLite World and embedded worker.

Behaviour tests run twice: with the in-memory run cache (the hot path) and without it, where
every event makes the worker rebuild the run from the log (a thorough determinism check).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import workflowkit
from workflowkit.runtime.runtime import Runtime


@pytest.fixture(params=["cached", "replay"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    rt = workflowkit.configure(
        f"sqlite:///{tmp_path / 'wk.db'}",
        cache_runs=request.param == "cached",
        poll_interval=0.2,
        lease_seconds=5,
    )
    yield rt
    workflowkit.shutdown()


@pytest.fixture
def cached_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """One mode only, for tests about the runtime itself rather than workflow behaviour."""
    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.2)
    yield rt
    workflowkit.shutdown()
