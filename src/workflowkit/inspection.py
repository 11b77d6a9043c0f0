"""Reading runs for people: the JSON shapes of World records, and paging through runs.

Shared by the CLI (``--json`` output, documented in docs/cli.md) and the web dashboard, so
both show a run the same way. Payloads are rendered by ``serde.display``: nothing a run
stored is ever imported, constructed or executed here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import serde
from ._tracebacks import user_frames
from .worlds.base import World
from .worlds.limits import why_waiting
from .worlds.records import (
    Divergence,
    Event,
    HookRecord,
    OpenStep,
    OpenWork,
    QueueInfo,
    QueueLimits,
    QueueUsage,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepRecord,
    StepStatus,
    StreamInfo,
    WaitRecord,
    WorkerRecord,
    from_timestamp,
)

_BATCH = 200


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def shown(payload: bytes | None) -> Any:
    """A stored payload as JSON-compatible data; never constructs user classes."""
    if payload is None:
        return None
    try:
        return serde.display(payload)
    except Exception as exc:  # a corrupt or foreign payload must not break the listing
        return {"$undisplayable": describe(exc), "$bytes": len(payload)}


# -- times for people --------------------------------------------------------------------


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``"3m ago"``, ``"in 2h"``, ``"just now"``; ``"-"`` for None."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    span = span_text(abs(seconds))
    return f"{span} ago" if seconds > 0 else f"in {span}"


def span_text(seconds: float) -> str:
    """A short rendering of a length of time: ``"45s"``, ``"3m"``, ``"2h"``, ``"4d"``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.001 else "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return span_text(max(0.0, (end - start).total_seconds()))


def one_line(value: Any, width: int = 80) -> str:
    """A decoded payload shortened to one line; errors as ``Type: message``."""
    if value is None:
        return "-"
    if isinstance(value, Mapping) and "$error" in value:
        kind = str(value.get("$type", "Error")).rsplit(":", 1)[-1]
        text = f"{kind}: {value['$error']}"
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- shapes --------------------------------------------------------------------------------


def run_json(record: RunRecord, waiting_for: str | None = None) -> dict[str, Any]:
    """The JSON shape of a run, shared by ``inspect runs``, ``inspect run`` and ``cancel``."""
    options = record.options
    return {
        "run_id": record.run_id,
        "workflow_name": record.workflow_name,
        "status": str(record.status),
        "created_at": iso(record.created_at),
        "started_at": iso(record.started_at),
        "completed_at": iso(record.completed_at),
        "updated_at": iso(record.updated_at),
        "waiting_for": waiting_for,
        "deadline": iso(options.deadline),
        "queue": options.queue,
        "key": options.key,
        "priority": options.priority,
        "parent_run_id": options.parent_run_id,
        "detached": options.detached,
        "forked_from": options.forked_from,
        "code_version": record.code_version,
        "diverged": None if record.diverged is None else divergence_json(record.diverged),
        "input": shown(record.input),
        "output": shown(record.output),
        "error": shown(record.error),
    }


def schedule_json(record: ScheduleRecord) -> dict[str, Any]:
    """The JSON shape of a schedule, shared by ``schedules list``/``show`` and the dashboard."""
    return {
        "schedule_id": record.schedule_id,
        "workflow_name": record.workflow_name,
        "cron": record.cron,
        "timezone": record.timezone,
        "input": shown(record.input),
        "catch_up": str(record.catch_up),
        "overlap": str(record.overlap),
        "start_at": iso(record.start_at),
        "end_at": iso(record.end_at),
        "paused": record.paused,
        "declared_in_code": record.static,
        "next_tick": iso(record.next_tick),
        "last_tick": iso(record.last_tick),
        "last_run_id": record.last_run_id,
        "buffered_tick": iso(record.buffered_tick),
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }


def schedule_of(event: Event) -> tuple[str, str] | None:
    """The schedule id and tick (ISO 8601) a run was started for, from its ``run_created``."""
    schedule_id, tick = event.attrs.get("schedule_id"), event.attrs.get("scheduled_at")
    if isinstance(schedule_id, str) and isinstance(tick, str):
        return schedule_id, tick
    return None


@dataclass(frozen=True, slots=True)
class Holdups:
    """What can hold runs up: the registered workers, and the usage of their queues."""

    workers: Sequence[WorkerRecord]
    queues: Mapping[str, QueueUsage]


