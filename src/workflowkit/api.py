"""The client API: start runs, look them up, wait for them, cancel or fail them, wake them.

Every write goes through ``workflowkit._operations``, which the CLI and the dashboard call
too; this module adds the ``Run`` handle, waiting for a run to end, and decoded values.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, TypeVar, cast

from . import _operations, _schedule_ops, serde
from ._outcomes import run_outcome
from ._schedule_spec import UNCHANGED, Bound
from .context import current_executor, refuse_in_workflow
from .errors import InvalidWorkflowFunctionError, WorldUnavailableError
from .inspection import holdups, open_work, waiting_for
from .queues import Queue
from .registry import Workflow
from .runtime.runtime import Runtime, get_runtime
from .runtime.waiters import EndWatch, Nudge
from .streams import Readable
from .webhooks import Request, Response
from .worlds.apply import ENDS_RUN
from .worlds.base import World
from .worlds.records import (
    CatchUp,
    HookRecord,
    Overlap,
    RunChange,
    RunRecord,
    RunStatus,
    ScheduleRecord,
)

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "HookInfo",
    "Run",
    "RunInfo",
    "ScheduleInfo",
    "create_schedule",
    "delete_schedule",
    "fork_run",
    "get_hook_by_token",
    "get_run",
    "get_schedule",
    "list_runs",
    "list_schedules",
    "pause_schedule",
    "resume_hook",
    "resume_schedule",
    "resume_webhook",
    "start",
    "trigger_schedule",
    "update_schedule",
]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A snapshot of a run's metadata."""

    run_id: str
    workflow_name: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    # Set while the run is parked because its code no longer replays its log: where and why.
    diverged: str | None = None
    code_version: str | None = None  # of the code it started under
    forked_from: str | None = None  # a fork: the run whose first steps it reused
    # A run that has not ended: what it waits for, in words, as the CLI and the dashboard
    # say it (its start time, a sleep, hook or step, no worker with its workflow, a full
    # queue, other code); None while nothing holds it up.
    waiting_for: str | None = None


@dataclass(frozen=True, slots=True)
class HookInfo:
    """An active hook: which run holds it, its token and the metadata it was created with."""

    hook_id: str
    run_id: str
    token: str
    metadata: Any
    created_at: datetime


class Run(Generic[R]):
    """A handle on a workflow run. Creating one (``get_run``) does no I/O."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._end: EndWatch | None = None  # set by start(): see EndWatch

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"

    @property
    def runtime(self) -> Runtime:
        # Always the process's current runtime, so a handle outlives a reconfiguration.
        return get_runtime()

    async def _record(self) -> RunRecord:
        return await _operations.require_run(self.runtime.world, self.run_id)

    async def status(self) -> str:
        """``"pending" | "running" | "completed" | "failed" | "cancelled"``."""
        return str((await self._record()).status)

    async def info(self) -> RunInfo:
        """The run's workflow name, status and times; for a run that has not ended, also
        what it waits for (a few more reads)."""
        world = self.runtime.world
        (info,) = await _infos(world, [await self._record()])
        return info

    async def workflow_name(self) -> str:
        return (await self._record()).workflow_name

    async def created_at(self) -> datetime:
        return (await self._record()).created_at

    async def started_at(self) -> datetime | None:
        return (await self._record()).started_at

    async def completed_at(self) -> datetime | None:
        return (await self._record()).completed_at

    async def return_value(self, timeout: float | None = None) -> R:
        """Wait until the run ends; its return value, or the error it ended with.

        Raises ``WorkflowRunFailedError``, ``WorkflowRunCancelledError``,
        ``WorkflowRunNotFoundError``, or ``TimeoutError`` after ``timeout`` seconds.

        In workflow code, for a child run this workflow started, it is a durable wait: the
        run may leave memory meanwhile, and is woken when the child ends.
        """
        executor = current_executor()
        if executor is not None:
            outcome = executor.child_outcome(self.run_id)
            if timeout is None:
                return cast(R, await outcome)
            return cast(R, await asyncio.wait_for(outcome, timeout))
        end, self._end = self._end, None
        status, payload = await _wait_terminal(self.runtime, self.run_id, timeout, end)
        return cast(R, run_outcome(self.run_id, status, payload))

    async def cancel(self) -> None:
        """Cancel the run: no new steps start, in-flight step results are discarded.

        A run that already ended is left as it is.
        """
        await _operations.cancel(self.runtime.world, [self.run_id])

    async def fail(self, reason: str | None = None) -> None:
        """End the run as failed, as ``workflowkit fail`` does: its error is a
        ``RunFailedByOperatorError`` carrying ``reason``, which ``return_value()`` raises as
        the ``__cause__`` of ``WorkflowRunFailedError``. As with ``cancel()``, no new steps
        start and in-flight step results are discarded; a parked (diverged) run ends too.

        A run that already ended is left as it is.
        """
        await _operations.fail(self.runtime.world, [self.run_id], reason)

    def get_readable(self, namespace: str | None = None, start_index: int = 0) -> Readable:
        """The run's stream ``namespace``, live: iterate with ``async for``.

        Iteration ends when the stream is closed or the run ends. A negative ``start_index``
        starts that many chunks before the current end; after an interruption, start again
        from the reader's ``index`` to miss nothing and see nothing twice.

        Not in workflow code (``ClientCallInWorkflowError``): what it reads would not be in
        the run's log; read the stream in a step.
        """
        refuse_in_workflow("a Run's get_readable()")
        return Readable(self.runtime.world, self.run_id, namespace, start_index)

    @property
    def readable(self) -> Readable:
        """The run's default stream from its start: ``get_readable()``, as the reference's
        ``run.readable``."""
        return self.get_readable()

    async def wake_up(self, correlation_ids: Sequence[str] | None = None) -> list[str]:
        """Complete the run's pending sleeps now (all, or those named); the ids woken."""
        outcome = await _operations.wake_up(self.runtime.world, self.run_id, correlation_ids)
        return list(outcome.woken)


