"""Running one attempt of a step and turning its outcome into the event to record.

The same code serves a run's own driver and a worker that claimed the step from the step
queue; both record the event as built here, stamped with the World's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor, Future
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from .. import _lifecycle, serde
from .._retry_policy import DEFAULT_RETRY, Retry, next_delay
from .._tracebacks import without_internal
from ..context import DurableStep, StepMetadata, WorkflowMetadata, set_step
from ..errors import StepAttemptLostError, StepTimeoutError
from ..streams import StepStreams, set_step_streams
from ..worlds.base import World
from ..worlds.records import EventType, NewEvent
from .deadlines import watch
from .executor import encode_error

log = logging.getLogger("workflowkit.worker")


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


async def run_attempt(
    attempt: Attempt,
    step_pool: Executor,
    clock: Callable[[], float],
    default_retry: Retry = DEFAULT_RETRY,
) -> Outcome:
    """Run the step once (a synchronous step on a thread of ``step_pool``).

    ``clock`` is the World's clock: it stamps the event and measures the retry's due time.
    ``default_retry``: the policy of a step that names none (the worker's default).
    """
    policy = attempt.step.retry or default_retry
    if attempt.attempt > policy.attempts:
        return _lost(attempt, clock(), policy)
    run_id = attempt.workflow.workflow_run_id
    loop = asyncio.get_running_loop()
    streams = StepStreams(attempt.world, loop, run_id, attempt.step_id, attempt.attempt)
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
        if streams.written:  # what the step wrote is stored before its result
            await streams.finish(succeeded=True)
    except BaseException as error:
        if isinstance(error, asyncio.CancelledError) and _cancelled_by_worker():
            _lifecycle.attempt_ended(attempt, None, None, trace)
            raise
        with contextlib.suppress(Exception):
            await streams.finish(succeeded=False)
        failure = _failure(attempt, error, clock(), policy)
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
    thread: Future[Any] | None = None
    if st.is_async:
        # The caller is a task of its own, so its context is the step's alone.
        set_step(metadata)
        set_step_streams(streams)
        running: Awaitable[Any] = cast(Coroutine[Any, Any, Any], st.fn(*args, **kwargs))
    else:
        context = contextvars.copy_context()
        context.run(_enter, metadata, streams)
        if st.timeout is None:
            call = functools.partial(context.run, st.fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(step_pool, call)
        thread = step_pool.submit(context.run, st.fn, *args, **kwargs)
        # Cancelling this wrapper leaves the thread running: its result is then dropped.
        running = asyncio.wrap_future(thread)
    timeout = st.timeout
    if timeout is None:
        return await running
    task = cast("asyncio.Task[object]", asyncio.current_task())
    deadlines = watch(asyncio.get_running_loop())
    deadlines.add(task, timeout)
    try:
        value = await running
    except asyncio.CancelledError:
        # Ours only if the deadline cancelled it and nobody else did (the worker, stopping).
        if not deadlines.took(task) or task.uncancel() > 0:
            raise
    else:
        if not deadlines.took(task):
            return value
        # It caught the cancellation (to clean up) and returned: still past its timeout.
        if task.uncancel() > 0:
            raise asyncio.CancelledError
    finally:
        deadlines.discard(task)
    if thread is not None and not thread.cancelled():
        if thread.done():
            return thread.result()  # it finished as the deadline came: keep the result
        OVERRUNS.add(st.name, thread)
    raise StepTimeoutError(st.name, timeout)


def _enter(metadata: StepMetadata, streams: StepStreams) -> None:
    set_step(metadata)
    set_step_streams(streams)


class _Overruns:
    """Threads of sync steps still running past their timeout.

    Python cannot stop a thread, so each keeps its place in the step pool until the step's
    function returns; this counts them (``count``) so a worker can say why its pool is full.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, name: str, thread: Future[Any]) -> None:
        with self._lock:
            self.count += 1
            running = self.count
        log.warning(
            "step %s: past its timeout; its thread cannot be stopped and runs on, its result "
            "to be ignored (%d such thread(s) now hold places in the step pool)",
            name,
            running,
        )
        thread.add_done_callback(self._finished)

    def _finished(self, _: Future[Any]) -> None:
        with self._lock:
            self.count -= 1


OVERRUNS = _Overruns()


def _cancelled_by_worker() -> bool:
    """Whether the step's task was asked to stop, rather than the step raising
    ``CancelledError`` itself (which is a failure of that attempt)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _failure(attempt: Attempt, error: BaseException, now: float, policy: Retry) -> Outcome:
    payload = _encode_failure(error)
    # A BaseException (sys.exit(), KeyboardInterrupt) is a failed attempt like any other:
    # letting it through would end the worker, and every worker that claims the run after.
    # Jitter is drawn here, on the worker, and lands in retry_at: replay reads it back.
    draw = random.random() if policy.jitter else 0.0
    delay = next_delay(policy, error, attempt.attempt, now, draw)
    if delay is None:
        failed = NewEvent(EventType.STEP_FAILED, attempt.step_id, payload, created_at=_at(now))
        return Outcome(failed)
    attrs = {"attempt": attempt.attempt, "retry_at": now + delay}
    retrying = NewEvent(EventType.STEP_RETRYING, attempt.step_id, payload, attrs, _at(now))
    return Outcome(retrying, delay)


def _lost(attempt: Attempt, now: float, policy: Retry) -> Outcome:
    """The step fails without running: the attempt before this one never ended (its worker
    went away), and it was the last the policy allows."""
    error = StepAttemptLostError(attempt.step.name, attempt.attempt - 1, policy.attempts)
    trace = _lifecycle.attempt_started(attempt)
    failed = NewEvent(
        EventType.STEP_FAILED, attempt.step_id, encode_error(error), created_at=_at(now)
    )
    _lifecycle.attempt_ended(attempt, failed, error, trace)
    return Outcome(failed)


def _encode_failure(error: BaseException) -> bytes:
    """The error's payload, its traceback cut down to the user's frames, so what the CLI
    and the dashboard show starts at the step's own code. The error itself is left as it
    was (the traceback is swapped back): only the stored text changes."""
    original = error.__traceback__
    error.__traceback__ = without_internal(original)
    try:
        return encode_error(error)
    finally:
        error.__traceback__ = original


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
