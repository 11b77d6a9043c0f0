"""Every write a client makes, written once: start, cancel, fail, wake up, resume, re-run.

``workflowkit.api`` (and ``workflowkit.sync`` through it) calls these on the process's
World; the CLI and the dashboard call them on the World they opened. None of those appends
events or creates runs itself, so each rule holds at every door: an unknown run id is
``WorkflowRunNotFoundError``, a hook payload sent to a webhook's token is
``WebhookTokenError``, and a webhook is reachable only with a ``Request``.

Every function takes the World it acts on first and is an entry point of its own: a rule
about where client calls may run (in workflow code, say) is one check at the top of each.

Nothing here nudges a worker after a write: the World's change feed (``World.subscribe``)
tells the workers of this process at once, and those of other processes through the
database, about every run created and every event appended.

Failure model: each write is one World call, so it lands whole or not at all (the World
settles an ambiguous commit itself). A caller that retries after an error may repeat it:
cancelling, failing or waking again is harmless (the second call finds nothing left to do),
starting again with the same ``run_id`` returns the same run (without one, it starts a
second run), resuming again delivers a second payload. Cancelling (failing) many runs is
one write per run, so an error part-way leaves the runs before it cancelled (failed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import _fork, _lifecycle, _settings, serde
from ._start_options import NO_START_OPTIONS, StartOptions
from .context import refuse_in_workflow
from .errors import (
    HookNotFoundError,
    InvalidWorkflowFunctionError,
    RunFailedByOperatorError,
    WebhookResponseNotSentError,
    WebhookTokenError,
    WorkflowRunAlreadyExistsError,
    WorkflowRunNotFoundError,
)
from .ids import new_id
from .registry import Workflow
from .runtime.executor import encode_error, encode_input
from .webhooks import ACCEPTED, Request, Response
from .worlds.base import World, on_home_loop
from .worlds.records import (
    CreatedRun,
    EventType,
    HookRecord,
    Lease,
    NewEvent,
    RunOptions,
    RunRecord,
    RunStatus,
    from_timestamp,
)

# -- lookups -------------------------------------------------------------------------------


async def require_run(world: World, run_id: str) -> RunRecord:
    """The run with this id; ``WorkflowRunNotFoundError`` if there is none."""
    refuse_in_workflow("a Run's status(), info() and return_value()")
    record = await world.get_run(run_id)
    if record is None:
        raise WorkflowRunNotFoundError(run_id)
    return record


async def require_hook(world: World, token: str) -> HookRecord:
    """The active hook holding ``token``; ``HookNotFoundError`` if none does."""
    refuse_in_workflow("get_hook_by_token()")
    hook = await world.get_hook_by_token(token)
    if hook is None:
        raise HookNotFoundError(token)
    return hook


# -- starting runs -------------------------------------------------------------------------


class RunTaker(Protocol):
    """A worker in this process that may execute a run the process starts, without a claim:
    the run is created held by it, and handed over once it exists."""

    def lease_for(
        self, workflow_name: str, options: RunOptions, start_at: float | None
    ) -> Lease | None: ...

    def adopt(self, created: CreatedRun) -> None: ...


async def start(
    world: World,
    workflow: Workflow[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    taker: RunTaker | None = None,
    before_create: Callable[[str], None] | None = None,
) -> CreatedRun:
    """A run of ``workflow`` with its start options (``Workflow.options``): a new one, or
    the run its ``run_id`` names if that exists. ``InvalidWorkflowFunctionError`` if
    ``workflow`` is not a ``@workflow``. ``before_create`` is told the run id just before
    the create of a run ``taker`` will execute is written."""
    if not isinstance(workflow, Workflow):
        raise InvalidWorkflowFunctionError(
            f"start() needs a function decorated with @workflow, got {workflow!r}"
        )
    options = workflow.start_options
    return await start_by_name(world, workflow.name, args, kwargs, options, taker, before_create)


async def start_by_name(
    world: World,
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: StartOptions = NO_START_OPTIONS,
    taker: RunTaker | None = None,
    before_create: Callable[[str], None] | None = None,
) -> CreatedRun:
    """A run of the workflow with this durable name (see ``start``).

    The arguments are encoded before anything is written (``SerializationError``). With a
    ``run_id`` that exists, nothing is written: the existing run is returned, unless
    ``on_conflict`` is ``"error"`` or it runs another workflow
    (``WorkflowRunAlreadyExistsError``).
    """
    refuse_in_workflow("start()")
    payload = encode_input(tuple(args), kwargs, what=f"workflow {name}")
    now = world.now()
    run_options = RunOptions(
        deadline=from_timestamp(options.deadline(now)),
        queue=options.queue,
        key=options.key,
        priority=options.priority,
    )
    start_at = options.start_time(now)
    # This process's worker takes the run at once if it can: no claim, no wake-up.
    lease = None if taker is None else taker.lease_for(name, run_options, start_at)
    run_id = options.run_id or new_id("wrun")
    if before_create is not None and lease is not None:
        before_create(run_id)
    created = await world.create_run(
        run_id,
        name,
        payload,
        _lifecycle.start_attrs(name),
        run_options,
        start_at=from_timestamp(start_at),
        lease=lease,
    )
    record = created.record
    if created.created and taker is not None and lease is not None:
        taker.adopt(created)
    if not created.created and (options.on_conflict == "error" or record.workflow_name != name):
        raise WorkflowRunAlreadyExistsError(record.run_id, str(record.status), record.workflow_name)
    return created


async def rerun(world: World, run_id: str) -> RunRecord:
    """A new run of the same workflow with the very same stored input bytes, in the same
    queue, key and priority (flow control holds for it as for the first). A top-level run:
    not its parent's child; without the first's deadline, which was a time now past or near."""
    refuse_in_workflow("rerun()")
    record = await require_run(world, run_id)
    first = record.options
    options = RunOptions(queue=first.queue, key=first.key, priority=first.priority)
    attrs = {"name": record.workflow_name}
    created = await world.create_run(
        new_id("wrun"), record.workflow_name, record.input, attrs, options
    )
    return created.record


async def fork(world: World, run_id: str, from_step: int) -> RunRecord:
    """A new run of the same workflow and input reusing the run's first ``from_step``
    steps (``workflowkit._fork``); ``ForkError`` if that cannot be."""
    refuse_in_workflow("fork_run()")
    return await _fork.fork(world, await require_run(world, run_id), from_step)


# -- cancelling and failing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skipped:
    run_id: str
    status: str


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    cancelled: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()  # runs that had already ended, with their status


@dataclass(frozen=True, slots=True)
class FailOutcome:
    failed: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()  # runs that had already ended, with their status


async def cancel(world: World, run_ids: Sequence[str]) -> CancelOutcome:
    """Cancel the runs with these ids; all are looked up first, so an unknown id
    (``WorkflowRunNotFoundError``) cancels none."""
    records = [await require_run(world, run_id) for run_id in run_ids]
    return await cancel_runs(world, records)


async def cancel_runs(world: World, records: Sequence[RunRecord]) -> CancelOutcome:
    """Cancel each run that has not ended; the others are skipped with their status."""
    refuse_in_workflow("cancel()")
    ended, skipped = await _end_runs(
        world, records, lambda _: NewEvent(EventType.RUN_CANCELLED), _lifecycle.run_cancelled
    )
    return CancelOutcome(ended, skipped)


async def fail(world: World, run_ids: Sequence[str], reason: str | None = None) -> FailOutcome:
    """End the runs with these ids as failed (``fail_runs``); all are looked up first, so an
    unknown id (``WorkflowRunNotFoundError``) fails none."""
    refuse_in_workflow("fail()")
    records = [await require_run(world, run_id) for run_id in run_ids]
    return await fail_runs(world, records, reason)


async def fail_runs(
    world: World, records: Sequence[RunRecord], reason: str | None = None
) -> FailOutcome:
    """End each run that has not ended as failed, its error a ``RunFailedByOperatorError``
    carrying ``reason`` (None for an empty one); the others are skipped with their status.

    As with a cancel, its steps' results are discarded, its hooks released, its children
    that are not detached cancelled, and a worker holding it stops; a parent awaiting it
    gets the failure. A parked (diverged) run is ended the same way."""
    refuse_in_workflow("fail()")
    why = reason or None

    def failure(run_id: str) -> NewEvent:
        error = RunFailedByOperatorError(run_id, why)
        return NewEvent(EventType.RUN_FAILED, payload=encode_error(error))

    def logged(run_id: str, workflow: str) -> None:
        _lifecycle.run_failed_by_operator(run_id, workflow, RunFailedByOperatorError(run_id, why))

    ended, skipped = await _end_runs(world, records, failure, logged)
    return FailOutcome(ended, skipped)


async def _end_runs(
    world: World,
    records: Sequence[RunRecord],
    ending: Callable[[str], NewEvent],
    logged: Callable[[str, str], None],
) -> tuple[tuple[str, ...], tuple[Skipped, ...]]:
    """Append ``ending(run_id)`` to each run that has not ended, as a writer that does not
    hold it (its worker, if any, learns of it and drops it); the runs ended, and the runs
    skipped (they had ended, perhaps in the meantime) with their status."""
    ended: list[str] = []
    skipped: list[Skipped] = []
    for record in records:
        if record.status.terminal:
            skipped.append(Skipped(record.run_id, str(record.status)))
            continue
        result = await world.append(record.run_id, [ending(record.run_id)])
        if result.events:
            ended.append(record.run_id)
            logged(record.run_id, record.workflow_name)
            await _lifecycle.children_cancelled(world, record.run_id, result.cancelled_children)
        else:  # it ended in the meantime
            skipped.append(Skipped(record.run_id, str(result.run_status)))
    return tuple(ended), tuple(skipped)


# -- waking sleeps -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WakeOutcome:
    run: RunRecord
    woken: tuple[str, ...]
    not_pending: tuple[str, ...]  # asked for, but not a pending sleep of the run
    started: bool = False  # a run waiting for its start time (delay, start_at) starts now


async def wake_up(world: World, run_id: str, wait_ids: Sequence[str] | None = None) -> WakeOutcome:
    """End the run's pending sleeps now: all of them, or those in ``wait_ids``. A run that
    waits for its start time (started with ``delay`` or ``start_at``) starts now."""
    refuse_in_workflow("wake_up()")
    record = await require_run(world, run_id)
    if record.status is RunStatus.PENDING and record.started_at is None and wait_ids is None:
        return WakeOutcome(record, (), (), await world.wake_run(run_id))
    pending = [w.wait_id for w in await world.list_waits(run_id) if not w.completed_at]
    wanted = pending if wait_ids is None else [w for w in pending if w in wait_ids]
    missing = [] if wait_ids is None else [w for w in wait_ids if w not in pending]
    if not wanted or record.status.terminal:
        return WakeOutcome(record, (), tuple(missing))
    events = [NewEvent(EventType.WAIT_COMPLETED, wait_id) for wait_id in wanted]
    result = await world.append(run_id, events)
    woken = [str(e.correlation_id) for e in result.events]
    return WakeOutcome(record, tuple(woken), tuple(missing + [w for w in wanted if w not in woken]))


# -- hooks and webhooks --------------------------------------------------------------------


async def resume_hook(world: World, token: str, payload: Any) -> HookRecord:
    """Deliver ``payload`` to the hook holding ``token``; that hook.

    The payload is encoded before anything is written (``SerializationError``). Raises
    ``HookNotFoundError`` (no such active hook, or it went away meanwhile) and
    ``WebhookTokenError`` (the token is a webhook's: it takes HTTP requests).
    """
    refuse_in_workflow("resume_hook()")
    encoded = serde.encode(payload, path="payload")

    async def resume() -> HookRecord:
        hook = await require_hook(world, token)
        if hook.is_webhook:
            raise WebhookTokenError(token)
        await _deliver(world, hook, encoded)
        return hook

    return await on_home_loop(world, resume())


async def resume_webhook(
    world: World, token: str, request: Request, *, response_timeout: float | None = None
) -> Response:
    """Deliver ``request`` to the webhook holding ``token``; the response its caller gets.

    A hook that is not a webhook is not reachable this way (``HookNotFoundError``). A manual
    webhook's caller waits for the response a step sends (``WebhookResponseNotSentError``
    after ``response_timeout`` seconds, default ``$WORKFLOWKIT_WEBHOOK_RESPONSE_TIMEOUT``
    or 30, or as soon as the run ends without one).
    """
    refuse_in_workflow("resume_webhook()")
    hook = await require_webhook(world, token)
    return await deliver_to_webhook(world, hook, request, response_timeout=response_timeout)


async def require_webhook(world: World, token: str) -> HookRecord:
    """The active webhook holding ``token``; ``HookNotFoundError`` if none does.

    The HTTP apps ask this before they read a request's body: an unknown token costs them
    nothing more than its headers.
    """
    hook = await require_hook(world, token)
    if not hook.is_webhook:
        raise HookNotFoundError(token)
    return hook


async def deliver_to_webhook(
    world: World, hook: HookRecord, request: Request, *, response_timeout: float | None = None
) -> Response:
    """``resume_webhook`` once the webhook was looked up (``require_webhook``)."""
    reply = serde.decode(hook.metadata) if hook.metadata is not None else None
    if reply != "manual":
        await _deliver(world, hook, serde.encode(request, path="request"))
        return reply if isinstance(reply, Response) else ACCEPTED
    # Read before delivering: a bad setting must not leave a request delivered unanswered.
    timeout = _settings.webhook_response_timeout() if response_timeout is None else response_timeout
    reply_to = new_id("wrsp")
    request = dataclasses.replace(request, reply_to=reply_to)
    await _deliver(world, hook, serde.encode(request, path="request"))
    return await _await_response(world, hook.run_id, reply_to, timeout)


async def _deliver(world: World, hook: HookRecord, payload: bytes) -> None:
    """Record the payload (``hook_received``), which makes the run due."""
    event = NewEvent(EventType.HOOK_RECEIVED, hook.hook_id, payload)
    result = await world.append(hook.run_id, [event])
    if not result.events:  # disposed, or its run ended, in the meantime
        raise HookNotFoundError(hook.token)
    await _lifecycle.hook_received(world, hook.run_id, hook.hook_id)


async def _stored_response(world: World, reply_to: str) -> Response | None:
    payload = await world.get_webhook_response(reply_to)
    response = serde.decode(payload) if payload is not None else None
    return response if isinstance(response, Response) else None


async def _await_response(world: World, run_id: str, reply_to: str, timeout: float) -> Response:
    deadline, pause = time.monotonic() + timeout, 0.002
    while True:
        response = await _stored_response(world, reply_to)
        if response is not None:
            return response
        record = await world.get_run(run_id)
        if record is None or record.status.terminal:
            # The response may have landed between the two reads: look once more.
            response = await _stored_response(world, reply_to)
            if response is not None:
                return response
            raise WebhookResponseNotSentError(
                f"run {run_id} ended without sending a response to this request"
            )
        if time.monotonic() > deadline:
            raise WebhookResponseNotSentError(
                f"run {run_id} sent no response within {timeout} s: a step must call "
                "await request.respond_with(Response(...))"
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)
