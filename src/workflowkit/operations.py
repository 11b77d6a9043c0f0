"""Acting on runs from outside a workflow: cancel, wake up, resume a hook, start, re-run.

Shared by the CLI and the web dashboard. These append to the World directly (the same
events the client API appends); a worker serving that World carries on from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import HookNotFoundError, WebhookTokenError, WorkflowRunNotFoundError
from .ids import new_id
from .worlds.base import World
from .worlds.records import EventType, HookRecord, NewEvent, RunRecord, RunStatus

ACTIVE = (RunStatus.PENDING, RunStatus.RUNNING)


async def require_run(world: World, run_id: str) -> RunRecord:
    record = await world.get_run(run_id)
    if record is None:
        raise WorkflowRunNotFoundError(run_id)
    return record


@dataclass(frozen=True, slots=True)
class Skipped:
    run_id: str
    status: str


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    cancelled: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()


async def cancel_runs(world: World, records: Sequence[RunRecord]) -> CancelOutcome:
    """Cancel each run that has not ended; the others are skipped with their status."""
    cancelled: list[str] = []
    skipped: list[Skipped] = []
    for record in records:
        if record.status.terminal:
            skipped.append(Skipped(record.run_id, str(record.status)))
            continue
        result = await world.append(record.run_id, [NewEvent(EventType.RUN_CANCELLED)])
        if result.events:
            cancelled.append(record.run_id)
        else:  # it ended in the meantime
            skipped.append(Skipped(record.run_id, str(result.run_status)))
    return CancelOutcome(tuple(cancelled), tuple(skipped))


async def matching_runs(
    world: World, statuses: Sequence[RunStatus], workflow: str | None
) -> list[RunRecord]:
    """Every run in one of ``statuses`` (of ``workflow`` if given), newest first."""
    found: list[RunRecord] = []
    for status in statuses:
        before: str | None = None
        while True:
            page = await world.list_runs(
                workflow_name=workflow, status=status, limit=500, before=before
            )
            found.extend(page)
            if len(page) < 500:
                break
            before = page[-1].run_id
    found.sort(key=lambda r: r.run_id, reverse=True)
    return found


@dataclass(frozen=True, slots=True)
class WakeOutcome:
    run: RunRecord
    woken: tuple[str, ...]
    not_pending: tuple[str, ...]  # asked for, but not a pending sleep of the run


async def wake_up(world: World, run_id: str, wait_ids: Sequence[str] | None = None) -> WakeOutcome:
    """End the run's pending sleeps now: all of them, or those in ``wait_ids``."""
    record = await require_run(world, run_id)
    pending = [w.wait_id for w in await world.list_waits(run_id) if not w.completed_at]
    wanted = pending if wait_ids is None else [w for w in pending if w in wait_ids]
    missing = [] if wait_ids is None else [w for w in wait_ids if w not in pending]
    if not wanted or record.status.terminal:
        return WakeOutcome(record, (), tuple(missing))
    events = [NewEvent(EventType.WAIT_COMPLETED, wait_id) for wait_id in wanted]
    result = await world.append(run_id, events)
    woken = [str(e.correlation_id) for e in result.events]
    return WakeOutcome(record, tuple(woken), tuple(missing + [w for w in wanted if w not in woken]))


async def resume_hook(world: World, token: str, payload: bytes) -> HookRecord:
    """Deliver an encoded payload to the hook holding ``token``; that hook.

    Raises ``HookNotFoundError`` (no such active hook, or it went away meanwhile) and
    ``WebhookTokenError``.
    """
    hook = await world.get_hook_by_token(token)
    if hook is None:
        raise HookNotFoundError(token)
    if hook.is_webhook:
        raise WebhookTokenError(token)
    result = await world.append(
        hook.run_id, [NewEvent(EventType.HOOK_RECEIVED, hook.hook_id, payload)]
    )
    if not result.events:  # disposed, or its run ended, in the meantime
        raise HookNotFoundError(token)
    return hook


async def start_by_name(world: World, workflow_name: str, payload: bytes) -> RunRecord:
    """Create a run of the workflow with this durable name and encoded input."""
    return await world.create_run(new_id("wrun"), workflow_name, payload, {"name": workflow_name})


async def rerun(world: World, run_id: str) -> RunRecord:
    """A new run of the same workflow with the very same stored input bytes."""
    record = await require_run(world, run_id)
    return await start_by_name(world, record.workflow_name, record.input)
