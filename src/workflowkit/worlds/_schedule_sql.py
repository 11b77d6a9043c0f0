"""The schedules' statements both Worlds share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ._sql import Dialect
from .records import ScheduleRecord

# -- schedules -------------------------------------------------------------------------------

SCHEDULE_COLUMNS = (
    "schedule_id, workflow_name, cron, timezone, input, catch_up, overlap, start_at, end_at, "
    "paused, static, next_tick, last_tick, last_run_id, buffered_tick, created_at, updated_at"
)
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?"
SELECT_SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY schedule_id"
UPSERT_SCHEDULE = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_id) DO UPDATE SET "
    "workflow_name = excluded.workflow_name, cron = excluded.cron, "
    "timezone = excluded.timezone, input = excluded.input, catch_up = excluded.catch_up, "
    "overlap = excluded.overlap, start_at = excluded.start_at, end_at = excluded.end_at, "
    "paused = excluded.paused, static = excluded.static, next_tick = excluded.next_tick, "
    "last_tick = excluded.last_tick, last_run_id = excluded.last_run_id, "
    "buffered_tick = excluded.buffered_tick, updated_at = excluded.updated_at"
)
DELETE_SCHEDULE = "DELETE FROM schedules WHERE schedule_id = ?"
# A schedule's last run is active: ``overlap`` decides what its next tick does.
RUN_ACTIVE = "SELECT 1 FROM runs WHERE run_id = ? AND status IN ('pending', 'running')"


def due_schedules(dialect: Dialect) -> str:
    """Active schedules of the workflows in the list parameter with a tick due by the time
    parameter, or a buffered tick (due once the schedule's run ends), earliest first."""
    return dialect.sql(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE NOT paused "
        f"AND workflow_name {dialect.in_list} AND (next_tick <= ? OR buffered_tick IS NOT NULL) "
        "ORDER BY next_tick, schedule_id LIMIT ?"
    )


def schedules_due(dialect: Dialect) -> str:
    """The earliest next tick of the active schedules of the listed workflows, and whether
    any holds a buffered tick."""
    return dialect.sql(
        "SELECT min(next_tick), count(buffered_tick) FROM schedules WHERE NOT paused "
        f"AND workflow_name {dialect.in_list}"
    )


def schedule_params(record: ScheduleRecord, dialect: Dialect) -> tuple[Any, ...]:
    """``UPSERT_SCHEDULE`` parameters, in ``SCHEDULE_COLUMNS`` order."""

    def when(moment: datetime | None) -> Any:
        return None if moment is None else dialect.stamp(moment)

    return (
        record.schedule_id,
        record.workflow_name,
        record.cron,
        record.timezone,
        record.input,
        str(record.catch_up),
        str(record.overlap),
        when(record.start_at),
        when(record.end_at),
        record.paused,
        record.static,
        when(record.next_tick),
        when(record.last_tick),
        record.last_run_id,
        when(record.buffered_tick),
        dialect.stamp(record.created_at),
        dialect.stamp(record.updated_at),
    )
