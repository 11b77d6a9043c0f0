"""One run's workflow code, its operations, and replay against the event log.

The executor is a pure state machine: it never touches storage. Its driver hands it events
through one door, ``activate(events, now)``: the run's whole log first (a cold start
replays it), then, live, the events that follow, in log order. Each activation runs the
workflow code until it waits and returns the ``Effects``: the events to append, the step
attempts to start (with their attempt number and due time: attempts and retry times are
the executor's to keep, read from the events it is given) and the timers to arm. Between
activations the driver may only read ``metadata``, ``now()`` and ``pending()``, and at the
end ``discard()`` the executor.

Replay rules: operations the code creates are matched, in creation order, against the
creation events of the log (same kind, durable name and argument digest, else
``ReplayDivergenceError``); delivery events (a step finished, a wait completed, ...) are
handed to the code strictly in log order, and the loop runs until quiescent after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .. import serde
from .._outcomes import run_outcome
from ..context import WorkflowMetadata, set_executor
from ..errors import (
    HookConflictError,
    SerializationError,
    StepExitError,
    WorkflowRunAlreadyExistsError,
)
from ..worlds.records import CREATION_EVENTS, DELIVERY_EVENTS, Event, EventType, NewEvent
from ._effects import Effects, Pending, StepStart, Timer
from ._workflow_calls import (
    KIND_OF_CREATION,
    Discarded,
    HookState,
    Op,
    OpKind,
    Undecodable,
    WorkflowCalls,
    describe,
    encode_input,
    settle,
)
from .loop import WorkflowLoop

__all__ = [
    "Effects",
    "HookState",
    "Op",
    "OpKind",
    "Pending",
    "RunExecutor",
    "StepStart",
    "Timer",
    "encode_error",
    "encode_input",
]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class RunExecutor(WorkflowCalls):
    """Runs one run's workflow code on its own ``WorkflowLoop``.

    Its driver calls ``activate``, ``pending``, ``now`` and ``discard``, and reads
    ``metadata`` (the run's steps carry it); ``finished`` and ``divergence`` tell how the
    run ended. Workflow code reaches ``random``, ``now`` and the operations it creates
    (``call_step``, ``create_hook``, timers) through ``workflowkit.context`` and the loop.
    """

    # -- the door --------------------------------------------------------------------------

    def activate(self, events: Sequence[Event | NewEvent], now: float) -> Effects:
        """Hand the run events in log order and run its code until it waits again.

        The first activation replays: its events are the run's log from the start, and
        ``now`` (the World's clock) stamps ``run_started`` for a run that never started.
        """
        if self._loop is None:
            self._replay(events, now)
        else:
            self._apply(events)
        return self._take_effects()

    def pending(self) -> Pending:
        """What the run waits for; the driver decides from it whether to leave memory."""
        ops = self._ops.values()
        return Pending(
            tuple(op.correlation_id for op in ops if op.kind == "step"),
            tuple(
                Timer(op.correlation_id, op.resume_at)
                for op in ops
                if op.kind == "wait" and not op.cancelled
            ),
            tuple(op.correlation_id for op in ops if op.kind == "hook"),
            tuple(op.correlation_id for op in ops if op.kind == "child"),
        )

    def discard(self) -> None:
        """Drop the run's coroutines without letting their cleanup code create operations."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.discarding = True
        self.replaying = True  # cleanup code unwinding here is not the run going on
        previous = set_executor(self)
        try:
            tasks = list(loop.tasks)
            for task in tasks:
                with contextlib.suppress(Exception, Discarded):
                    loop.close_task(task)
            for task in tasks:
                # The future a task waits on calls the task back: a cycle. Cancelling it
                # drops that callback (onto the ready queue, which closing clears).
                task.cancel()
        finally:
            set_executor(previous)
            loop.close()
            self._let_go()

    def _let_go(self) -> None:
        """Break the references between the run's loop, tasks, operations and this executor,
        so reference counting frees them when the driver lets go: a worker drops a run each
        time one leaves memory, and cycles would pile up for the collector's full passes."""
        self._task = None
        self._loop = None
        self._ops.clear()
        self._timers.clear()
        self._children.clear()
        self._to_start.clear()
        self._to_arm.clear()

    def _take_effects(self) -> Effects:
        steps = [self._step_start(op) for op in self._to_start.values() if not op.done]
        timers = [
            Timer(op.correlation_id, op.resume_at)
            for op in self._to_arm
            if not op.done and not op.cancelled
        ]
        effects = Effects(self._events, steps, timers)
        self._events, self._to_start, self._to_arm = [], {}, []
        return effects

    def _step_start(self, op: Op) -> StepStart:
        assert op.step is not None and op.input is not None
        step_id = op.correlation_id
        attempt = self._attempts.get(step_id, 0) + 1
        due_at = self._retry_at.get(step_id, 0.0)
        return StepStart(step_id, op.step, op.input, attempt, due_at, op.logged is not None)

    # -- replaying and applying events -------------------------------------------------------

    def _replay(self, log: Sequence[Event | NewEvent], now: float) -> None:
        self._logged = [e for e in log if e.type in CREATION_EVENTS]
        # The trace context the run was started in (``run_created``): its children's too.
        traceparent = log[0].attrs.get("traceparent") if log else None
        self._traceparent = traceparent if isinstance(traceparent, str) else None
        # Known before the code runs: replayed code disposes a hook before the loop below
        # reaches the hook_disposed that recorded it.
        disposed = EventType.HOOK_DISPOSED  # a local: an enum attribute is a lookup per event
        self._disposed_in_log = {e.correlation_id or "" for e in log if e.type is disposed}
        marked = EventType.PATCH_MARKED
        self._patches_in_log = {e.correlation_id or "" for e in log if e.type is marked}
        started = next((e for e in log if e.type is EventType.RUN_STARTED), None)
        # Through datetime even when new, so live and replayed runs see the same microseconds.
        start = started.created_at if started and started.created_at else _utc(now)
        if started is None:
            attrs = {} if self.version is None else {"version": self.version}
            self._events.append(NewEvent(EventType.RUN_STARTED, None, None, attrs, start))
        seen = _replayed_part(log)
        self.replaying = seen > 0
        try:
            self._start(start.timestamp())
            self._apply(log[:seen])
        finally:
            self.replaying = False
        self._apply(log[seen:])
        if not self.finished and self._cursor < len(self._logged):
            missing = self._logged[self._cursor]
            self._diverge(
                f"the event log has {missing.type} {missing.attrs.get('name', '')!r} at "
                f"operation #{self._cursor + 1}, but the workflow code no longer reaches it",
                self._cursor + 1,
                describe(KIND_OF_CREATION[missing.type], missing.attrs.get("name", "")),
                "",
            )
        self._logged = []

    def _start(self, start_ts: float) -> None:
        self._loop = WorkflowLoop(self, start_ts)  # type: ignore[abstract]
        self.metadata = WorkflowMetadata(
            self.run_id, self._workflow.name, _utc(start_ts), self.metadata.url
        )
        try:
            args, kwargs = serde.decode(self._input)
        except SerializationError as exc:
            self._finish_failed(exc)
            return
        self._task = self._loop.create_task(self._main(tuple(args), dict(kwargs)))
        self._run()

    async def _main(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await self._workflow.fn(*args, **kwargs)

    def _apply(self, events: Sequence[Event | NewEvent]) -> None:
        """Deliveries go to the code, one at a time; step_started and step_retrying keep
        each step's attempts and retry times. One loop serves replay and live alike."""
        # Locals: an enum attribute is a lookup, and a replay applies tens of thousands.
        started, retrying = EventType.STEP_STARTED, EventType.STEP_RETRYING
        for event in events:
            if self.finished:
                return
            kind = event.type
            if kind in DELIVERY_EVENTS:
                self._deliver(event)
            elif kind is started:
                step_id = event.correlation_id or ""
                self._attempts[step_id] = int(event.attrs.get("attempt", 1))
                self._retry_at.pop(step_id, None)
            elif kind is retrying:
                self._retry(event)

    def _retry(self, event: Event | NewEvent) -> None:
        """A step attempt failed and the step will run again: start it when due."""
        step_id = event.correlation_id or ""
        attempt = event.attrs.get("attempt")
        if attempt is not None:
            self._attempts[step_id] = int(attempt)
        retry_at = event.attrs.get("retry_at")
        if retry_at is not None:
            self._retry_at[step_id] = float(retry_at)
        op = self._ops.get(step_id)
        if op is not None:
            self._to_start[step_id] = op

    # -- delivering events -----------------------------------------------------------------

    def _deliver(self, event: Event | NewEvent) -> None:
        """Hand one delivery event to the workflow code and run it until it waits again."""
        if self.finished or self._loop is None:
            return
        if event.created_at is not None:
            self._loop.set_time(event.created_at.timestamp())
        kind, correlation_id = event.type, event.correlation_id or ""
        if kind is EventType.HOOK_RECEIVED or kind is EventType.HOOK_CONFLICT:
            self._deliver_to_hook(event)
            return
        op = self._ops.pop(correlation_id, None)
        if op is None:
            if correlation_id not in self._finished_ops:
                self._diverge(
                    f"the event log delivers {kind} for {correlation_id}, an operation the "
                    "workflow code did not create",
                    0,
                    f"{kind} {correlation_id}",
                    "",
                )
            return
        op.done = True
        self._finished_ops.add(correlation_id)
        if kind is EventType.WAIT_COMPLETED:
            if op.timer is not None:
                self._timers.pop(id(op.timer), None)
                self._loop.fire(op.timer)
        elif kind is EventType.CHILD_COMPLETED:
            assert op.future is not None
            _settle_child(op.future, correlation_id, event)
        elif op.future is not None and not op.future.done():
            try:
                value = serde.decode(event.payload) if event.payload is not None else None
            except SerializationError as exc:
                op.future.set_exception(exc)
            else:
                if kind is EventType.STEP_FAILED:
                    op.future.set_exception(_as_exception(value))
                else:
                    op.future.set_result(value)
        self._run()

    def _deliver_to_hook(self, event: Event | NewEvent) -> None:
        op = self._ops.get(event.correlation_id or "")
        if op is None or op.hook is None:
            if event.correlation_id not in self._finished_ops:
                self._diverge(
                    f"the event log delivers {event.type} to {event.correlation_id}, a hook "
                    "the workflow code did not create",
                    0,
                    f"{event.type} {event.correlation_id}",
                    "",
                )
            return
        state = op.hook
        if event.type is EventType.HOOK_CONFLICT:
            # The store turned the hook_created into this: another run holds the token.
            holder = event.attrs.get("holder_run_id")
            state.error = HookConflictError(state.token, str(holder) if holder else None)
            self._close_hook(op)
        else:
            try:
                value: Any = serde.decode(event.payload) if event.payload is not None else None
            except SerializationError as exc:
                value = Undecodable(exc)
            while state.waiters and state.waiters[0].done():
                state.waiters.popleft()  # cancelled awaits (a lost race) take nothing
            if state.waiters:
                settle(state.waiters.popleft(), value)
            else:
                state.buffer.append(value)
        self._run()

    def _run(self) -> None:
        assert self._loop is not None
        previous = set_executor(self)
        try:
            self._loop.run_ready()
        finally:
            set_executor(previous)
        if self.divergence is not None:
            self.finished = True  # halted: the driver parks the run, or fails it
        elif self._task is not None and self._task.done() and not self.finished:
            self._finish_from_task(self._task)

    def _finish_from_task(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._finish_failed(asyncio.CancelledError("the workflow's main task was cancelled"))
            return
        error = task.exception()
        if error is not None:
            self._finish_failed(error)
            return
        try:
            output = serde.encode(task.result(), path="return value")
        except SerializationError as exc:
            self._finish_failed(exc)
            return
        self.finished = True
        self._events.append(NewEvent(EventType.RUN_COMPLETED, payload=output))

    def _finish_failed(self, error: BaseException) -> None:
        self.finished = True
        self._events.append(NewEvent(EventType.RUN_FAILED, payload=encode_error(error)))


# Events only workflow code produces: code ran after every delivery logged before one.
_CODE_EVENTS = CREATION_EVENTS | {
    EventType.RUN_STARTED,
    EventType.HOOK_DISPOSED,
    EventType.PATCH_MARKED,
}


def _replayed_part(log: Sequence[Event | NewEvent]) -> int:
    """How many of the log's first events the code had already seen: up to its last event
    that only the code writes. Deliveries after that (a hook payload, a wake-up that came
    while the run was out of memory) reach the code for the first time. Code that reacted
    to a delivery without recording anything is seen as new again: the price of not
    recording every activation."""
    for index in range(len(log) - 1, -1, -1):
        if log[index].type in _CODE_EVENTS:
            return index + 1
    return 0


def _settle_child(future: asyncio.Future[Any], run_id: str, event: Event | NewEvent) -> None:
    """A child run ended (or its id was another run's): its outcome to whoever awaits it.
    An error nobody retrieves is marked as seen, so the loop does not log it: not awaiting
    a child is not a bug."""
    if future.done():
        return
    attrs = event.attrs
    try:
        if attrs.get("status") == "conflict":
            holder = str(attrs.get("holder_workflow", "")), str(attrs.get("holder_status", ""))
            raise WorkflowRunAlreadyExistsError(run_id, holder[1], holder[0])
        future.set_result(run_outcome(run_id, str(attrs.get("status")), event.payload))
    except Exception as exc:
        future.set_exception(exc)
        future.exception()


def encode_error(error: BaseException) -> bytes:
    try:
        return serde.encode(error, path="error")
    except SerializationError:
        text = "".join(traceback.format_exception(error))
        fallback = RuntimeError(f"{type(error).__qualname__}: {error}\n{text}")
        return serde.encode(fallback, path="error")


def _as_exception(value: Any) -> Exception:
    """What workflow code sees for a failed step: never a ``SystemExit`` or the like, which
    would end the worker instead of failing the run."""
    if isinstance(value, Exception):
        return value
    if isinstance(value, BaseException):
        return StepExitError(type(value).__qualname__, str(value))
    return RuntimeError(f"step failed with {value!r}")
