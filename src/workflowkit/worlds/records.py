"""The World's records: run, step, wait and hook states, events, and what the World hands out.

Plain frozen dataclasses and enums, shared by every backend and by the runtime; the contract
the backends fulfil is in ``workflowkit.worlds.base``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


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
    # Ended with its run, before it finished: its run was cancelled, or ended (completed,
    # failed) without waiting for it. A late result of such a step is ignored.
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"

    @property
    def ended_with_run(self) -> bool:
        return self is StepStatus.CANCELLED or self is StepStatus.ABANDONED


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
    CHILD_CREATED = "child_created"
    CHILD_COMPLETED = "child_completed"
    PATCH_MARKED = "patch_marked"


# Events that hand a result to workflow code; replay delivers them in log order.
DELIVERY_EVENTS = frozenset(
    {
        EventType.STEP_COMPLETED,
        EventType.STEP_FAILED,
        EventType.WAIT_COMPLETED,
        EventType.HOOK_RECEIVED,
        EventType.HOOK_CONFLICT,
        EventType.CHILD_COMPLETED,
    }
)
# Events that record workflow code creating an operation; replay matches them in order.
CREATION_EVENTS = frozenset(
    {
        EventType.STEP_CREATED,
        EventType.WAIT_CREATED,
        EventType.HOOK_CREATED,
        EventType.HOOK_CONFLICT,
        EventType.CHILD_CREATED,
    }
)


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
class AppendAfter:
    """An append's precondition: the log ends at ``seq``. If it has moved on, only the first
    ``facts`` events are applied (what happened: a step's outcome, a timer that fired) and
    the rest, decided by code that had not seen the newer events, are refused, for the
    writer to decide again from the log as it is."""

    seq: int
    facts: int


MOVED = "the log moved on: decided before events since appended"


@dataclass(frozen=True, slots=True)
class AppendResult:
    events: Sequence[Event]
    rejected: Sequence[Rejected]
    run_status: RunStatus
    # Runs this append cancelled because the run ended: its children that were not
    # detached, and theirs in turn (the process that ended it logs and counts them).
    cancelled_children: Sequence[str] = ()


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
    options: RunOptions = field(default_factory=lambda: RunOptions())
    code_version: str | None = None  # of the worker that started it
    diverged: Divergence | None = None  # its code no longer replayed its log

    @property
    def parked(self) -> bool:
        """Waiting for other code to replay it: diverged and not ended. An ended run (one
        cancelled while parked) keeps its mark as history but is parked no more."""
        return self.diverged is not None and not self.status.terminal


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where a run's code stopped matching its log: the operation's number (from 1), what
    the log holds there and what the code did (empty: nothing), in words; the code version
    that found it, and when."""

    position: int
    expected: str
    actual: str
    message: str
    version: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run was started, besides its workflow and input (and its start time, which
    its ``wake_at`` holds until it starts).

    ``deadline``: the run fails with ``WorkflowTimeoutError`` once it passes. ``queue``,
    ``key`` and ``priority`` place it for flow control. A child run names its
    ``parent_run_id``; a ``detached`` one is not cancelled with its parent. A fork names the
    run it was ``forked_from``.
    """

    deadline: datetime | None = None
    queue: str | None = None
    key: str | None = None
    priority: int = 0
    parent_run_id: str | None = None
    detached: bool = False
    forked_from: str | None = None  # a fork: the run whose log it began with


NO_OPTIONS = RunOptions()  # a run started with none


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's limits, as its workers register them (None: no such limit). The rate
    limit is ``rate_count`` starts per ``rate_period`` seconds (a sliding window)."""

    name: str
    concurrency: int | None = None
    per_key: int | None = None
    per_worker: int | None = None
    rate_count: int | None = None
    rate_period: float | None = None
    hold_while_waiting: bool = False


@dataclass(frozen=True, slots=True)
class QueueUsage:
    """What holds places in a queue now: runs ``running`` in it (those holding a place), by
    key (``by_key``: every key, or the one asked for), ``mine`` (held by the claiming
    worker), and the first starts within its rate window (World clock, oldest first)."""

    limits: QueueLimits
    running: int = 0
    by_key: Mapping[str | None, int] = field(default_factory=dict)
    mine: int = 0
    recent_starts: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """A queue as ``list_queues`` sees it: its limits, the runs holding a place in it
    (``running``), the runs due and waiting for one (``waiting``, the oldest due since
    ``oldest_waiting``), and the starts in its rate window."""

    limits: QueueLimits
    running: int
    waiting: int
    oldest_waiting: datetime | None
    recent_starts: int


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs ``list_runs`` returns: newest first (by creation time, then run id), those
    matching every filter given, up to ``limit``, after the run ``before`` (a cursor: the
    last run of the previous page)."""

    workflow_name: str | None = None
    status: RunStatus | None = None
    parent_run_id: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    id_prefix: str | None = None  # run ids that start with it
    before: str | None = None
    limit: int = 100
    queue: str | None = None
    key: str | None = None  # the queue key
    diverged: bool | None = None  # True: only parked runs
    forked_from: str | None = None


@dataclass(frozen=True, slots=True)
class CreatedRun:
    """What ``create_run`` returns: the run, and whether this call created it (False: a run
    with that id existed already, and nothing was written)."""

    record: RunRecord
    created: bool
    event: Event | None = None  # the ``run_created`` event written, if created


@dataclass(frozen=True, slots=True)
class Lease:
    """A run created already claimed: held by worker ``owner`` for ``seconds`` (a process
    that starts a run its own worker can execute hands it over without a claim)."""

    owner: str
    seconds: float


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
    claimed_by: str | None = None  # the worker that claimed it from the step queue, if any
    queued_at: datetime | None = None  # offered to any worker from then on, if it is

    @property
    def in_step_queue(self) -> bool:
        """Waiting in the step queue, or claimed from it by a worker (maybe another one)."""
        return self.queued_at is not None or self.claimed_by is not None


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
class OpenStep:
    """A step that has not ended (read without its payloads): what a run may wait on."""

    run_id: str
    step_id: str
    step_name: str
    status: StepStatus  # pending (to start, or to retry at ``retry_at``) or running
    attempt: int
    started_at: datetime | None
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenWork:
    """What some runs wait on: their pending sleeps, active hooks and steps not ended."""

    waits: tuple[WaitRecord, ...] = ()
    hooks: tuple[HookRecord, ...] = ()
    steps: tuple[OpenStep, ...] = ()

    def of(self, run_id: str) -> OpenWork:
        """Only what ``run_id`` waits on."""
        return OpenWork(
            tuple(w for w in self.waits if w.run_id == run_id),
            tuple(h for h in self.hooks if h.run_id == run_id),
            tuple(s for s in self.steps if s.run_id == run_id),
        )


@dataclass(frozen=True, slots=True)
class RunChange:
    """Tells listeners that a run's log grew; ``last_seq`` lets them skip what they know."""

    run_id: str
    last_seq: int
    status: RunStatus
    writer: str | None = None  # the worker whose append this was, if any
    steps_queued: bool = False  # steps were offered to any worker (claim_steps has work)
    # The events this change appended, when its teller passed them on (another writer's
    # append: a hook payload, a wake-up): the log from ``last_seq - len(events) + 1`` to
    # ``last_seq``, as stored. A worker holding the run where they begin delivers them
    # without reading its log again. Not part of what the change is (equality, repr).
    events: tuple[Event, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process, as it registers: ``workflows`` are the workflows it can execute,
    ``lease_seconds`` how long its leases last (it counts as live while its heartbeat is
    younger than that)."""

    worker_id: str
    hostname: str
    pid: int
    workflows: tuple[str, ...] = ()
    lease_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A registered worker and when it last showed it was alive."""

    info: WorkerInfo
    started_at: datetime
    heartbeat_at: datetime

    def live(self, now: datetime) -> bool:
        return (now - self.heartbeat_at).total_seconds() < self.info.lease_seconds


class ChunkKind(StrEnum):
    """How a stream chunk's bytes are stored: raw bytes, UTF-8 text, a codec payload, or
    (``ENCRYPTED``, encryption at rest) a sealed payload holding the chunk's kind and bytes."""

    BYTES = "b"
    TEXT = "s"
    VALUE = "v"
    ENCRYPTED = "x"


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


class CatchUp(StrEnum):
    """What a schedule does with ticks no worker fired in time (see docs/schedules.md)."""

    NONE = "none"  # skip them
    LATEST = "latest"  # one run, for the most recent of them
    ALL = "all"  # a run for each, up to a bound


class Overlap(StrEnum):
    """What a tick does while the schedule's previous run is still active."""

    ALLOW = "allow"  # start anyway
    SKIP = "skip"  # start nothing
    BUFFER_ONE = "buffer_one"  # start it when the active run ends (one at most waits)


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as the World stores it.

    ``input`` is the codec-encoded ``[args, kwargs]`` each run gets after the tick's time.
    ``static``: declared in code (``@workflow(schedule=...)``); workers write it from the
    code when they start. ``next_tick`` is the first tick not handled yet (None: the
    schedule has ended). ``buffered_tick``: a tick held back by ``overlap="buffer_one"``.
    ``last_run_id``: the run of the latest tick that started one.
    """

    schedule_id: str
    workflow_name: str
    cron: str
    timezone: str
    input: bytes
    catch_up: CatchUp
    overlap: Overlap
    start_at: datetime | None
    end_at: datetime | None
    paused: bool
    static: bool
    next_tick: datetime | None
    last_tick: datetime | None
    last_run_id: str | None
    buffered_tick: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleChange:
    """What a decision about a schedule writes: its new row, or (``record`` None) its
    deletion."""

    record: ScheduleRecord | None


@dataclass(frozen=True, slots=True)
class FiredTick:
    """A tick a worker fired: the run it started (``created`` False: that run existed
    already, so another process had started it)."""

    schedule_id: str
    tick: datetime
    run_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class SchedulesDue:
    """When a worker should next fire schedules: the earliest next tick of the active
    schedules it asked about, and whether any holds a buffered tick (which starts once the
    schedule's active run ends)."""

    next_tick: datetime | None
    buffered: bool


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What defines a schedule, checked (``workflowkit._schedule_spec`` makes them); its
    state (the next tick, the last run) is the World's.

    ``cron`` is the expression as written, checked in ``timezone`` (an IANA name).
    ``input``: the codec-encoded ``[args, kwargs]`` each run gets after the tick's time.
    """

    schedule_id: str
    workflow_name: str
    cron: str
    timezone: str
    catch_up: CatchUp
    overlap: Overlap
    input: bytes
    start_at: datetime | None = None
    end_at: datetime | None = None
    static: bool = False


@dataclass(frozen=True, slots=True)
class StoredPayload:
    """A payload as a World stores it, for ``workflowkit reencrypt``: the table holding it,
    its row's key, its bytes and (a stream chunk) its kind."""

    place: str
    key: tuple[Any, ...]
    data: bytes
    kind: str | None = None
