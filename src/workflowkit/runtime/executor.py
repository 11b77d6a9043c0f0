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
import random
import secrets
import traceback
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from .. import serde
from .._outcomes import run_outcome
from .._start_options import StartOptions, check_run_id
from ..context import DurableStep, WorkflowMetadata, set_executor
from ..errors import (
    ClientCallInWorkflowError,
    HookConflictError,
    HookDisposedError,
    InvalidWorkflowFunctionError,
    ReplayDivergenceError,
    SerializationError,
    StepExitError,
    WorkflowRunAlreadyExistsError,
)
from ..ids import new_id
from ..registry import Workflow
from ..urls import base_url
from ..worlds.records import CREATION_EVENTS, DELIVERY_EVENTS, Event, EventType, NewEvent
from .loop import WorkflowLoop

# -- what goes in and out of an activation ---------------------------------------------------
# Named tuples rather than frozen dataclasses: as immutable, and four times cheaper to build,
# which shows on the hot path (an activation per step).


class StepStart(NamedTuple):
    """A step attempt to start once ``due_at`` (on the World's clock; 0 for now) has come."""

    step_id: str
    step: DurableStep
    input: bytes
    attempt: int
    due_at: float
    # Replay matched its step_created in the log: it may be queued already.
    replayed: bool


class Timer(NamedTuple):
    """A sleep's timer: when due, append ``wait_completed`` for ``wait_id``."""

    wait_id: str
    resume_at: float


class Effects(NamedTuple):
    """What the workflow code did in one activation, for the driver to carry out."""

    events: Sequence[NewEvent]
    steps: Sequence[StepStart]
    timers: Sequence[Timer]


@dataclass(frozen=True, slots=True)
class Pending:
    """What the run is waiting for: steps, timers not cancelled, hooks, and child runs."""

    steps: tuple[str, ...]
    timers: tuple[Timer, ...]
    hooks: tuple[str, ...]
    children: tuple[str, ...] = ()


# -- operations ------------------------------------------------------------------------------


class _Discarded(BaseException):
    """Unwinds workflow code of a run being dropped from memory; never reaches users."""


class _Diverged(BaseException):
    """Unwinds workflow code after replay stopped matching the log."""


OpKind = Literal["step", "wait", "hook", "child"]


@dataclass(slots=True, eq=False)
class Op:
    kind: OpKind
    correlation_id: str
    name: str
    digest: str
    future: asyncio.Future[Any] | None = None
    timer: asyncio.TimerHandle | None = None
    step: DurableStep | None = None
    input: bytes | None = None
    resume_at: float = 0.0
    done: bool = False
    cancelled: bool = False
    logged: Event | NewEvent | None = None  # its creation event, when replay matched one
    hook: HookState | None = None


