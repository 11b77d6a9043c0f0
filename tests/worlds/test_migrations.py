"""Schemas are migration files; a database made by the previous release upgrades in place."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

import workflowkit
from workflowkit import create_hook, sleep, step, workflow
from workflowkit.api import get_run
from workflowkit.errors import CorruptDataError
from workflowkit.worlds.records import EventType, RunStatus
from workflowkit.worlds.sqlite import SQLiteWorld
from workflowkit.worlds.sqlite._schema import MIGRATIONS as SQLITE_MIGRATIONS

FIXTURES = Path(__file__).parents[1] / "fixtures"


@step(name="fixture.add")
async def add(x: int) -> int:
    return x + 1


@workflow(name="fixture.waiting")
async def waiting() -> object:
    first = await add(1)
    payload = await create_hook(token="fixture-token")
    await sleep("10 days")
    return [first, payload]


async def test_a_sqlite_file_of_the_previous_release_upgrades_in_place(tmp_path: Path) -> None:
    """``sqlite_schema4.db`` was written by the release before migration files (schema 4,
    see ``make_sqlite_schema4.py``): a completed run, a run asleep for 10 days holding a
    hook token, and a run that failed on that token."""
    db = tmp_path / "release.db"
    shutil.copy(FIXTURES / "sqlite_schema4.db", db)
    world = SQLiteWorld(db)
    try:
        runs = {r.workflow_name + ":" + r.status: r for r in await world.list_runs()}
        assert set(runs) == {
            "fixture.done:completed",
            "fixture.waiting:running",
            "fixture.waiting:failed",
        }
        done = runs["fixture.done:completed"]
        assert [s.status for s in await world.list_steps(done.run_id)] == ["completed"] * 2
        assert len(await world.list_streams(done.run_id)) == 1
        asleep = runs["fixture.waiting:running"]
        hook = await world.get_hook_by_token("fixture-token")
        assert hook is not None and hook.run_id == asleep.run_id
        assert [w.completed_at for w in await world.list_waits(asleep.run_id)] == [None]
    finally:
        await world.close()
    conn = sqlite3.connect(db)
    applied = [row[0] for row in conn.execute("SELECT version FROM migrations ORDER BY 1")]
    assert applied == [m.version for m in SQLITE_MIGRATIONS]
    assert "meta" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()

    # The sleeping run, woken, finishes under today's code from where it was.
    workflowkit.configure(f"sqlite:///{db}")
    try:
        run = get_run(asleep.run_id)
        assert await run.wake_up() != []
        assert await run.return_value(timeout=10) == [2, {"ok": True}]
        world = workflowkit.runtime.runtime.get_runtime().world
        kinds = [e.type for e in await world.get_events(asleep.run_id)]
        assert kinds.count(EventType.STEP_COMPLETED) == 1  # the step did not run again
        assert (await world.get_run(asleep.run_id)).status is RunStatus.COMPLETED  # type: ignore[union-attr]
    finally:
        workflowkit.shutdown()


def test_opening_a_file_twice_applies_nothing_twice(tmp_path: Path) -> None:
    for _ in range(2):
        asyncio.run(SQLiteWorld(tmp_path / "w.db").close())
    conn = sqlite3.connect(tmp_path / "w.db")
    rows = conn.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in SQLITE_MIGRATIONS]


@pytest.mark.parametrize(("version", "hint"), [("1", "delete the file"), ("99", "upgrade")])
def test_a_file_of_another_schema_is_refused_clearly(
    tmp_path: Path, version: str, hint: str
) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema', ?)", (version,))
    conn.commit()
    conn.close()
    with pytest.raises(CorruptDataError, match=hint):
        SQLiteWorld(db)


def test_a_file_migrated_by_a_newer_release_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    asyncio.run(SQLiteWorld(db).close())
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO migrations (version, name) VALUES (999, 'from_the_future')")
    conn.commit()
    conn.close()
    with pytest.raises(CorruptDataError, match="newer workflowkit"):
        SQLiteWorld(db)


async def test_a_postgres_schema_of_the_previous_release_upgrades_in_place(
    pg_url: str, pg_schema: str
) -> None:
    """The previous release applied migrations 1 to 4 (the same files), and ran steps of
    the step queue; opening the schema with this release applies the rest, data intact."""
    import psycopg
    from psycopg import sql

    from workflowkit.worlds.postgres import PostgresWorld
    from workflowkit.worlds.postgres._world import MIGRATIONS as PG_MIGRATIONS

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg_schema)))
        conn.execute(
            "CREATE TABLE migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        for migration in PG_MIGRATIONS[:4]:
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
        conn.execute(
            "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at) "
            "VALUES ('wrun_1', 'wf', 'running', now(), now(), now())"
        )
        conn.execute(
            "INSERT INTO events (run_id, seq, event_id, type, payload, created_at) VALUES "
            "('wrun_1', 1, 'evnt_1', 'run_created', 'in', now()), "
            "('wrun_1', 2, 'evnt_2', 'step_created', 'args', now())"
        )
        conn.execute(
            "INSERT INTO steps (run_id, step_id, step_name, status, attempt, input_seq, "
            "created_at, executor, lease_until) VALUES "
            "('wrun_1', 'step_1', 's', 'running', 1, 2, now(), 'wrkr_old', now())"
        )
    world = PostgresWorld(pg_url, schema=pg_schema)
    try:
        (step,) = await world.list_steps("wrun_1")
        assert step.claimed_by == "wrkr_old" and step.input == b"args"
        record = await world.get_run("wrun_1")
        assert record is not None and record.input == b"in" and record.last_seq == 2
    finally:
        await world.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        table = sql.Identifier(pg_schema, "migrations")
        rows = conn.execute(sql.SQL("SELECT version FROM {} ORDER BY 1").format(table))
        assert [r[0] for r in rows] == [m.version for m in PG_MIGRATIONS]
