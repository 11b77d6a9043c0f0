"""The schedule rules, decided once for every World: firing ticks, and every edit.

A World reads a schedule's row under its lock (the single writer in SQLite, a row lock in
PostgreSQL), hands it to a decision here, and writes what comes back: the runs to create
(through ``apply.plan_create_run``, so starting a tick's run is idempotent) and the
schedule's new row. The row holds the next tick: a tick is claimed by the transaction that
moves ``next_tick`` past it, so no process keeps timer state a crash could lose, and a
tick's run id is derived from the schedule and the tick, so even a tick fired twice (it
cannot be, but a restored backup could) starts one run.

Times are Unix seconds on the World's clock where they come in, aware UTC datetimes in the
records.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .._cron import Cron
from ..errors import (
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    StaticScheduleError,
)
from .records import CatchUp, Overlap, ScheduleChange, ScheduleRecord, ScheduleSpec

# A tick fired within this many seconds of its time is on time; an older one was missed
# (a worker was down or overloaded) and ``catch_up`` decides whether it still runs.
GRACE_SECONDS = 10.0
# ``catch_up="all"`` starts at most this many missed ticks of one schedule: the most recent.
CATCH_UP_LIMIT = 100

Decision = Callable[[ScheduleRecord | None, float], ScheduleChange | None]
TickInput = Callable[[ScheduleRecord, datetime], bytes]
_MICROSECOND = timedelta(microseconds=1)


def tick_run_id(schedule_id: str, tick: datetime) -> str:
    """The run id of a tick's run: the same in every process that fires it."""
    return f"{schedule_id}@{tick.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def tick_attrs(workflow_name: str, schedule_id: str, tick: datetime) -> dict[str, Any]:
    """The ``run_created`` attributes of a schedule's run: where the CLI and the dashboard
    find the schedule and the tick it ran for."""
    return {
        "name": workflow_name,
        "schedule_id": schedule_id,
        "scheduled_at": tick.astimezone(UTC).isoformat(),
    }


def first_tick(
    cron: Cron, start_at: datetime | None, end_at: datetime | None, now: datetime
) -> datetime | None:
    """The first tick after ``now`` (at or after ``start_at``, if later), None past ``end_at``."""
    after = now if start_at is None or start_at <= now else start_at - _MICROSECOND
    tick = cron.next_after(after)
    return None if tick is None or (end_at is not None and tick > end_at) else tick


def _cron_of(spec: ScheduleSpec | ScheduleRecord) -> Cron:
    return Cron(spec.cron, spec.timezone)


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


# -- edits -----------------------------------------------------------------------------------


def create(spec: ScheduleSpec) -> Decision:
    """A new schedule; ``ScheduleAlreadyExistsError`` if the id is taken."""

    def decide(existing: ScheduleRecord | None, now: float) -> ScheduleChange:
        if existing is not None:
            raise ScheduleAlreadyExistsError(spec.schedule_id)
        return ScheduleChange(_new_record(spec, now))

    return decide


def declare(spec: ScheduleSpec) -> Decision:
    """A schedule declared in code, as a worker writes it when it starts: created if new;
    else its definition replaced if the code changed it (a new cron or time zone moves the
    next tick), its state (paused, last run) kept."""

    def decide(existing: ScheduleRecord | None, now: float) -> ScheduleChange | None:
        if existing is None:
            return ScheduleChange(_new_record(spec, now))
        record = _redefined(existing, spec, now)
        return None if record == existing else ScheduleChange(record)

    return decide


def update(schedule_id: str, redefine: Callable[[ScheduleRecord], ScheduleSpec]) -> Decision:
    """The schedule as ``redefine`` defines it from its row read under the lock (so two
    updates of different fields both land); ``redefine`` checks the result."""

    def decide(existing: ScheduleRecord | None, now: float) -> ScheduleChange:
        record = _dynamic(schedule_id, existing, "change")
        return ScheduleChange(_redefined(record, redefine(record), now))

    return decide


def set_paused(schedule_id: str, paused: bool) -> Decision:
    """Pause or resume. Ticks that fall while paused are skipped: resuming starts from the
    next tick after now, whatever ``catch_up`` says; a tick ``buffer_one`` held before the
    pause is dropped with them (it is older than those)."""

    def decide(existing: ScheduleRecord | None, now: float) -> ScheduleChange | None:
        if existing is None:
            raise ScheduleNotFoundError(schedule_id)
        if existing.paused == paused:
            return None
        at = _at(now)
        cron = _cron_of(existing)
        next_tick, buffered = existing.next_tick, existing.buffered_tick
        if not paused:
            next_tick = first_tick(cron, existing.start_at, existing.end_at, at)
            buffered = None
        resumed = dataclasses.replace(
            existing, paused=paused, next_tick=next_tick, buffered_tick=buffered, updated_at=at
        )
        return ScheduleChange(resumed)

    return decide


def delete(schedule_id: str, *, static: bool = False) -> Decision:
    """Delete a schedule (its runs stay). A schedule declared in code is deleted only by a
    worker whose code no longer declares it (``static``)."""

    def decide(existing: ScheduleRecord | None, now: float) -> ScheduleChange | None:
        if existing is None:
            if static:
                return None
            raise ScheduleNotFoundError(schedule_id)
        if existing.static and not static:
            raise StaticScheduleError(schedule_id, "delete")
        return ScheduleChange(None)

    return decide