async def start(workflow: Workflow[P, R], *args: P.args, **kwargs: P.kwargs) -> Run[R]:
    """Start a durable run of ``workflow`` with these arguments; returns at once.

    ``workflow`` may carry start options (``workflow.options(run_id=..., delay=...)``); with
    a ``run_id`` that exists, that run is returned and nothing is written. The arguments are
    encoded before anything is written: ``SerializationError`` if one cannot be stored,
    ``InvalidWorkflowFunctionError`` if ``workflow`` is not a ``@workflow``. A worker
    (embedded in this process unless ``WORKFLOWKIT_EMBEDDED_WORKER=0``) runs it.

    In workflow code it starts a child run, recorded in this run's log: a replay gets the
    same child, and ``await run.return_value()`` there waits for it durably.
    """
    executor = current_executor()
    if executor is not None:
        return Run(await executor.start_child(workflow, args, kwargs))
    runtime = get_runtime()
    end = EndWatch(runtime.waiters, asyncio.get_running_loop())
    try:
        created = await _operations.start(
            runtime.world, workflow, args, kwargs, runtime.worker, end.begin
        )
    except BaseException:
        end.stop()
        raise
    run: Run[R] = Run(created.record.run_id)
    if created.created and end.listening:  # it began before the run existed: nothing missed
        run._end = end
        end.hold(run)
    elif created.created and end.nudge.ended is not None:
        run._end = end  # the run has already ended: its result came with the change
    else:
        end.stop()
    return run


async def fork_run(run_id: str, from_step: int) -> Run[Any]:
    """Start a new run of the run's workflow and input that reuses the results of its
    first ``from_step`` steps (by the order the code called them) and runs the code again
    from there: after fixing the code a step failed on, fork from just before that step.

    The fork links to its source (``RunOptions.forked_from``). ``ForkError`` if the run
    has fewer steps, or started a child run in the part to reuse.
    """
    record = await _operations.fork(get_runtime().world, run_id, from_step)
    return Run(record.run_id)


def get_run(run_id: str) -> Run[Any]:
    """A handle on an existing run (no I/O; methods raise if it does not exist)."""
    refuse_in_workflow("get_run()")
    return Run(run_id)


