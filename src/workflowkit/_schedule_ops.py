"""Every write a client makes to schedules, written once: create, update, pause, resume,
delete, trigger. ``workflowkit.api`` (and ``workflowkit.sync`` through it), the CLI and the
dashboard call these on their World; the decisions are ``worlds.schedule_rules``'.

Failure model: each call is one World call, so it lands whole or not at all. Pausing,
resuming and deleting again are harmless; creating again raises
``ScheduleAlreadyExistsError``; triggering again starts a second run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ._schedule_spec import UNCHANGED, Bound, ScheduleUpdate, make_spec
from .context import refuse_in_workflow
from .errors import ScheduleNotFoundError
from .ids import new_id
from .runtime.executor import encode_input
from .runtime.schedules import tick_input
from .worlds import schedule_rules as rules
from .worlds.base import World
from .worlds.records import CreatedRun, ScheduleRecord


async def require_schedule(world: World, schedule_id: str) -> ScheduleRecord:
    """The schedule with this id; ``ScheduleNotFoundError`` if there is none."""
    refuse_in_workflow("get_schedule()")
    record = await world.get_schedule(schedule_id)
    if record is None:
        raise ScheduleNotFoundError(schedule_id)
    return record


async def create(
    world: World,
    schedule_id: str,
    workflow_name: str,
    *,
    cron: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    catch_up: str = "none",
    overlap: str = "skip",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> ScheduleRecord:
    """A new schedule of the workflow with this durable name (the CLI and the dashboard
    do not import the workflows' code); everything is checked and the arguments encoded
    before anything is written. Its ticks start runs once a worker has the workflow."""
    refuse_in_workflow("create_schedule()")
    spec = make_spec(
        schedule_id,
        workflow_name,
        cron,
        input=_input(schedule_id, args, kwargs),
        timezone=timezone,
        catch_up=catch_up,
        overlap=overlap,
        start_at=start_at,
        end_at=end_at,
    )
    return _found(schedule_id, await world.change_schedule(schedule_id, rules.create(spec)))


async def update(
    world: World,
    schedule_id: str,
    *,
    cron: str | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    catch_up: str | None = None,
    overlap: str | None = None,
    start_at: Bound = UNCHANGED,
    end_at: Bound = UNCHANGED,
) -> ScheduleRecord:
    """The schedule with the fields given changed (the others as they are). New ``args``
    or ``kwargs`` replace both: give both unless the other is empty."""
    refuse_in_workflow("update_schedule()")
    given = args is not None or kwargs is not None
    changes = ScheduleUpdate(
        cron,
        timezone,
        _input(schedule_id, args or (), kwargs) if given else None,
        catch_up,
        overlap,
        start_at,
        end_at,
    )
    decision = rules.update(schedule_id, changes.apply)
    return _found(schedule_id, await world.change_schedule(schedule_id, decision))


async def set_paused(world: World, schedule_id: str, paused: bool) -> ScheduleRecord:
    """Pause (no tick fires) or resume (from the next tick after now)."""
    refuse_in_workflow("pause_schedule()" if paused else "resume_schedule()")
    decision = rules.set_paused(schedule_id, paused)
    return _found(schedule_id, await world.change_schedule(schedule_id, decision))


async def delete(world: World, schedule_id: str) -> None:
    """Delete the schedule; its runs stay (and those running go on)."""
    refuse_in_workflow("delete_schedule()")
    await world.change_schedule(schedule_id, rules.delete(schedule_id))


async def trigger(world: World, schedule_id: str) -> CreatedRun:
    """Start one run of the schedule now, as a tick would (its time is now), whatever its
    overlap policy and whether it is paused; its ticks do not move."""
    refuse_in_workflow("trigger_schedule()")
    record = await require_schedule(world, schedule_id)
    now = datetime.fromtimestamp(world.now(), UTC)
    run_id = f"{schedule_id}@manual-{new_id('wrun').split('_', 1)[1]}"
    attrs = {**rules.tick_attrs(record.workflow_name, schedule_id, now), "manual": True}
    return await world.create_run(run_id, record.workflow_name, tick_input(record, now), attrs)


def _input(schedule_id: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> bytes:
    return encode_input(tuple(args), dict(kwargs or {}), what=f"schedule {schedule_id}")


def _found(schedule_id: str, record: ScheduleRecord | None) -> ScheduleRecord:
    if record is None:  # deleted in the meantime
        raise ScheduleNotFoundError(schedule_id)
    return record