async def holdups(world: World, records: Sequence[RunRecord]) -> Holdups:
    """``Holdups`` for explaining ``records`` (the usage of the queues they wait in)."""
    workers = await world.list_workers()
    names = {r.options.queue for r in records if r.options.queue and not r.status.terminal}
    queues = {}
    for name in sorted(n for n in names if n):
        usage = await world.queue_usage(name)
        if usage is not None:
            queues[name] = usage
    return Holdups(workers, queues)


async def open_work(world: World, records: Sequence[RunRecord]) -> OpenWork:
    """What ``records`` wait on (read only for those that have not ended)."""
    return await world.open_work([r.run_id for r in records if not r.status.terminal])


def waiting_for(
    record: RunRecord, held: Holdups, now: datetime, work: OpenWork | None = None
) -> str | None:
    """What a run that has not ended waits for, in words; None if nothing (it runs, or a
    live worker can take it as soon as it is due).

    The one rule the CLI and the dashboard show: a run parked by a code change; a run
    waiting for its start time; what its code waits on (``work``: the sleeps, hooks and
    steps not ended, from ``World.open_work``); else what keeps it from a worker (none has
    its workflow, its queue is full).
    """
    if record.status.terminal:
        return None
    if record.diverged is not None:
        return (
            f"other code: its code (version {record.diverged.version}) no longer replays it "
            f"at operation #{record.diverged.position}"
        )
    if record.status is RunStatus.PENDING and record.wake_at is not None and record.wake_at > now:
        return f"its start, {relative(record.wake_at, now)}"
    on = waiting_on(work.of(record.run_id), now) if work is not None else None
    hold = _held_up(record, held, now, waiting=on is not None)
    if on is not None and hold is not None:
        return f"{on}; {hold}"
    return on or hold


def _held_up(record: RunRecord, held: Holdups, now: datetime, *, waiting: bool) -> str | None:
    """What keeps a run that nobody holds from a worker, if anything: no worker has its
    workflow (said of a due run, and of one ``waiting`` on a sleep, hook or step, which
    none could go on with), its queue is full (said of a due run)."""
    if record.owner is not None:
        return None
    due = record.wake_at is not None and record.wake_at <= now
    if (due or waiting) and not has_worker(record.workflow_name, held.workers, now):
        return f"a worker: no worker has workflow `{record.workflow_name}`"
    if not due:
        return None
    usage = held.queues.get(record.options.queue or "")
    if usage is not None:
        return why_waiting(usage, record.options.key, record.started_at is None, now.timestamp())
    return None


_SHOWN_AT_MOST = 2  # things one run waits on named in a list; the rest are counted


def waiting_on(work: OpenWork, now: datetime) -> str | None:
    """What one run's code waits on: ``"step `charge` attempt 3, retry in 40s"``,
    ``"hook `approve:o-1`"``, ``"sleep until 14:00 UTC (in 3h)"``; None if nothing."""
    parts = [_step_text(s, now) for s in work.steps]
    parts += [f"{'webhook' if h.is_webhook else 'hook'} `{h.token}`" for h in work.hooks]
    parts += [
        f"sleep until {clock(w.resume_at, now)} ({relative(w.resume_at, now)})" for w in work.waits
    ]
    if not parts:
        return None
    if len(parts) > _SHOWN_AT_MOST:
        more = len(parts) - _SHOWN_AT_MOST
        parts = [*parts[:_SHOWN_AT_MOST], f"{more} more"]
    return "; ".join(parts)


def _step_text(step: OpenStep, now: datetime) -> str:
    name = step.step_name.rsplit(".", 1)[-1].rsplit(":", 1)[-1]  # "orders.charge": "charge"
    if step.status is StepStatus.RUNNING:
        ran = "" if step.started_at is None else f" for {duration(step.started_at, now)}"
        return f"step `{name}` attempt {step.attempt}, running{ran}"
    # A pending step's ``attempt`` is the last one made (0: none yet); the next is one more.
    head = f"step `{name}` attempt {step.attempt + 1}"
    if step.retry_at is None:
        return f"{head}, to start"
    if step.retry_at > now:
        return f"{head}, retry {relative(step.retry_at, now)}"
    return f"{head}, retry due"