@dataclass(slots=True, eq=False)
class HookState:
    """Payloads received by a hook and the workflow code waiting for them."""

    token: str
    buffer: deque[Any] = field(default_factory=deque)
    waiters: deque[asyncio.Future[Any]] = field(default_factory=deque)
    error: BaseException | None = None
    disposed: bool = False


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class RunExecutor:
    """Runs one run's workflow code on its own ``WorkflowLoop``.

    Its driver calls ``activate``, ``pending``, ``now`` and ``discard``, and reads
    ``metadata`` (the run's steps carry it); ``finished`` and ``divergence`` tell how the
    run ended. Workflow code reaches ``random``, ``now`` and the operations it creates
    (``call_step``, ``create_hook``, timers) through ``workflowkit.context`` and the loop.
    """

    def __init__(
        self, run_id: str, workflow: Workflow[Any, Any], input: bytes, version: str | None = None
    ) -> None:
        self.run_id = run_id
        self.version = version  # of the code: recorded when the run starts
        self.random = random.Random(run_id)
        self.metadata = WorkflowMetadata(run_id, workflow.name, _utc(0), base_url())
        self.finished = False
        self.divergence: ReplayDivergenceError | None = None
        # The code is re-running what it already ran before (``workflowkit.logger`` is quiet).
        self.replaying = False
        self._workflow = workflow
        self._input = input
        self._loop: WorkflowLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._ops: dict[str, Op] = {}  # pending operations only; finished ones leave
        self._finished_ops: set[str] = set()
        self._timers: dict[int, Op] = {}
        self._child_count = 0
        self._traceparent: str | None = None
        # Child runs started, by run id: their outcome (a future), kept after they end.
        self._children: dict[str, asyncio.Future[Any]] = {}
        self._child_workflows: dict[str, str] = {}
        # Replay: the log's creation events, matched in order as the code creates operations.
        self._logged: list[Event | NewEvent] = []
        self._cursor = 0
        self._disposed_in_log: set[str] = set()
        # Patches: the change ids whose marker the log holds, and the answers given so far.
        self._patches_in_log: set[str] = set()
        self._patches: dict[str, bool] = {}
        # Per step: the attempt started last, and when a retrying step's next one is due.
        self._attempts: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        # What the current activation produced.
        self._events: list[NewEvent] = []
        self._to_start: dict[str, Op] = {}
        self._to_arm: list[Op] = []

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

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def discard(self) -> None:
        """Drop the run's coroutines without letting their cleanup code create operations."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.discarding = True
        self.replaying = True  # cleanup code unwinding here is not the run going on
        previous = set_executor(self)
        try:
            for task in list(loop.tasks):
                coro = task.get_coro()
                with contextlib.suppress(Exception, _Discarded):
                    coro.close()
        finally:
            set_executor(previous)
            loop.close()

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
                _describe(_KIND_OF_CREATION[missing.type], missing.attrs.get("name", "")),
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
                value = _Undecodable(exc)
            while state.waiters and state.waiters[0].done():
                state.waiters.popleft()  # cancelled awaits (a lost race) take nothing
            if state.waiters:
                _settle(state.waiters.popleft(), value)
            else:
                state.buffer.append(value)
        self._run()

    def _close_hook(self, op: Op) -> None:
        """No more payloads: fail whoever still waits, and stop counting the hook as pending."""
        assert op.hook is not None
        self._ops.pop(op.correlation_id, None)
        self._finished_ops.add(op.correlation_id)
        while op.hook.waiters:
            waiter = op.hook.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(op.hook.error or HookDisposedError())

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

    # -- operations created by workflow code -------------------------------------------------

    def call_step(
        self, step: DurableStep, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> asyncio.Future[Any]:
        if self._loop is None or self._loop.discarding:
            raise _Discarded()
        payload = encode_input(args, kwargs, what=f"step {step.name}")
        op = self._create("step", step.name, serde.digest(payload))
        op.step, op.input = step, payload
        op.future = self._loop.create_future()
        if op.logged is None:
            attrs = {"name": step.name, "digest": op.digest}
            # A label is for people (the dashboard's "model request #3"): replay ignores it.
            label = getattr(step, "label", None)
            if label:
                attrs["label"] = label
            self._events.append(NewEvent(EventType.STEP_CREATED, op.correlation_id, payload, attrs))
        self._to_start[op.correlation_id] = op
        return op.future

    async def start_child(
        self, workflow: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> str:
        """Record a child run's start (the World creates the run with this run's append);
        its id: the options' ``run_id``, or this run's id and the child's number."""
        if self._loop is None or self._loop.discarding:
            raise _Discarded()
        if not isinstance(workflow, Workflow):
            raise InvalidWorkflowFunctionError(
                f"start() needs a function decorated with @workflow, got {workflow!r}"
            )
        options: StartOptions = workflow.start_options
        payload = encode_input(args, kwargs, what=f"workflow {workflow.name}")
        self._child_count += 1
        child_id = options.run_id or f"{self.run_id}.{self._child_count}"
        check_run_id(child_id)
        if child_id in self._children:  # the same id again: the same child, as start() outside
            known = self._child_workflows[child_id]
            if options.on_conflict == "error" or known != workflow.name:
                raise WorkflowRunAlreadyExistsError(child_id, "started by this run", known)
            return child_id
        op = self._create("child", workflow.name, serde.digest(payload), child_id)
        child_id = op.correlation_id
        op.future = self._loop.create_future()
        self._children[child_id] = op.future
        self._child_workflows[child_id] = workflow.name
        if op.logged is None:
            self._events.append(
                NewEvent(
                    EventType.CHILD_CREATED,
                    child_id,
                    payload,
                    _child_attrs(workflow.name, op.digest, options, self.now(), self._traceparent),
                )
            )
        return child_id

    def child_outcome(self, run_id: str) -> asyncio.Future[Any]:
        future = self._children.get(run_id)
        if future is None:
            raise ClientCallInWorkflowError(
                f"return_value() of run {run_id}, which this run did not start,"
            )
        return future

    def create_hook(self, token: str | None, metadata: Any, *, webhook: bool = False) -> Op:
        if self._loop is None or self._loop.discarding:
            raise _Discarded()
        payload = None if metadata is None else serde.encode(metadata, path="metadata")
        op = self._create("hook", "hook", token or "")
        if op.logged is not None:
            token = str(op.logged.attrs.get("token", token))
        else:
            # Unguessable by default, and recorded, so a replay sees the same token.
            token = token or secrets.token_urlsafe(24)
            attrs: dict[str, Any] = {"name": "hook", "digest": op.digest, "token": token}
            if webhook:
                attrs["webhook"] = True
            self._events.append(NewEvent(EventType.HOOK_CREATED, op.correlation_id, payload, attrs))
        op.hook = HookState(token)
        return op

    def next_payload(self, op: Op) -> asyncio.Future[Any]:
        """A future for the hook's next payload (already resolved if one is buffered)."""
        assert self._loop is not None and op.hook is not None
        future = self._loop.create_future()
        state = op.hook
        if state.buffer:
            _settle(future, state.buffer.popleft())
        elif state.error is not None or state.disposed:
            future.set_exception(state.error or HookDisposedError())
        else:
            state.waiters.append(future)
        return future

    def dispose_hook(self, op: Op) -> None:
        assert op.hook is not None
        if op.hook.disposed:
            return
        op.hook.disposed = True
        if op.hook.error is None and op.correlation_id not in self._disposed_in_log:
            self._events.append(NewEvent(EventType.HOOK_DISPOSED, op.correlation_id))
        self._close_hook(op)

    def schedule_timer(self, handle: asyncio.TimerHandle) -> None:
        if self._loop is None or self._loop.discarding:
            raise _Discarded()
        op = self._create("wait", "sleep", "")
        op.timer = handle
        self._timers[id(handle)] = op
        if op.logged is not None:
            op.resume_at = float(op.logged.attrs.get("resume_at", handle.when()))
        else:
            op.resume_at = handle.when()
            attrs = {"resume_at": op.resume_at, "name": "sleep"}
            self._events.append(NewEvent(EventType.WAIT_CREATED, op.correlation_id, None, attrs))
        self._to_arm.append(op)

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        op = self._timers.get(id(handle))
        if op is not None:
            op.cancelled = True

    def _create(self, kind: OpKind, name: str, digest: str, op_id: str | None = None) -> Op:
        if self._cursor < len(self._logged):
            logged = self._logged[self._cursor]
            self._cursor += 1
            expected_kind = _KIND_OF_CREATION[logged.type]
            expected_name = str(logged.attrs.get("name", ""))
            expected_digest = str(logged.attrs.get("digest", ""))
            if (expected_kind, expected_name, expected_digest) != (kind, name, digest):
                what = "arguments differ" if expected_name == name else "a different operation"
                self._diverge(
                    f"operation #{self._cursor}: the event log has {expected_kind} "
                    f"{expected_name!r} but the workflow code now calls {kind} {name!r} "
                    f"({what}); did the code change under a running workflow?",
                    self._cursor,
                    _describe(expected_kind, expected_name),
                    _describe(kind, name) + (" (other arguments)" if expected_name == name else ""),
                )
                raise _Diverged()
            op = Op(kind, str(logged.correlation_id), name, digest, logged=logged)
        else:
            op = Op(kind, op_id or new_id("wrun" if kind == "child" else kind), name, digest)
        self._ops[op.correlation_id] = op
        return op

    def _diverge(self, message: str, position: int, expected: str, actual: str) -> None:
        """The code no longer matches the log: stop here. The driver parks the run (or, by
        the workflow's policy, fails it with ``divergence``); nothing this activation did
        after the last matching operation is recorded."""
        if self.divergence is None:
            self.divergence = ReplayDivergenceError(
                f"run {self.run_id}: {message}", position, expected, actual
            )
            self.finished = True

    def patched(self, change_id: str) -> bool:
        """Whether the code takes the branch of ``change_id``: yes for a run that recorded
        its marker, or that meets it live (then it records the marker); no while replaying
        a log recorded before the change. The first answer holds for the rest of the run."""
        known = self._patches.get(change_id)
        if known is not None:
            return known
        if change_id in self._patches_in_log:
            answer = True
        elif self._cursor < len(self._logged):
            answer = False  # the log goes on past here without it: recorded by older code
        else:
            answer = True
            self._events.append(NewEvent(EventType.PATCH_MARKED, change_id))
        self._patches[change_id] = answer
        return answer


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


