"""Running one attempt of a step and turning its outcome into the event to record.

The same code serves a run's own driver and a worker that claimed the step from the step
queue; both record the event as built here, stamped with the World's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from .. import _lifecycle, serde
from ..context import DurableStep, StepMetadata, WorkflowMetadata, set_step
from ..durations import parse_duration
from ..errors import FatalError, RetryableError, SerializationError, StreamClosedError
from ..streams import StepStreams, set_step_streams
from ..worlds.base import World
from ..worlds.records import ChunkWriter, EventType, NewEvent
from .executor import encode_error

DEFAULT_RETRY_DELAY = 1.0


# Named tuples rather than frozen dataclasses: as immutable, and four times cheaper to build;
# one of each is built for every step.


class Attempt(NamedTuple):
    """One attempt of a step, and what running it needs."""

    step: DurableStep
    step_id: str
    input: bytes
    attempt: int
    workflow: WorkflowMetadata
    world: World
    # Where its trace goes (``_lifecycle``): the run segment of the driver that launched
    # it, or the run's stored trace context (a step claimed from the step queue), or None.
    parent: _lifecycle.RunSegment | str | None = None


class Outcome(NamedTuple):
    """How an attempt ended: the event to record and, if the step will be retried, the
    delay before its next attempt (the event's ``retry_at`` is that delay from its time)."""

    event: NewEvent
    retry_after: float | None = None


async def run_attempt(attempt: Attempt, step_pool: Executor, clock: Callable[[], float]) -> Outcome:
    """Run the step once (a synchronous step on a thread of ``step_pool``).

    ``clock`` is the World's clock: it stamps the event and measures the retry's due time.
    """
    run_id = attempt.workflow.workflow_run_id
    writer = ChunkWriter(attempt.step_id, attempt.attempt)
    streams = StepStreams(attempt.world, asyncio.get_running_loop(), run_id, writer)
    metadata = StepMetadata(
        attempt.step_id,
        attempt.step.name,
        attempt.attempt,
        datetime.now(UTC),
        attempt.workflow,
        attempt.world,
    )
    trace = _lifecycle.attempt_started(attempt)
    try:
        args, kwargs = serde.decode(attempt.input)
        value = await _call(attempt.step, tuple(args), dict(kwargs), metadata, streams, step_pool)
        output = serde.encode(value, path=f"return value of step {attempt.step.name}")
        await streams.finish(succeeded=True)  # what the step wrote is stored before its result
    except BaseException as error:
        if isinstance(error, asyncio.CancelledError) and _cancelled_by_worker():
            _lifecycle.attempt_ended(attempt, None, None, trace)
            raise
        with contextlib.suppress(Exception):
            await streams.finish(succeeded=False)
        failure = _failure(attempt, error, clock())
        _lifecycle.attempt_ended(attempt, failure.event, error, trace)
        return failure
    completed = NewEvent(EventType.STEP_COMPLETED, attempt.step_id, output, created_at=_at(clock()))
    _lifecycle.attempt_ended(attempt, completed, None, trace)
    return Outcome(completed)


async def _call(
    st: DurableStep,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    metadata: StepMetadata,
    streams: StepStreams,
    step_pool: Executor,
) -> Any:
    if st.is_async:
        # The caller is a task of its own, so its context is the step's alone.
        set_step(metadata)
        set_step_streams(streams)
        return await cast(Coroutine[Any, Any, Any], st.fn(*args, **kwargs))
    context = contextvars.copy_context()
    context.run(_enter, metadata, streams)
    call = functools.partial(context.run, st.fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(step_pool, call)


def _enter(metadata: StepMetadata, streams: StepStreams) -> None:
    set_step(metadata)
    set_step_streams(streams)


def _cancelled_by_worker() -> bool:
    """Whether the step's task was asked to stop, rather than the step raising
    ``CancelledError`` itself (which is a failure of that attempt)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _failure(attempt: Attempt, error: BaseException, now: float) -> Outcome:
    payload = encode_error(error)
    # A BaseException (sys.exit(), KeyboardInterrupt) is a failed attempt like any other:
    # letting it through would end the worker, and every worker that claims the run after.
    fatal = isinstance(error, FatalError | SerializationError | StreamClosedError)
    if fatal or attempt.attempt > attempt.step.max_retries:
        failed = NewEvent(EventType.STEP_FAILED, attempt.step_id, payload, created_at=_at(now))
        return Outcome(failed)
    delay = retry_delay(error)
    attrs = {"attempt": attempt.attempt, "retry_at": now + delay}
    retrying = NewEvent(EventType.STEP_RETRYING, attempt.step_id, payload, attrs, _at(now))
    return Outcome(retrying, delay)


def retry_delay(error: BaseException) -> float:
    if not isinstance(error, RetryableError) or error.retry_after is None:
        return DEFAULT_RETRY_DELAY
    after = error.retry_after
    if isinstance(after, datetime):
        if after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        return max(0.0, (after - datetime.now(UTC)).total_seconds())
    if isinstance(after, timedelta | str):
        return parse_duration(after)
    return max(0.0, float(after))


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
