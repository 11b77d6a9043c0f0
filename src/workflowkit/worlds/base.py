"""The World: the storage contract every backend fulfils, and the records it hands out.

A World stores runs, steps, waits (timers), hooks and each run's append-only event log, and
schedules runs onto workers with leases. Appending events and updating the materialised
rows happen in one transaction; the transition rules below are shared by all backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_RUN


_TERMINAL_RUN = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class EventType(StrEnum):
    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    STEP_CREATED = "step_created"
    STEP_STARTED = "step_started"
    STEP_RETRYING = "step_retrying"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    HOOK_CREATED = "hook_created"
    HOOK_CONFLICT = "hook_conflict"
    HOOK_RECEIVED = "hook_received"
    HOOK_DISPOSED = "hook_disposed"
    WAIT_CREATED = "wait_created"
    WAIT_COMPLETED = "wait_completed"


# Events that hand a result to workflow code; replay delivers them in log order.
DELIVERY_EVENTS = frozenset(
    {
        EventType.STEP_COMPLETED,
        EventType.STEP_FAILED,
        EventType.WAIT_COMPLETED,
        EventType.HOOK_RECEIVED,
        EventType.HOOK_CONFLICT,
    }
)
# Events that record workflow code creating an operation; replay matches them in order.
CREATION_EVENTS = frozenset(
    {
        EventType.STEP_CREATED,
        EventType.WAIT_CREATED,
        EventType.HOOK_CREATED,
        EventType.HOOK_CONFLICT,
    }
)

# Which run states each run event may leave from; anything else is refused.
RUN_TRANSITIONS: Mapping[EventType, frozenset[RunStatus]] = {
    EventType.RUN_STARTED: frozenset({RunStatus.PENDING}),
    EventType.RUN_COMPLETED: frozenset({RunStatus.RUNNING}),
    EventType.RUN_FAILED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
    EventType.RUN_CANCELLED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
}
RUN_TARGET: Mapping[EventType, RunStatus] = {
    EventType.RUN_STARTED: RunStatus.RUNNING,
    EventType.RUN_COMPLETED: RunStatus.COMPLETED,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED,
}
# A step may be started again while running: a worker that died mid-step leaves it so.
STEP_TRANSITIONS: Mapping[EventType, frozenset[StepStatus]] = {
    EventType.STEP_STARTED: frozenset({StepStatus.PENDING, StepStatus.RUNNING}),
    EventType.STEP_RETRYING: frozenset({StepStatus.RUNNING}),
    EventType.STEP_COMPLETED: frozenset({StepStatus.RUNNING}),
    EventType.STEP_FAILED: frozenset({StepStatus.RUNNING}),
}
STEP_TARGET: Mapping[EventType, StepStatus] = {
    EventType.STEP_STARTED: StepStatus.RUNNING,
    EventType.STEP_RETRYING: StepStatus.PENDING,
    EventType.STEP_COMPLETED: StepStatus.COMPLETED,
    EventType.STEP_FAILED: StepStatus.FAILED,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def from_timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``payload`` is codec-encoded; ``attrs`` holds small JSON fields."""

    type: EventType
    correlation_id: str | None = None
    payload: bytes | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    seq: int
    event_id: str
    type: EventType
    correlation_id: str | None
    payload: bytes | None
    attrs: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Rejected:
    event: NewEvent
    reason: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    events: Sequence[Event]
    rejected: Sequence[Rejected]
    run_status: RunStatus


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    workflow_name: str
    status: RunStatus
    input: bytes
    output: bytes | None
    error: bytes | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime
    last_seq: int
    owner: str | None = None
    wake_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StepRecord:
    step_id: str
    run_id: str
    step_name: str
    status: StepStatus
    attempt: int
    input: bytes | None
    output: bytes | None
    error: bytes | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    retry_at: datetime | None
    executor: str | None = None  # the worker running it for another worker's run, if any
    queued_at: datetime | None = None  # offered to any worker from then on, if it is

    @property
    def elsewhere(self) -> bool:
        """Queued for, or running on, a worker other than its run's owner."""
        return self.queued_at is not None or self.executor is not None


@dataclass(frozen=True, slots=True)
class StepClaim:
    """A step attempt a worker took from the step queue, with what it needs to run it."""

    run_id: str
    step_id: str
    step_name: str
    attempt: int
    input: bytes
    workflow_name: str
    run_started_at: datetime


@dataclass(frozen=True, slots=True)
class WaitRecord:
    wait_id: str
    run_id: str
    resume_at: datetime
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class HookRecord:
    """An active hook. ``metadata`` is the codec-encoded value given at creation, if any."""

    hook_id: str
    run_id: str
    token: str
    metadata: bytes | None
    created_at: datetime
    is_webhook: bool = False


@dataclass(frozen=True, slots=True)
class RunChange:
    """Tells listeners that a run's log grew; ``last_seq`` lets them skip what they know."""

    run_id: str
    last_seq: int
    status: RunStatus
    writer: str | None = None  # the worker whose append this was, if any
    steps_queued: bool = False  # steps were offered to any worker (claim_steps has work)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    worker_id: str
    hostname: str
    pid: int


ChangeListener = Callable[[Sequence[RunChange]], None]


class ChunkKind(StrEnum):
    """How a stream chunk's bytes are stored: raw bytes, UTF-8 text, or a codec payload."""

    BYTES = "b"
    TEXT = "s"
    VALUE = "v"