def clock(moment: datetime, now: datetime) -> str:
    """A time of day in UTC, with its date unless it is ``now``'s day: ``"14:00 UTC"``,
    ``"2026-12-08 09:30 UTC"``."""
    at, today = moment.astimezone(UTC), now.astimezone(UTC)
    text = at.strftime("%H:%M" if at.second == 0 else "%H:%M:%S")
    return f"{text} UTC" if at.date() == today.date() else f"{at:%Y-%m-%d} {text} UTC"


@dataclass(frozen=True, slots=True)
class StepFailure:
    """The last failed attempt of a step: its error and traceback (user frames only)."""

    step_id: str
    step_name: str
    attempt: int
    error: str
    traceback: str


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a run failed, error first: its whole error (with its causes), the traceback of
    the code that raised it, and the last failed step attempt when its traceback is not
    the same one. workflowkit's own frames are left out of both tracebacks."""

    error: str
    traceback: str
    step: StepFailure | None = None


def failure_of(record: RunRecord, steps: Sequence[StepRecord]) -> Failure | None:
    """``Failure`` of a failed run (None for any other)."""
    if record.status is not RunStatus.FAILED:
        return None
    value = shown(record.error)
    error, trace = error_text(value), user_frames(_traceback(value))
    failed = [s for s in steps if s.status is StepStatus.FAILED and s.error is not None]
    step = None
    if failed:
        last = max(failed, key=lambda s: (s.completed_at or s.created_at, s.step_id))
        step_value = shown(last.error)
        step_trace = user_frames(_traceback(step_value))
        if step_trace != trace:
            step = StepFailure(
                last.step_id, last.step_name, last.attempt, error_text(step_value), step_trace
            )
    return Failure(error, trace, step)


def error_text(value: Any) -> str:
    """A displayed error in full: ``"Type: message"``, then ``"caused by: ..."`` lines."""
    if not isinstance(value, Mapping) or "$error" not in value:
        return "-" if value is None else json.dumps(value, ensure_ascii=False, default=str)
    kind = str(value.get("$type", "Error")).rsplit(":", 1)[-1]
    message = str(value["$error"])
    text = f"{kind}: {message}" if message else kind
    cause = value.get("cause")
    if isinstance(cause, Mapping) and "$error" in cause:
        text += "\ncaused by: " + error_text(cause)
    return text


def _traceback(value: Any) -> str:
    trace = value.get("traceback") if isinstance(value, Mapping) else None
    return trace if isinstance(trace, str) else ""


def failure_json(failure: Failure | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    step = failure.step
    return {
        "error": failure.error,
        "traceback": failure.traceback,
        "step": None
        if step is None
        else {
            "step_id": step.step_id,
            "step_name": step.step_name,
            "attempt": step.attempt,
            "error": step.error,
            "traceback": step.traceback,
        },
    }


def has_worker(workflow_name: str, workers: Sequence[WorkerRecord], now: datetime) -> bool:
    """Whether a live worker has registered the workflow (so can run it)."""
    return any(w.live(now) and workflow_name in w.info.workflows for w in workers)


def divergence_json(divergence: Divergence) -> dict[str, Any]:
    return {
        "position": divergence.position,
        "expected": divergence.expected,
        "actual": divergence.actual,
        "message": divergence.message,
        "version": divergence.version,
        "at": iso(divergence.at),
    }


def limits_text(limits: QueueLimits) -> str:
    """A queue's limits in words: "concurrency 20, per key 1, 100 per 1m"."""
    parts = [
        f"{label} {value}"
        for label, value in (
            ("concurrency", limits.concurrency),
            ("per key", limits.per_key),
            ("per worker", limits.per_worker),
        )
        if value is not None
    ]
    if limits.rate_count is not None and limits.rate_period is not None:
        parts.append(f"{limits.rate_count} per {span_text(limits.rate_period)}")
    if limits.hold_while_waiting:
        parts.append("held while waiting")
    return ", ".join(parts) or "none"


def queue_json(info: QueueInfo, now: datetime) -> dict[str, Any]:
    limits = info.limits
    rate = None
    if limits.rate_count is not None and limits.rate_period is not None:
        rate = {"count": limits.rate_count, "per_seconds": limits.rate_period}
    oldest = info.oldest_waiting
    return {
        "name": limits.name,
        "concurrency": limits.concurrency,
        "per_key": limits.per_key,
        "per_worker": limits.per_worker,
        "rate_limit": rate,
        "hold_while_waiting": limits.hold_while_waiting,
        "running": info.running,
        "waiting": info.waiting,
        "oldest_waiting_since": iso(oldest),
        "oldest_waiting_seconds": None if oldest is None else (now - oldest).total_seconds(),
        "recent_starts": info.recent_starts,
    }


def step_json(step: StepRecord) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "step_name": step.step_name,
        "status": str(step.status),
        "attempt": step.attempt,
        "created_at": iso(step.created_at),
        "started_at": iso(step.started_at),
        "completed_at": iso(step.completed_at),
        "retry_at": iso(step.retry_at),
        "input": shown(step.input),
        "output": shown(step.output),
        "error": shown(step.error),
        "ended_because": step_end_reason(step),
    }