async def list_runs(
    *,
    workflow: Workflow[..., Any] | str | None = None,
    status: str | None = None,
    queue: str | Queue | None = None,
    key: str | None = None,
    parent_run_id: str | None = None,
    id_prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[RunInfo]:
    """Runs newest first, with every filter given: workflow (a ``@workflow`` or its
    durable name), status, queue (a ``Queue`` or its name) and key, parent run, run id
    prefix, created in ``[since, until)``. Up to ``limit`` (1 to 1000) of them; the next
    page starts after ``before``, the last run id of this one. As ``inspect runs``."""
    refuse_in_workflow("list_runs()")
    if status is not None and status not in RunStatus._value2member_map_:
        raise ValueError(f"status must be one of {', '.join(RunStatus)}, not {status!r}")
    if not 1 <= limit <= 1000:
        raise ValueError(f"limit must be 1 to 1000, not {limit}")
    world = get_runtime().world
    found = await world.list_runs(
        workflow_name=workflow.name if isinstance(workflow, Workflow) else workflow,
        status=None if status is None else RunStatus(status),
        queue=queue.name if isinstance(queue, Queue) else queue,
        key=key,
        parent_run_id=parent_run_id,
        id_prefix=id_prefix,
        since=since,
        until=until,
        limit=limit,
        before=before,
    )
    return await _infos(world, found)


async def _infos(world: World, records: Sequence[RunRecord]) -> list[RunInfo]:
    """``RunInfo`` for each record, what each run that has not ended waits for included."""
    live = [r for r in records if not r.status.terminal]
    held, work = (
        (await holdups(world, live), await open_work(world, live)) if live else (None, None)
    )
    now = datetime.fromtimestamp(world.now(), UTC)
    return [
        RunInfo(
            r.run_id,
            r.workflow_name,
            r.status,
            r.created_at,
            r.started_at,
            r.completed_at,
            r.diverged.message if r.diverged is not None and r.parked else None,
            r.code_version,
            r.options.forked_from,
            None if held is None else waiting_for(r, held, now, work),
        )
        for r in records
    ]


async def get_hook_by_token(token: str) -> HookInfo:
    """The active hook holding ``token``; ``HookNotFoundError`` if none does."""
    return _hook_info(await _operations.require_hook(get_runtime().world, token))


async def resume_hook(token: str, payload: Any) -> HookInfo:
    """Deliver ``payload`` to the hook holding ``token`` and wake its run.

    The payload is recorded (``hook_received``) before the run is woken. Raises
    ``HookNotFoundError`` for an unknown or disposed token, ``WebhookTokenError`` for a
    webhook's token (send it a ``Request`` with ``resume_webhook``), and
    ``SerializationError`` (with nothing written) for a payload that cannot be stored.
    """
    return _hook_info(await _operations.resume_hook(get_runtime().world, token, payload))


async def resume_webhook(
    token: str, request: Request, *, response_timeout: float | None = None
) -> Response:
    """Deliver ``request`` to the webhook holding ``token``; the response its caller gets.

    That is ``202 Accepted``, the webhook's static response, or, for a manual webhook, the
    response a step sends (``WebhookResponseNotSentError`` if none comes within
    ``response_timeout`` seconds, default ``$WORKFLOWKIT_WEBHOOK_RESPONSE_TIMEOUT`` or 30).
    This is what the HTTP apps do for each request; tests can call it directly.
    """
    world = get_runtime().world
    return await _operations.resume_webhook(
        world, token, request, response_timeout=response_timeout
    )


def _hook_info(record: HookRecord) -> HookInfo:
    metadata = serde.decode(record.metadata) if record.metadata is not None else None
    return HookInfo(record.hook_id, record.run_id, record.token, metadata, record.created_at)


def _ending(change: RunChange | None) -> tuple[RunStatus, bytes | None] | None:
    """The status and payload of the event that ended the run, if ``change`` told it."""
    if change is None or not change.events or change.events[-1].type not in ENDS_RUN:
        return None
    return change.status, change.events[-1].payload


async def _wait_terminal(
    runtime: Runtime, run_id: str, timeout: float | None, end: EndWatch | None = None
) -> tuple[RunStatus, bytes | None]:
    """Wait for a run to reach a terminal state, woken by store notifications; that state,
    and the run's output (completed) or error (failed). With ``end`` (the run's start set it
    up), the first read waits for a nudge or a second. The change that ended the run
    usually carries its last event: then the run is not read again."""
    if end is not None and end.serves(runtime.waiters):
        changed, unsubscribe, read = end.nudge, end.stop, False
    else:
        if end is not None:
            end.stop()
            told = _ending(end.nudge.ended)
            if told is not None:  # it ended before this wait began
                return told
        changed = Nudge(asyncio.get_running_loop())
        unsubscribe, read = runtime.waiters.add(run_id, changed.nudge), True
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            if read:
                try:
                    record = await _operations.require_run(runtime.world, run_id)
                except WorldUnavailableError:
                    # The store is away: waiting for a result rides out an outage, up to
                    # its timeout.
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
                    await asyncio.sleep(0.5)
                    continue
                if record.status.terminal:
                    completed = record.status is RunStatus.COMPLETED
                    return record.status, record.output if completed else record.error
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"run {run_id} is still {record.status} after {timeout} s")
            read = True
            wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            await changed.wait(wait)
            ending = _ending(changed.ended)
            if ending is not None:
                return ending
    finally:
        unsubscribe()


