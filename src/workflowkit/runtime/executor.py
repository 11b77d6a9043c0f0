"""One run's workflow code, its operations, and replay against the event log.

The executor is a pure state machine: it never touches storage. The worker hands it the
log (cold resume) or one event at a time (live), and takes from it the events to append,
the steps to start and the timers to arm.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .. import serde
from ..context import WorkflowMetadata, set_executor
from ..errors import (
    HookConflictError,
    HookDisposedError,
    ReplayDivergenceError,
    SerializationError,
    StepExitError,
)
from ..ids import new_id
from ..registry import Step, Workflow
from ..urls import base_url
from ..worlds.records import CREATION_EVENTS, DELIVERY_EVENTS, Event, EventType, NewEvent
from .loop import WorkflowLoop


class _Discarded(BaseException):
    """Unwinds workflow code of a run being dropped from memory; never reaches users."""


class _Diverged(BaseException):
    """Unwinds workflow code after replay stopped matching the log."""


OpKind = Literal["step", "wait", "hook"]


@dataclass(slots=True, eq=False)
class Op:
    kind: OpKind
    correlation_id: str
    name: str
    digest: str
    future: asyncio.Future[Any] | None = None
    timer: asyncio.TimerHandle | None = None
    step: Step[Any, Any] | None = None
    input: bytes | None = None
    resume_at: float = 0.0
    done: bool = False
    cancelled: bool = False
    logged: Event | None = None  # its creation event, when replay matched one
    hook: HookState | None = None


@dataclass(slots=True, eq=False)
class HookState:
    """Payloads received by a hook and the workflow code waiting for them."""

    token: str
    buffer: deque[Any] = field(default_factory=deque)
    waiters: deque[asyncio.Future[Any]] = field(default_factory=deque)
    error: BaseException | None = None
    disposed: bool = False


@dataclass(slots=True)
class Effects:
    events: list[NewEvent] = field(default_factory=list)
    steps: list[Op] = field(default_factory=list)
    waits: list[Op] = field(default_factory=list)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class RunExecutor:
    def __init__(self, run_id: str, workflow: Workflow[Any, Any], input: bytes) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self._input = input
        self.random = random.Random(run_id)
        self.loop: WorkflowLoop | None = None
        self.metadata = WorkflowMetadata(
            workflow_run_id=run_id,
            workflow_name=workflow.name,
            workflow_started_at=_utc(0),
            url=base_url(),
        )
        self.ops: dict[str, Op] = {}  # pending operations only; finished ones leave
        self._finished_ops: set[str] = set()
        self._timers: dict[int, Op] = {}
        self._logged: list[Event] = []
        self._cursor = 0
        self._effects = Effects()
        self._task: asyncio.Task[Any] | None = None
        self.finished = False
        self.divergence: ReplayDivergenceError | None = None
        self.step_attempts: dict[str, int] = {}
        self._disposed_in_log: set[str] = set()
        self._conflict_holder: dict[str, str | None] = {}
        self.step_retry_at: dict[str, float] = {}

    # -- starting and replaying ------------------------------------------------------------

    def replay(self, log: Sequence[Event], now: float) -> None:
        """Rebuild the run from its log; afterwards ``take_effects`` holds what comes next."""
        self._logged = [e for e in log if e.type in CREATION_EVENTS]
        # Known before the code runs: replayed code disposes a hook before the loop below
        # reaches the hook_disposed that recorded it.
        self._disposed_in_log = {
            e.correlation_id for e in log if e.type is EventType.HOOK_DISPOSED and e.correlation_id
        }
        started = next((e for e in log if e.type is EventType.RUN_STARTED), None)
        # Through datetime even when new, so live and replayed runs see the same microseconds.
        start_ts = (started.created_at if started else _utc(now)).timestamp()
        if started is None:
            self._effects.events.append(NewEvent(EventType.RUN_STARTED, created_at=_utc(start_ts)))
        self._start(start_ts)
        for event in log:
            if self.finished:
                break
            if event.type in DELIVERY_EVENTS:
                self.deliver(event.type, event.correlation_id, event.payload, event.created_at)
            elif event.type is EventType.STEP_STARTED and event.correlation_id:
                attempt = int(event.attrs.get("attempt", 1))
                self.step_attempts[event.correlation_id] = attempt
                self.step_retry_at.pop(event.correlation_id, None)
            elif event.type is EventType.STEP_RETRYING and event.correlation_id:
                retry_at = event.attrs.get("retry_at")
                if retry_at is not None:
                    self.step_retry_at[event.correlation_id] = float(retry_at)
        if not self.finished and self._cursor < len(self._logged):
            missing = self._logged[self._cursor]
            self._diverge(
                f"the event log has {missing.type} {missing.attrs.get('name', '')!r} at "
                f"operation #{self._cursor + 1}, but the workflow code no longer reaches it"
            )
        self._logged = []

    def _start(self, start_ts: float) -> None:
        self.loop = WorkflowLoop(self, start_ts)  # type: ignore[abstract]
        self.metadata = WorkflowMetadata(
            self.run_id, self.workflow.name, _utc(start_ts), self.metadata.url
        )
        try:
            args, kwargs = serde.decode(self._input)
        except SerializationError as exc:
            self._finish_failed(exc)
            return
        self._task = self.loop.create_task(self._main(tuple(args), dict(kwargs)))
        self._run()

    async def _main(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await self.workflow.fn(*args, **kwargs)

    # -- delivering events -----------------------------------------------------------------

    def deliver(
        self,
        kind: EventType,
        correlation_id: str | None,
        payload: bytes | None,
        created_at: datetime | None,
    ) -> None:
        """Hand one delivery event to the workflow code and run it until it waits again."""
        if self.finished or self.loop is None:
            return
        if created_at is not None:
            self.loop.set_time(created_at.timestamp())
        if kind is EventType.HOOK_RECEIVED or kind is EventType.HOOK_CONFLICT:
            self._deliver_to_hook(kind, correlation_id, payload)
            return
        op = self.ops.pop(correlation_id or "", None)
        if op is None and correlation_id in self._finished_ops:
            return
        if op is None:
            self._diverge(
                f"the event log delivers {kind} for {correlation_id}, an operation the "
                "workflow code did not create"
            )
            return
        op.done = True
        self._finished_ops.add(op.correlation_id)
        if kind is EventType.WAIT_COMPLETED:
            if op.timer is not None:
                self._timers.pop(id(op.timer), None)
                self.loop.fire(op.timer)
        elif op.future is not None and not op.future.done():
            try:
                value = serde.decode(payload) if payload is not None else None
            except SerializationError as exc:
                op.future.set_exception(exc)
            else:
                if kind is EventType.STEP_FAILED:
                    op.future.set_exception(_as_exception(value))
                else:
                    op.future.set_result(value)
        self._run()

    def _deliver_to_hook(
        self, kind: EventType, correlation_id: str | None, payload: bytes | None
    ) -> None:
        op = self.ops.get(correlation_id or "")
        if op is None or op.hook is None:
            if correlation_id not in self._finished_ops:
                self._diverge(
                    f"the event log delivers {kind} to {correlation_id}, a hook the "
                    "workflow code did not create"
                )
            return
        state = op.hook
        if kind is EventType.HOOK_CONFLICT:
            state.error = HookConflictError(
                state.token, self._conflict_holder.get(op.correlation_id)
            )
            self._close_hook(op)
        else:
            try:
                value: Any = serde.decode(payload) if payload is not None else None
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
        self.ops.pop(op.correlation_id, None)
        self._finished_ops.add(op.correlation_id)
        while op.hook.waiters:
            waiter = op.hook.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(op.hook.error or HookDisposedError())

    def _run(self) -> None:
        assert self.loop is not None
        previous = set_executor(self)
        try:
            self.loop.run_ready()
        finally:
            set_executor(previous)
        if self.divergence is not None and not self.finished:
            self._finish_failed(self.divergence)
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
        self._effects.events.append(NewEvent(EventType.RUN_COMPLETED, payload=output))

    def _finish_failed(self, error: BaseException) -> None:
        self.finished = True
        self._effects.events.append(NewEvent(EventType.RUN_FAILED, payload=encode_error(error)))

    # -- operations created by workflow code -------------------------------------------------

    def call_step(
        self, st: Step[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> asyncio.Future[Any]:
        if self.loop is None or self.loop.discarding:
            raise _Discarded()
        payload = encode_input(args, kwargs, what=f"step {st.name}")
        op = self._create("step", st.name, serde.digest(payload))
        op.step, op.input = st, payload
        op.future = self.loop.create_future()
        if op.logged is None:
            self._effects.events.append(
                NewEvent(
                    EventType.STEP_CREATED,
                    op.correlation_id,
                    payload,
                    {"name": st.name, "digest": op.digest},
                )
            )
        self._effects.steps.append(op)
        return op.future

    def create_hook(self, token: str | None, metadata: Any, *, webhook: bool = False) -> Op:
        if self.loop is None or self.loop.discarding:
            raise _Discarded()
        payload = None if metadata is None else serde.encode(metadata, path="metadata")
        op = self._create("hook", "hook", token or "")
        if op.logged is not None:
            token = str(op.logged.attrs.get("token", token))
            if op.logged.type is EventType.HOOK_CONFLICT:
                holder = op.logged.attrs.get("holder_run_id")
                self._conflict_holder[op.correlation_id] = str(holder) if holder else None
        else:
            # Unguessable by default, and recorded, so a replay sees the same token.
            token = token or secrets.token_urlsafe(24)
            attrs: dict[str, Any] = {"name": "hook", "digest": op.digest, "token": token}
            if webhook:
                attrs["webhook"] = True
            self._effects.events.append(
                NewEvent(EventType.HOOK_CREATED, op.correlation_id, payload, attrs)
            )
        assert token is not None
        op.hook = HookState(token)
        return op

    def next_payload(self, op: Op) -> asyncio.Future[Any]:
        """A future for the hook's next payload (already resolved if one is buffered)."""
        assert self.loop is not None and op.hook is not None
        future = self.loop.create_future()
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
            self._effects.events.append(NewEvent(EventType.HOOK_DISPOSED, op.correlation_id))
        self._close_hook(op)

    def record_conflict(self, correlation_id: str, holder_run_id: str | None) -> None:
        """The store turned this run's new hook into a conflict; tell the waiting code."""
        self._conflict_holder[correlation_id] = holder_run_id
        self.deliver(EventType.HOOK_CONFLICT, correlation_id, None, None)

    def schedule_timer(self, handle: asyncio.TimerHandle) -> None:
        if self.loop is None or self.loop.discarding:
            raise _Discarded()
        op = self._create("wait", "sleep", "")
        op.timer = handle
        self._timers[id(handle)] = op
        if op.logged is not None:
            op.resume_at = float(op.logged.attrs.get("resume_at", handle.when()))
        else:
            op.resume_at = handle.when()
            self._effects.events.append(
                NewEvent(
                    EventType.WAIT_CREATED,
                    op.correlation_id,
                    None,
                    {"resume_at": op.resume_at, "name": "sleep"},
                )
            )
        self._effects.waits.append(op)

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        op = self._timers.get(id(handle))
        if op is not None:
            op.cancelled = True

    def _create(self, kind: OpKind, name: str, digest: str) -> Op:
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
                    f"({what}); did the code change under a running workflow?"
                )
                raise _Diverged()
            op = Op(kind, str(logged.correlation_id), name, digest, logged=logged)
        else:
            op = Op(kind, new_id(kind), name, digest)
        self.ops[op.correlation_id] = op
        return op

    def _diverge(self, message: str) -> None:
        if self.divergence is None:
            self.divergence = ReplayDivergenceError(f"run {self.run_id}: {message}")
            if self.loop is not None and not self.loop.is_running():
                self._finish_failed(self.divergence)

    # -- what the worker asks ----------------------------------------------------------------

    def has_effects(self) -> bool:
        effects = self._effects
        return bool(effects.events or effects.steps or effects.waits)

    def take_effects(self) -> Effects:
        effects, self._effects = self._effects, Effects()
        return effects

    def pending(self) -> Iterable[Op]:
        return self.ops.values()

    def now(self) -> float:
        return self.loop.time() if self.loop is not None else 0.0

    def discard(self) -> None:
        """Drop the run's coroutines without letting their cleanup code create operations."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        loop.discarding = True
        previous = set_executor(self)
        try:
            for task in list(loop.tasks):
                coro = task.get_coro()
                with contextlib.suppress(Exception, _Discarded):
                    coro.close()
        finally:
            set_executor(previous)
            loop.close()


_KIND_OF_CREATION: dict[EventType, OpKind] = {
    EventType.STEP_CREATED: "step",
    EventType.WAIT_CREATED: "wait",
    EventType.HOOK_CREATED: "hook",
    EventType.HOOK_CONFLICT: "hook",
}


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
