"""Running one attempt of a step and turning its outcome into the event to record."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from .. import serde
from ..context import StepMetadata, WorkflowMetadata, set_step
from ..durations import parse_duration
from ..errors import FatalError, RetryableError, SerializationError, StreamClosedError
from ..registry import Step
from ..streams import StepStreams
from ..worlds.base import World
from ..worlds.records import ChunkWriter, EventType, NewEvent
from .executor import encode_error

DEFAULT_RETRY_DELAY = 1.0


@dataclass(frozen=True, slots=True)
class Attempt:
    step: Step[Any, Any]
    step_id: str
    input: bytes
    attempt: int
    workflow: WorkflowMetadata
    world: World | None = None


async def run_attempt(
    attempt: Attempt, pool: Executor, clock: Callable[[], float]
) -> tuple[NewEvent, float | None]:
    """Run the step once; the event recording the outcome, and the retry delay if retrying.

    ``clock`` is the World's clock, which the retry's due time is measured on.
    """
    started = datetime.now(UTC)
    streams = None
    if attempt.world is not None:
        writer = ChunkWriter(attempt.step_id, attempt.attempt)
        run_id = attempt.workflow.workflow_run_id
        streams = StepStreams(attempt.world, asyncio.get_running_loop(), run_id, writer)
    metadata = StepMetadata(
        attempt.step_id,
        attempt.step.name,
        attempt.attempt,
        started,
        attempt.workflow,
        attempt.world,
        streams,
    )
    try:
        args, kwargs = serde.decode(attempt.input)
        value = await _call(attempt.step, tuple(args), dict(kwargs), metadata, pool)
        output = serde.encode(value, path=f"return value of step {attempt.step.name}")
        if streams is not None:  # what the step wrote is stored before its result
            await streams.finish(succeeded=True)
    except BaseException as error:
        if isinstance(error, asyncio.CancelledError) and _cancelled_by_worker():
            raise
        if streams is not None:
            with contextlib.suppress(Exception):
                await streams.finish(succeeded=False)
        return _failure(attempt, error, clock())
    return NewEvent(EventType.STEP_COMPLETED, attempt.step_id, output), None


async def _call(
    st: Step[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    metadata: StepMetadata,
    pool: Executor,
) -> Any:
    if st.is_async:
        # The caller is a task of its own, so its context is the step's alone.
        set_step(metadata)
        return await cast(Coroutine[Any, Any, Any], st.fn(*args, **kwargs))
    context = contextvars.copy_context()
    context.run(set_step, metadata)
    call = functools.partial(context.run, st.fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(pool, call)


def _cancelled_by_worker() -> bool:
    """Whether the step's task was asked to stop, rather than the step raising
    ``CancelledError`` itself (which is a failure of that attempt)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _failure(attempt: Attempt, error: BaseException, now: float) -> tuple[NewEvent, float | None]:
    payload = encode_error(error)
    # A BaseException (sys.exit(), KeyboardInterrupt) is a failed attempt like any other:
    # letting it through would end the worker, and every worker that claims the run after.
    fatal = isinstance(error, FatalError | SerializationError | StreamClosedError)
    if fatal or attempt.attempt > attempt.step.max_retries:
        return NewEvent(EventType.STEP_FAILED, attempt.step_id, payload), None
    delay = retry_delay(error)
    retry_at = now + delay
    event = NewEvent(
        EventType.STEP_RETRYING,
        attempt.step_id,
        payload,
        {"attempt": attempt.attempt, "retry_at": retry_at},
    )
    return event, delay


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
