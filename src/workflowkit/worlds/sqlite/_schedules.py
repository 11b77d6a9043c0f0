"""Schedules in the SQLite World: their rows, and firing the ticks that are due. The rules are
``schedule_rules``'s; the run a tick starts is created as ``create_run`` creates any."""

from __future__ import annotations

import sqlite3

from .. import _schedule_sql
from .._rows import schedule_from_row
from ..records import NO_OPTIONS, FiredTick, RunChange, ScheduleRecord
from ..schedule_rules import Decision, TickInput, plan_fire
from ._jobs import DIALECT, _moment, create_run
from ._writer import Changed

_DUE_SCHEDULES = _schedule_sql.due_schedules(DIALECT)


def change_schedule(
    conn: sqlite3.Connection, schedule_id: str, decide: Decision, now: float
) -> ScheduleRecord | None:
    existing = get_schedule(conn, schedule_id)  # the single writer is the row's lock
    change = decide(existing, now)
    if change is None:
        return existing
    if change.record is None:
        conn.execute(_schedule_sql.DELETE_SCHEDULE, (schedule_id,))
    else:
        conn.execute(
            _schedule_sql.UPSERT_SCHEDULE, _schedule_sql.schedule_params(change.record, DIALECT)
        )
    return change.record


def fire_schedules(
    conn: sqlite3.Connection,
    names: str,
    input_for: TickInput,
    at: float,
    limit: int,
    now: float,
) -> Changed:
    """Fire what is due by ``at``; runs are created at ``now``, the World's clock."""
    fired: list[FiredTick] = []
    changes: list[RunChange] = []
    due = [
        schedule_from_row(row, _moment) for row in conn.execute(_DUE_SCHEDULES, (names, at, limit))
    ]
    for record in due:
        last = record.last_run_id
        active = (
            last is not None
            and conn.execute(_schedule_sql.RUN_ACTIVE, (last,)).fetchone() is not None
        )
        plan = plan_fire(record, active, at, input_for)
        if plan is None:
            continue
        for start in plan.starts:
            created = create_run(
                conn,
                start.run_id,
                record.workflow_name,
                start.input,
                start.attrs,
                NO_OPTIONS,
                None,
                now,
            )
            fired.append(
                FiredTick(record.schedule_id, start.tick, start.run_id, created.value.created)
            )
            changes.extend(created.changes)
        conn.execute(
            _schedule_sql.UPSERT_SCHEDULE, _schedule_sql.schedule_params(plan.record, DIALECT)
        )
    return Changed(fired, changes)


def get_schedule(conn: sqlite3.Connection, schedule_id: str) -> ScheduleRecord | None:
    row = conn.execute(_schedule_sql.SELECT_SCHEDULE, (schedule_id,)).fetchone()
    return None if row is None else schedule_from_row(row, _moment)


def list_schedules(conn: sqlite3.Connection) -> list[ScheduleRecord]:
    return [schedule_from_row(row, _moment) for row in conn.execute(_schedule_sql.SELECT_SCHEDULES)]


def schedules_due(conn: sqlite3.Connection, names: str) -> tuple[float | None, int]:
    row = conn.execute(_schedule_sql.schedules_due(DIALECT), (names,)).fetchone()
    return (None, 0) if row is None else (row[0], int(row[1] or 0))
