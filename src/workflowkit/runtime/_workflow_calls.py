"""What workflow code creates through its run's executor: steps, child runs, hooks, timers."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .. import serde
from .._start_options import StartOptions, check_run_id
from ..context import DurableStep, WorkflowMetadata
from ..errors import (
    ClientCallInWorkflowError,
    HookDisposedError,
    InvalidWorkflowFunctionError,
    ReplayDivergenceError,
    SerializationError,
    WorkflowRunAlreadyExistsError,
)
from ..ids import new_id, new_token
from ..registry import Workflow
from ..urls import base_url
from ..worlds.records import Event, EventType, NewEvent
from .loop import WorkflowLoop


class Discarded(BaseException):
    """Unwinds workflow code of a run being dropped from memory; never reaches users."""


class Diverged(BaseException):
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


class WorkflowCalls:
    """A run's operations and the calls workflow code makes to create them; ``RunExecutor``
    adds the door (activations), replay and delivery."""

    def __init__(
        self, run_id: str, workflow: Workflow[Any, Any], input: bytes, version: str | None = None
    ) -> None:
        self.run_id = run_id
        self.version = version  # of the code: recorded when the run starts
        self._random: random.Random | None = None
        self.metadata = WorkflowMetadata(
            run_id, workflow.name, datetime.fromtimestamp(0, UTC), base_url()
        )
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

    @property
    def random(self) -> random.Random:
        """The run's random numbers, seeded by its id: the same draws on every replay. Made
        on first use (2.5 KB of state; most runs draw nothing)."""
        if self._random is None:
            self._random = random.Random(self.run_id)
        return self._random

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    # -- operations created by workflow code -------------------------------------------------

    def call_step(
        self, step: DurableStep, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> asyncio.Future[Any]:
        if self._loop is None or self._loop.discarding:
            raise Discarded()
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
            raise Discarded()
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
            raise Discarded()
        payload = None if metadata is None else serde.encode(metadata, path="metadata")
        op = self._create("hook", "hook", token or "")
        if op.logged is not None:
            token = str(op.logged.attrs.get("token", token))
        else:
            # Unguessable by default, and recorded, so a replay sees the same token.
            token = token or new_token()
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
            settle(future, state.buffer.popleft())
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
            raise Discarded()
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
            expected_kind = KIND_OF_CREATION[logged.type]
            expected_name = str(logged.attrs.get("name", ""))
            expected_digest = str(logged.attrs.get("digest", ""))
            if (expected_kind, expected_name, expected_digest) != (kind, name, digest):
                what = "arguments differ" if expected_name == name else "a different operation"
                self._diverge(
                    f"operation #{self._cursor}: the event log has {expected_kind} "
                    f"{expected_name!r} but the workflow code now calls {kind} {name!r} "
                    f"({what}); did the code change under a running workflow?",
                    self._cursor,
                    describe(expected_kind, expected_name),
                    describe(kind, name) + (" (other arguments)" if expected_name == name else ""),
                )
                raise Diverged()
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

    def _close_hook(self, op: Op) -> None:
        """No more payloads: fail whoever still waits, and stop counting the hook as pending."""
        assert op.hook is not None
        self._ops.pop(op.correlation_id, None)
        self._finished_ops.add(op.correlation_id)
        while op.hook.waiters:
            waiter = op.hook.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(op.hook.error or HookDisposedError())


KIND_OF_CREATION: dict[EventType, OpKind] = {
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


def describe(kind: str, name: Any) -> str:
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


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A hook payload that could not be decoded; awaiting it raises the error."""

    error: SerializationError


def settle(future: asyncio.Future[Any], value: Any) -> None:
    if isinstance(value, Undecodable):
        future.set_exception(value.error)
    else:
        future.set_result(value)
