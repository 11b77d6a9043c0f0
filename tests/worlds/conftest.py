from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from workflowkit.encryption import EncryptionKeys
from workflowkit.worlds import encrypted
from workflowkit.worlds.base import World
from workflowkit.worlds.sqlite import SQLiteWorld


@pytest.fixture(params=["sqlite", "postgres", "sqlite-encrypted", "postgres-encrypted"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """Every conformance test runs on each World; PostgreSQL gets a fresh schema. Each runs
    again encrypting its payloads at rest (``worlds.encrypted``), which must change nothing
    a caller sees."""
    instance: World
    if request.param.startswith("sqlite"):
        instance = SQLiteWorld(tmp_path / "world.db")
    else:
        from workflowkit.worlds.postgres import PostgresWorld

        instance = PostgresWorld(
            request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema")
        )
    if request.param.endswith("-encrypted"):
        instance = encrypted(instance, EncryptionKeys([("k1", os.urandom(32))]))
    yield instance
    await instance.close()


@pytest.fixture
def flaky_commit(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Make the next COMMIT fail on the client side: ``after`` the server committed it
    (the reply was lost) or ``before`` it was sent; ``through`` lets one pass first."""
    real = psycopg.AsyncConnection.execute
    plan: list[str] = []

    async def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if query == "COMMIT" and plan:
            when = plan.pop(0)
            if when == "through":
                return await real(self, query, *args, **kwargs)
            if when == "after":
                await real(self, query, *args, **kwargs)
            raise psycopg.OperationalError("connection lost (simulated)")
        return await real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute)
    yield plan.append


VmWork = Callable[[sqlite3.Connection, Callable[[], object]], int]


@pytest.fixture
def vm_work() -> VmWork:
    """SQLite virtual machine instructions (in tens) a statement runs on ``conn``: the
    work, whatever the clock."""

    def work(conn: sqlite3.Connection, statement: Callable[[], object]) -> int:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0

        conn.set_progress_handler(tick, 10)
        try:
            statement()
        finally:
            conn.set_progress_handler(None, 10)
        return counted[0]

    return work
