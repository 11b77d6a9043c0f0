"""Fixtures of the dashboard tests: the seeded database (see web_seed.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from web_seed import Seeded, copy_seed, seed

import workflowkit

# The fail tests hold a run inside a step with the runtime tests' helper (blocked_step.py),
# importable however pytest was started (the whole suite, or only this folder).
RUNTIME_TESTS = str(Path(__file__).parents[1] / "runtime")
if RUNTIME_TESTS not in sys.path:
    sys.path.append(RUNTIME_TESTS)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    folder = tmp_path_factory.mktemp("web-seed")
    workflowkit.configure(f"sqlite:///{folder / 'wk.db'}", poll_interval=0.05)
    try:
        ids = asyncio.run(seed())
    finally:
        workflowkit.shutdown()
    return folder, ids


@pytest.fixture
def seeded(seeded_template: tuple[Path, tuple[str, ...]], tmp_path: Path) -> Iterator[Seeded]:
    yield copy_seed(seeded_template, tmp_path)
    workflowkit.shutdown()