# Event attributes that are times: stored as Unix seconds, shown as ISO 8601 like the rest.
TIME_ATTRS = frozenset({"resume_at", "retry_at", "start_at", "deadline"})


def attrs_json(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """An event's attributes for people: times (``TIME_ATTRS``) in ISO 8601."""
    return {
        key: iso(from_timestamp(float(value)))
        if key in TIME_ATTRS and isinstance(value, int | float) and not isinstance(value, bool)
        else value
        for key, value in attrs.items()
    }


def step_end_reason(step: StepRecord) -> str | None:
    """Why a step ended without finishing (None for the others): its run ended first."""
    if step.status is StepStatus.CANCELLED:
        return "its run was cancelled while the step was pending or running"
    if step.status is StepStatus.ABANDONED:
        return (
            "its run ended (a wait_for or timeout raced it away, or the run failed) while "
            "the step was pending or running; a late result is ignored"
        )
    return None


def event_json(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "event_id": event.event_id,
        "type": str(event.type),
        "correlation_id": event.correlation_id,
        "created_at": iso(event.created_at),
        "attrs": attrs_json(event.attrs),
        "payload": shown(event.payload),
    }


def wait_json(wait: WaitRecord) -> dict[str, Any]:
    return {
        "wait_id": wait.wait_id,
        "status": "waiting" if wait.completed_at is None else "completed",
        "resume_at": iso(wait.resume_at),
        "created_at": iso(wait.created_at),
        "completed_at": iso(wait.completed_at),
    }


def hook_json(hook: HookRecord) -> dict[str, Any]:
    return {
        "hook_id": hook.hook_id,
        "run_id": hook.run_id,
        "token": hook.token,
        "is_webhook": hook.is_webhook,
        "created_at": iso(hook.created_at),
        "metadata": shown(hook.metadata),
    }


# -- paging --------------------------------------------------------------------------------


def stream_json(info: StreamInfo) -> dict[str, Any]:
    return {
        "namespace": info.name or None,
        "length": info.length,
        "closed": info.closed,
        "created_at": iso(info.created_at),
        "updated_at": iso(info.updated_at),
    }


async def find_runs(
    world: World,
    *,
    workflow: str | None,
    status: RunStatus | None,
    limit: int,
    cursor: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    queue: str | None = None,
    key: str | None = None,
    diverged: bool | None = None,
) -> tuple[list[RunRecord], str | None]:
    """Up to ``limit`` matching runs, newest first, and the cursor of the next page (if any)."""
    found = await world.list_runs(
        workflow_name=workflow,
        status=status,
        limit=limit + 1,
        before=cursor,
        since=since,
        until=until,
        queue=queue,
        key=key,
        diverged=diverged,
    )
    return _page(found, limit)


def _page(found: list[RunRecord], limit: int) -> tuple[list[RunRecord], str | None]:
    if len(found) > limit:
        return found[:limit], found[limit - 1].run_id
    return found, None


async def children_of(world: World, run_id: str, limit: int = 1000) -> list[RunRecord]:
    """The run's children in the order they were started (the first ``limit``)."""
    return list(reversed(await world.list_runs(parent_run_id=run_id, limit=limit)))


async def matching_runs(
    world: World, statuses: Sequence[RunStatus], workflow: str | None
) -> list[RunRecord]:
    """Every run in one of ``statuses`` (of ``workflow`` if given), newest first."""
    found: list[RunRecord] = []
    for status in statuses:
        before: str | None = None
        while True:
            page = await world.list_runs(
                workflow_name=workflow, status=status, limit=_BATCH, before=before
            )
            found.extend(page)
            if len(page) < _BATCH:
                break
            before = page[-1].run_id
    found.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return found