_KIND_OF_CREATION: dict[EventType, OpKind] = {
    EventType.STEP_CREATED: "step",
    EventType.WAIT_CREATED: "wait",
    EventType.HOOK_CREATED: "hook",
    EventType.HOOK_CONFLICT: "hook",
    EventType.CHILD_CREATED: "child",
}


def _child_attrs(
    name: str, digest: str, options: StartOptions, now: float, traceparent: str | None
) -> dict[str, Any]:
    """What the World creates the child run with; times from the parent's clock, so a
    replay (which reads them back from the log) agrees. A child joins its parent's trace."""
    attrs: dict[str, Any] = {"name": name, "digest": digest}
    if traceparent is not None:
        attrs["traceparent"] = traceparent
    start_at, deadline = options.start_time(now), options.deadline(now)
    if start_at is not None:
        attrs["start_at"] = start_at
    if deadline is not None:
        attrs["deadline"] = deadline
    if options.queue is not None:
        attrs["queue"] = options.queue
    if options.key is not None:
        attrs["key"] = options.key
    if options.priority:
        attrs["priority"] = options.priority
    if options.detached:
        attrs["detached"] = True
    return attrs


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


def _describe(kind: str, name: Any) -> str:
    return f"{kind} {name!r}" if name else str(kind)


def encode_input(args: tuple[Any, ...], kwargs: Mapping[str, Any], *, what: str) -> bytes:
    """The payload of a call's arguments; a clear error naming the bad argument if any."""
    try:
        # A list pair rather than a tuple pair keeps plain arguments on the codec's fast path.
        return serde.encode([list(args), dict(kwargs)], path="input")
    except SerializationError:
        serde.encode(tuple(args), path="args")
        serde.encode(dict(kwargs), path="kwargs")
        raise


def encode_error(error: BaseException) -> bytes:
    try:
        return serde.encode(error, path="error")
    except SerializationError:
        text = "".join(traceback.format_exception(error))
        fallback = RuntimeError(f"{type(error).__qualname__}: {error}\n{text}")
        return serde.encode(fallback, path="error")


@dataclass(frozen=True, slots=True)
class _Undecodable:
    """A hook payload that could not be decoded; awaiting it raises the error."""

    error: SerializationError


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if isinstance(value, _Undecodable):
        future.set_exception(value.error)
    else:
        future.set_result(value)


def _as_exception(value: Any) -> Exception:
    """What workflow code sees for a failed step: never a ``SystemExit`` or the like, which
    would end the worker instead of failing the run."""
    if isinstance(value, Exception):
        return value
    if isinstance(value, BaseException):
        return StepExitError(type(value).__qualname__, str(value))
    return RuntimeError(f"step failed with {value!r}")
