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
from .worlds.base import World
from .worlds.limits import why_waiting
from .worlds.records import (
    Divergence,
    Event,
    HookRecord,
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


def waiting_for(record: RunRecord, held: Holdups, now: datetime) -> str | None:
    """Why a run that nobody holds is not going on, in words; None if nothing holds it up
    (it is held, has ended, or a live worker can take it as soon as it is due)."""
    if record.status.terminal or record.owner is not None:
        return None
    if record.diverged is not None:
        return (
            f"other code: its code (version {record.diverged.version}) no longer replays it "
            f"at operation #{record.diverged.position}"
        )
    if record.wake_at is None:
        return None  # it waits on something it created (a hook, a child): its log says
    if record.status is RunStatus.PENDING and record.wake_at > now:
        return f"its start, {relative(record.wake_at, now)}"
    if not has_worker(record.workflow_name, held.workers, now):
        return f"a worker: no worker has workflow `{record.workflow_name}`"
    usage = held.queues.get(record.options.queue or "")
    if usage is not None and record.wake_at <= now:
        first = record.started_at is None
        return why_waiting(usage, record.options.key, first, now.timestamp())
    return None


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
        "attrs": dict(event.attrs),
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
