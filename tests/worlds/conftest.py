from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from workflowkit.worlds.base import World
from workflowkit.worlds.sqlite import SQLiteWorld


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """Every conformance test runs on each World; PostgreSQL gets a fresh schema."""
    instance: World
    if request.param == "sqlite":
        instance = SQLiteWorld(tmp_path / "world.db")
    else:
        from workflowkit.worlds.postgres import PostgresWorld

        instance = PostgresWorld(
            request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema")
        )
    yield instance
    await instance.close()