# -- schedules -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule: how it is defined, and where it stands.

    Each tick starts a run of ``workflow_name`` with the tick's time (an aware datetime in
    ``timezone``) as its first argument, then ``args`` and ``kwargs``; its run id is
    ``<schedule_id>@<tick in UTC>``. ``next_tick`` is None once the schedule ended
    (``end_at``). ``declared_in_code``: from ``@workflow(schedule=...)``.
    """

    schedule_id: str
    workflow_name: str
    cron: str
    timezone: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    catch_up: CatchUp
    overlap: Overlap
    start_at: datetime | None
    end_at: datetime | None
    paused: bool
    declared_in_code: bool
    next_tick: datetime | None
    last_tick: datetime | None
    last_run_id: str | None
    buffered_tick: datetime | None
    created_at: datetime
    updated_at: datetime


def schedule_info(record: ScheduleRecord) -> ScheduleInfo:
    args, kwargs = serde.decode(record.input)
    return ScheduleInfo(
        record.schedule_id,
        record.workflow_name,
        record.cron,
        record.timezone,
        tuple(args),
        dict(kwargs),
        record.catch_up,
        record.overlap,
        record.start_at,
        record.end_at,
        record.paused,
        record.static,
        record.next_tick,
        record.last_tick,
        record.last_run_id,
        record.buffered_tick,
        record.created_at,
        record.updated_at,
    )


async def _schedules_world(call: str) -> World:
    """The World, once this process's declared schedules are in it (refused in workflow
    code first, as ``call``)."""
    refuse_in_workflow(call)
    runtime = get_runtime()
    await runtime.declare_schedules()
    return runtime.world


def _changed(record: ScheduleRecord) -> ScheduleInfo:
    get_runtime().schedules_changed()  # this process's worker looks again now
    return schedule_info(record)


async def create_schedule(
    schedule_id: str,
    workflow: Workflow[..., Any],
    *,
    cron: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    catch_up: str = "none",
    overlap: str = "skip",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> ScheduleInfo:
    """Start ``workflow`` on a cron schedule, stored in the World (it survives restarts).

    ``cron``: five fields, six with seconds first, or ``@hourly``/``@daily``/...; read in
    ``timezone`` (an IANA name). Each tick's run gets the tick's time, then ``args`` and
    ``kwargs``. ``catch_up`` (ticks missed while no worker ran): ``"none"``, ``"latest"``
    or ``"all"`` (at most 100). ``overlap`` (a tick while the last run is active):
    ``"skip"``, ``"allow"`` or ``"buffer_one"``. Ticks only from ``start_at`` and up to
    ``end_at``. Raises ``InvalidScheduleError`` (a bad value, before anything is written)
    and ``ScheduleAlreadyExistsError``.
    """
    if not isinstance(workflow, Workflow):
        raise InvalidWorkflowFunctionError(
            f"create_schedule() needs a function decorated with @workflow, got {workflow!r}"
        )
    record = await _schedule_ops.create(
        await _schedules_world("create_schedule()"),
        schedule_id,
        workflow.name,
        cron=cron,
        args=args,
        kwargs=kwargs,
        timezone=timezone,
        catch_up=catch_up,
        overlap=overlap,
        start_at=start_at,
        end_at=end_at,
    )
    return _changed(record)


async def get_schedule(schedule_id: str) -> ScheduleInfo:
    """The schedule with this id; ``ScheduleNotFoundError`` if there is none."""
    world = await _schedules_world("get_schedule()")
    return schedule_info(await _schedule_ops.require_schedule(world, schedule_id))


async def list_schedules() -> list[ScheduleInfo]:
    """Every schedule in the World, by id."""
    world = await _schedules_world("list_schedules()")
    return [schedule_info(r) for r in await world.list_schedules()]


async def update_schedule(
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
) -> ScheduleInfo:
    """Change the fields given (see ``create_schedule``); a new cron, time zone or window
    moves the next tick. ``start_at=None`` or ``end_at=None`` removes that bound of the
    window. Schedules declared in code change in code (``StaticScheduleError``)."""
    record = await _schedule_ops.update(
        await _schedules_world("update_schedule()"),
        schedule_id,
        cron=cron,
        args=args,
        kwargs=kwargs,
        timezone=timezone,
        catch_up=catch_up,
        overlap=overlap,
        start_at=start_at,
        end_at=end_at,
    )
    return _changed(record)


async def pause_schedule(schedule_id: str) -> ScheduleInfo:
    """No tick fires until ``resume_schedule``; runs already started go on."""
    world = await _schedules_world("pause_schedule()")
    return _changed(await _schedule_ops.set_paused(world, schedule_id, True))


async def resume_schedule(schedule_id: str) -> ScheduleInfo:
    """Fire again from the next tick after now (ticks missed while paused are not caught up)."""
    world = await _schedules_world("resume_schedule()")
    return _changed(await _schedule_ops.set_paused(world, schedule_id, False))


async def delete_schedule(schedule_id: str) -> None:
    """Delete the schedule (its runs stay); ``ScheduleNotFoundError`` if there is none."""
    await _schedule_ops.delete(await _schedules_world("delete_schedule()"), schedule_id)
    get_runtime().schedules_changed()


async def trigger_schedule(schedule_id: str) -> Run[Any]:
    """Start one run of the schedule now (its tick time is now), whatever its overlap
    policy, even while paused; the schedule's own ticks are unaffected."""
    world = await _schedules_world("trigger_schedule()")
    created = await _schedule_ops.trigger(world, schedule_id)
    return Run(created.record.run_id)
