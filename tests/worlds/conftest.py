from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from workflowkit.worlds.base import World
from workflowkit.worlds.sqlite import SQLiteWorld


@pytest.fixture(params=["sqlite"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    instance = SQLiteWorld(tmp_path / "world.db")
    yield instance
    await instance.close()