def _dynamic(schedule_id: str, existing: ScheduleRecord | None, action: str) -> ScheduleRecord:
    if existing is None:
        raise ScheduleNotFoundError(schedule_id)
    if existing.static:
        raise StaticScheduleError(schedule_id, action)
    return existing


def _new_record(spec: ScheduleSpec, now: float) -> ScheduleRecord:
    at = _at(now)
    return ScheduleRecord(
        schedule_id=spec.schedule_id,
        workflow_name=spec.workflow_name,
        cron=spec.cron,
        timezone=spec.timezone,
        input=spec.input,
        catch_up=spec.catch_up,
        overlap=spec.overlap,
        start_at=spec.start_at,
        end_at=spec.end_at,
        paused=False,
        static=spec.static,
        next_tick=first_tick(_cron_of(spec), spec.start_at, spec.end_at, at),
        last_tick=None,
        last_run_id=None,
        buffered_tick=None,
        created_at=at,
        updated_at=at,
    )


def _redefined(record: ScheduleRecord, spec: ScheduleSpec, now: float) -> ScheduleRecord:
    """``record`` defined by ``spec``; the next tick computed again if when it ticks changed."""
    at = _at(now)
    when = (spec.cron, spec.timezone, spec.start_at, spec.end_at)
    moved = when != (record.cron, record.timezone, record.start_at, record.end_at)
    next_tick = record.next_tick
    if moved and not record.paused:
        next_tick = first_tick(_cron_of(spec), spec.start_at, spec.end_at, at)
    redefined = dataclasses.replace(
        record,
        workflow_name=spec.workflow_name,
        cron=spec.cron,
        timezone=spec.timezone,
        input=spec.input,
        catch_up=spec.catch_up,
        overlap=spec.overlap,
        start_at=spec.start_at,
        end_at=spec.end_at,
        static=spec.static,
        next_tick=next_tick,
    )
    return redefined if redefined == record else dataclasses.replace(redefined, updated_at=at)


# -- firing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TickStart:
    """A run a tick starts (created unless a run has its id already)."""

    run_id: str
    tick: datetime
    input: bytes
    attrs: dict[str, Any]


@dataclass(slots=True)
class FirePlan:
    """What firing a schedule writes: its new row and the runs its ticks start."""

    record: ScheduleRecord
    starts: list[TickStart] = field(default_factory=list)


def plan_fire(
    record: ScheduleRecord, active: bool, now: float, input_for: TickInput
) -> FirePlan | None:
    """Fire the schedule's due ticks; None if there is nothing to write.

    ``active``: the schedule's last run is pending or running (``overlap`` looks at it).
    Due ticks are those from ``next_tick`` to now; ``catch_up`` drops missed ones (older than
    ``GRACE_SECONDS``), then ``overlap`` decides which of the rest (after a buffered tick)
    start: all of them (``allow``), the most recent (``skip``), or the first, the most
    recent being buffered (``buffer_one``) - ticks due together would overlap each other.
    """
    at = _at(now)
    cron = _cron_of(record)
    due: Sequence[datetime] = ()
    next_tick = record.next_tick
    if next_tick is not None and next_tick <= at and not record.paused:
        until = at if record.end_at is None else min(at, record.end_at)
        due = cron.ticks(next_tick, until, CATCH_UP_LIMIT)
        next_tick = first_tick(cron, None, record.end_at, at)
    buffered = [] if record.buffered_tick is None else [record.buffered_tick]
    candidates = buffered + _caught_up(due, record.catch_up, at)
    starting, holding = _overlapping(candidates, record.overlap, active)
    if not due and holding == record.buffered_tick:
        return None  # nothing due, and the buffered tick still waits
    starts = [
        TickStart(
            tick_run_id(record.schedule_id, tick),
            tick,
            input_for(record, tick),
            tick_attrs(record.workflow_name, record.schedule_id, tick),
        )
        for tick in starting
    ]
    fired = dataclasses.replace(
        record,
        next_tick=next_tick,
        last_tick=due[-1] if due else record.last_tick,
        last_run_id=starts[-1].run_id if starts else record.last_run_id,
        buffered_tick=holding,
        updated_at=at,
    )
    return FirePlan(fired, starts)


def _caught_up(due: Sequence[datetime], catch_up: CatchUp, at: datetime) -> list[datetime]:
    on_time = [tick for tick in due if (at - tick).total_seconds() <= GRACE_SECONDS]
    missed = list(due[: len(due) - len(on_time)])
    if catch_up is CatchUp.ALL:
        return missed + on_time
    if catch_up is CatchUp.LATEST and missed:
        return [missed[-1], *on_time]
    return on_time


def _overlapping(
    ticks: list[datetime], overlap: Overlap, active: bool
) -> tuple[list[datetime], datetime | None]:
    """The ticks that start, and the one buffered."""
    if not ticks or overlap is Overlap.ALLOW:
        return ticks, None
    if overlap is Overlap.SKIP:
        return ([] if active else [ticks[-1]]), None
    if active:
        return [], ticks[-1]
    return [ticks[0]], (ticks[-1] if len(ticks) > 1 else None)