@dataclass(frozen=True, slots=True)
class NewChunk:
    kind: ChunkKind
    data: bytes


@dataclass(frozen=True, slots=True)
class ChunkWriter:
    """The step attempt writing chunks; they stay visible only while that attempt is the
    step's current one and has not failed."""

    step_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class StreamChunk:
    index: int
    kind: ChunkKind
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamPage:
    """Visible chunks from a range of a stream. Read on from ``next_index``; ``done`` means
    the stream is closed (or its run ended) and nothing follows."""

    chunks: Sequence[StreamChunk]
    next_index: int
    done: bool


@dataclass(frozen=True, slots=True)
class StreamInfo:
    run_id: str
    name: str
    length: int  # chunks written, including those of failed attempts
    closed: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StreamChange:
    """Tells readers a stream grew or closed."""

    run_id: str
    name: str
    length: int
    closed: bool


StreamListener = Callable[[Sequence[StreamChange]], None]


@runtime_checkable
class World(Protocol):
    """Storage, scheduling and change notification for workflow runs.

    All methods are coroutines callable from any event loop; listeners are called from a
    backend thread and must hand work over thread-safely.
    """

    async def create_run(
        self, run_id: str, workflow_name: str, input: bytes, attrs: Mapping[str, Any]
    ) -> RunRecord: ...

    async def append(
        self, run_id: str, events: Sequence[NewEvent], *, owner: str | None = None
    ) -> AppendResult:
        """Append events in order, each applied to its entity or rejected with a reason.

        With ``owner`` the batch is refused (``LeaseLostError``) unless that worker holds
        the run's lease. Delivery events appended without an owner make the run due.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def list_runs(
        self,
        *,
        workflow_name: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[RunRecord]: ...

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]: ...

    async def list_steps(self, run_id: str) -> list[StepRecord]: ...

    async def list_waits(self, run_id: str) -> list[WaitRecord]: ...

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        """The active hook holding ``token``; None once disposed or its run ended."""
        ...

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]: ...

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        """Store the response to a manual webhook request; False if one was stored already."""
        ...

    async def get_webhook_response(self, reply_to: str) -> bytes | None: ...

    async def register_worker(self, info: WorkerInfo) -> None: ...

    async def unregister_worker(self, worker_id: str) -> None:
        """Forget the worker; steps it claimed and did not finish are queued again at once."""
        ...

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        """Take up to ``limit`` due runs of the named workflows (those the worker can run)
        whose lease is free, expired, or held by a dead process."""
        ...

    async def renew_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        step_ids: Sequence[str],
        lease_seconds: float,
    ) -> None:
        """Extend ``worker_id``'s leases of these runs and claimed steps (those it is working
        on), and note that it is alive.

        Only what the worker names: anything else it still holds in the store (a run whose
        driver failed while the store was away) keeps its old lease, which runs out, so
        the run is taken over rather than held forever by a worker that forgot it.
        """
        ...

    async def release_run(
        self, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None = None
    ) -> None:
        """Hand a run back: nobody holds it and it becomes due at ``wake_at`` (never if None).

        If the log grew past ``known_seq`` meanwhile, the run is due at once instead, so a
        payload that arrived while the worker was letting go is not left unnoticed.
        """
        ...

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        """When the earliest unowned run of the named workflows becomes due, for a worker
        deciding how long to idle."""
        ...

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        """Offer created, not yet started steps to any worker, ``delay`` seconds from now.

        For a run owner with no room to run them itself; refused (``LeaseLostError``) unless
        ``owner`` holds the run.
        """
        ...

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        """Take up to ``limit`` steps this worker can run: queued ones that are due, and
        ones whose executor's lease expired or whose process died. Each gets its next
        ``step_started`` in the log and a lease held by ``worker``."""
        ...

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, executor: str, retry_after: float | None = None
    ) -> bool:
        """Record a claimed step's outcome (completed, failed, or retrying and queued again
        ``retry_after`` seconds from now) if ``executor`` still holds its lease; False if it
        does not (the step was taken over, or its run ended) and nothing was written."""
        ...

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]: ...

    def now(self) -> float:
        """The World's clock, in Unix seconds: what due times and leases are measured on.

        Workers stamp events and compute due times (sleeps, retry delays) with it rather
        than their local clock, so machines with skewed clocks agree with the store.
        """
        ...

    async def write_stream(
        self,
        run_id: str,
        name: str,
        chunks: Sequence[NewChunk],
        *,
        writer: ChunkWriter | None = None,
        close: bool = False,
    ) -> int:
        """Append chunks in order (then close the stream if asked); the stream's new length.

        Raises ``StreamClosedError`` if the stream is closed or its run has ended, and
        ``WorkflowRunNotFoundError`` for an unknown run.
        """
        ...

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        """Visible chunks with index in ``[start, start + limit)``.

        A negative ``start_index`` -n starts at the n-th visible chunk from the end. A chunk
        written by a step attempt is visible while that attempt runs and after it completes,
        never once it failed, or after a later attempt started.
        """
        ...

    async def list_streams(self, run_id: str) -> list[StreamInfo]: ...

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]: ...

    def attach_worker_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The loop a worker runs on; a backend may serve calls from it inline, without a
        thread hop (a hint: doing nothing is correct)."""
        ...

    async def close(self) -> None: ...
