"""What the PostgreSQL World's schedule calls do in their transactions (``Schedules``).

Firing locks the due schedules' rows ``FOR UPDATE SKIP LOCKED``: workers never wait for each
other, and a tick is fired by the one transaction that moves its schedule's ``next_tick``
past it. Each tick's run is created as ``create_run`` creates one (an advisory lock on the
run id, then a look for the run), after the schedule's row lock: no path takes those two
the other way round. An edit locks the schedule id (advisory: the row may not exist yet) and
then its row, so it waits for a firing of that schedule to commit. Decisions come from
``worlds.schedule_rules``.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncClientCursor

from .. import _schedule_sql, _sql
from .._rows import run_from_row, schedule_from_row
from ..apply import CreatePlan, plan_create_run
from ..records import (
    NO_OPTIONS,
    FiredTick,
    RunChange,
    ScheduleChange,
    ScheduleRecord,
    SchedulesDue,
)
from ..schedule_rules import Decision, TickInput, TickStart, plan_fire
from ._dialect import DIALECT, moment
from ._feed import Feed
from ._jobs import queue_create_run
from ._transactions import Conn

_DUE = DIALECT.sql(_schedule_sql.due_schedules(DIALECT) + " FOR UPDATE SKIP LOCKED")
_LOCK_ID = "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))"


async def lock_schedule(conn: Conn, schedule_id: str, channel: str) -> ScheduleRecord | None:
    """BEGIN, lock the schedule id and its row; the schedule, None if there is none."""
    cur = AsyncClientCursor(conn)
    await cur.execute(
        f"BEGIN; {_LOCK_ID}; {DIALECT.sql(_schedule_sql.SELECT_SCHEDULE)} FOR UPDATE",
        (channel, f"schedule {schedule_id}", schedule_id),
    )
    cur.nextset()
    cur.nextset()
    row = await cur.fetchone()
    return None if row is None else schedule_from_row(row, moment)


async def write_change(conn: Conn, schedule_id: str, change: ScheduleChange) -> None:
    if change.record is None:
        await conn.execute(DIALECT.sql(_schedule_sql.DELETE_SCHEDULE), (schedule_id,))
    else:
        params = _schedule_sql.schedule_params(change.record, DIALECT)
        await conn.execute(DIALECT.sql(_schedule_sql.UPSERT_SCHEDULE), params)


async def change_schedule(
    conn: Conn, schedule_id: str, decide: Decision, now: float, channel: str
) -> ScheduleRecord | None:
    """The schedule as it is after ``decide`` (the transaction is begun)."""
    existing = await lock_schedule(conn, schedule_id, channel)
    change = decide(existing, now)
    if change is None:
        return existing
    await write_change(conn, schedule_id, change)
    return change.record


async def fire(
    conn: Conn,
    names: Sequence[str],
    input_for: TickInput,
    at: float,
    now: float,
    limit: int,
    feed: Feed,
) -> tuple[list[FiredTick], list[RunChange]]:
    """Fire what is due by ``at``, beginning the transaction; runs are created at ``now``.
    The ticks that started a run, and the runs created (for listeners)."""
    await conn.execute("BEGIN")
    cur = await conn.execute(_DUE, (list(names), DIALECT.time(at), limit))
    due = [schedule_from_row(row, moment) for row in await cur.fetchall()]
    fired: list[FiredTick] = []
    changes: list[RunChange] = []
    for record in due:
        plan = plan_fire(record, await _active(conn, record.last_run_id), at, input_for)
        if plan is None:
            continue
        for start in plan.starts:
            created = await _create_run(conn, record, start, now, feed.channel)
            if created.change is not None:
                await queue_create_run(conn, created, feed)
                changes.append(created.change)
            fired.append(
                FiredTick(record.schedule_id, start.tick, start.run_id, created.result.created)
            )
        await write_change(conn, record.schedule_id, ScheduleChange(plan.record))
    return fired, changes


async def read(conn: Conn, schedule_id: str) -> ScheduleRecord | None:
    cur = await conn.execute(DIALECT.sql(_schedule_sql.SELECT_SCHEDULE), (schedule_id,))
    row = await cur.fetchone()
    return None if row is None else schedule_from_row(row, moment)


async def read_all(conn: Conn) -> list[ScheduleRecord]:
    cur = await conn.execute(_schedule_sql.SELECT_SCHEDULES)
    return [schedule_from_row(row, moment) for row in await cur.fetchall()]


async def due(conn: Conn, names: Sequence[str]) -> SchedulesDue:
    cur = await conn.execute(_schedule_sql.schedules_due(DIALECT), (list(names),))
    row = await cur.fetchone()
    tick = None if row is None or row[0] is None else moment(row[0])
    return SchedulesDue(tick, bool(row and row[1]))


async def _active(conn: Conn, run_id: str | None) -> bool:
    if run_id is None:
        return False
    cur = await conn.execute(DIALECT.sql(_schedule_sql.RUN_ACTIVE), (run_id,))
    return await cur.fetchone() is not None


async def _create_run(
    conn: Conn, record: ScheduleRecord, start: TickStart, now: float, channel: str
) -> CreatePlan:
    """A tick's run, decided as ``create_run`` decides one (under a lock on its id)."""
    await conn.execute(_LOCK_ID, (channel, start.run_id))
    cur = await conn.execute(DIALECT.sql(_sql.SELECT_RUN), (start.run_id,))
    row = await cur.fetchone()
    existing = None if row is None else run_from_row(row, moment)
    return plan_create_run(
        start.run_id,
        record.workflow_name,
        start.input,
        start.attrs,
        NO_OPTIONS,
        None,
        now,
        existing,
    )
