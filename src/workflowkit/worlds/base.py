"""The World: the contract every storage backend fulfils.

A World stores runs, steps, waits (timers), hooks and each run's append-only event log, and
schedules runs onto workers with leases. Appending events and updating the materialised
rows happen in one transaction. The records it hands out are in ``workflowkit.worlds.records``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from .records import (
    NO_OPTIONS,
    AppendAfter,
    AppendResult,
    ChunkWriter,
    CreatedRun,
    Divergence,
    Event,
    FiredTick,
    HookRecord,
    Lease,
    NewChunk,
    NewEvent,
    OpenWork,
    QueueInfo,
    QueueLimits,
    QueueUsage,
    RunChange,
    RunOptions,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    SchedulesDue,
    StepClaim,
    StepRecord,
    StreamChange,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerInfo,
    WorkerRecord,
)
from .schedule_rules import Decision, TickInput

T = TypeVar("T")
ChangeListener = Callable[[Sequence[RunChange]], None]
StreamListener = Callable[[Sequence[StreamChange]], None]


class EventLog(Protocol):
    """The append-only log of each run and the rows materialised from it.

    Appending events and updating the run, step, wait and hook rows they touch happen in
    one transaction, decided by the rules in ``worlds.apply``.
    """

    async def create_run(
        self,
        run_id: str,
        workflow_name: str,
        input: bytes,
        attrs: Mapping[str, Any],
        options: RunOptions = NO_OPTIONS,
        *,
        start_at: datetime | None = None,
        lease: Lease | None = None,
    ) -> CreatedRun:
        """Create a pending run with its ``run_created`` event, due at ``start_at`` (now if
        None). If a run with ``run_id`` exists, whatever its state, nothing is written and
        that run comes back with ``created`` False: starting is idempotent, also when many
        processes race to start one id. With a ``lease``, a new run is created claimed by
        ``lease.owner`` (as ``claim_runs`` would leave it), and that worker executes it."""
        ...

    async def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        after: AppendAfter | None = None,
    ) -> AppendResult:
        """Append events in order, each applied to its entity or rejected with a reason.

        With ``owner`` the batch is refused (``LeaseLostError``) unless that worker holds
        the run's lease. Delivery events appended without an owner make the run due. With
        ``after``, events past its facts are refused (``MOVED``) if the log has moved on.
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
        parent_run_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        id_prefix: str | None = None,
        queue: str | None = None,
        key: str | None = None,
        diverged: bool | None = None,
        forked_from: str | None = None,
    ) -> list[RunRecord]:
        """Runs newest first (by creation time, then run id) matching every filter given:
        their workflow, status, parent run, creation time in ``[since, until)``, id
        prefix, queue and queue key, whether parked (``diverged``), the run it was forked
        from; up to ``limit`` of them, after the run ``before`` (the last of the previous
        page)."""
        ...

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]: ...

    async def get_logs(self, run_ids: Sequence[str]) -> dict[str, list[Event]]:
        """The whole logs of these runs in one read (a worker reads the runs it has just
        claimed at once); a run that does not exist has none."""
        ...

    async def count_active_runs(self) -> dict[RunStatus, int]:
        """How many runs are pending and how many running (the ``workflowkit.runs``
        gauge of OpenTelemetry metrics); statuses with none may be left out."""
        ...

    async def list_steps(self, run_id: str) -> list[StepRecord]: ...

    async def list_waits(self, run_id: str) -> list[WaitRecord]: ...

    async def recent_workflows(self, runs: int) -> list[str]:
        """The names of the workflows of the ``runs`` newest runs, sorted (what a filter
        suggests), read without the runs' payloads."""
        ...

    async def open_work(self, run_ids: Sequence[str]) -> OpenWork:
        """What the runs wait on: their pending sleeps, active hooks and steps that have not
        ended (one query each, whatever the number of runs: for a page of a run list)."""
        ...

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        """The active hook holding ``token``; None once disposed or its run ended."""
        ...

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]: ...

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        """Store the response to a manual webhook request; False if one was stored already."""
        ...

    async def get_webhook_response(self, reply_to: str) -> bytes | None: ...


class Leases(Protocol):
    """Which worker executes which run: registration, claims under a lease, renewal,
    hand-back, and the clock all of it is measured on."""

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
        """Take up to ``limit`` runs whose lease is free or expired (a worker is never
        judged by a pid: it lives as long as its leases), and that are due and of the
        named workflows (those the worker can run), or past their deadline whatever their
        workflow (failing one needs no code of it). Runs in a registered queue are taken
        only as its limits allow (``worlds.limits``)."""
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

    async def list_workers(self) -> list[WorkerRecord]:
        """The registered workers, with what each can execute and its last heartbeat."""
        ...

    async def wake_run(self, run_id: str) -> bool:
        """Make a run that nobody holds and that waits for a time (its start time, or a
        sleep's end) due now; whether it was waiting."""
        ...

    async def park_run(self, run_id: str, owner: str, divergence: Divergence) -> bool:
        """Leave the run ``running`` but unheld and never due, marked ``diverged`` (its code
        no longer replays its log); whether ``owner`` held it. Claims skip it until
        ``resume_diverged`` is asked by a worker with other code."""
        ...

    async def resume_diverged(self, versions: Mapping[str, str]) -> list[str]:
        """Make due again the parked runs of the workflows in ``versions`` (name -> the
        asking worker's code version) that diverged under another version; their ids. One
        write for every workflow: a worker asks at each poll, for all it has."""
        ...

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        """When the earliest unowned run of the named workflows becomes due (or any unowned
        run reaches its deadline), for a worker deciding how long to idle."""
        ...

    def now(self) -> float:
        """The World's clock, in Unix seconds: what due times and leases are measured on.

        Workers stamp events and compute due times (sleeps, retry delays) with it rather
        than their local clock, so machines with skewed clocks agree with the store.
        """
        ...


class StepQueue(Protocol):
    """Steps a run's owner has no room for, offered to any worker that has the step's code."""

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
        ones whose claimer's lease expired or whose process died. Each gets its next
        ``step_started`` in the log and a lease held by ``worker``."""
        ...

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        """Record a claimed step's outcome (completed, failed, or retrying and queued again
        ``retry_after`` seconds from now) if ``claimer`` still holds its lease; False if it
        does not (the step was taken over, or its run ended) and nothing was written."""
        ...


class Streams(Protocol):
    """Output a run streams while it runs, in chunks, outside the event log."""

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


class Queues(Protocol):
    """Queue limits (``worlds.limits``): workers register them, claims enforce them."""

    async def register_queues(self, queues: Sequence[QueueLimits]) -> None:
        """Store each queue's limits (replacing what was stored under its name)."""
        ...

    async def list_queues(self) -> list[QueueInfo]:
        """Every registered queue with its usage, by name."""
        ...

    async def queue_usage(self, name: str) -> QueueUsage | None:
        """What holds places in the queue now; None if no worker registered it."""
        ...


class Retention(Protocol):
    """Forgetting runs that ended long ago (``workflowkit gc``), a bounded batch at a time."""

    async def expired_runs(
        self, ended_before: datetime, statuses: Sequence[RunStatus], limit: int
    ) -> list[str]:
        """Up to ``limit`` runs in ``statuses`` (ended ones) that ended before
        ``ended_before``, oldest first."""
        ...

    async def delete_runs(self, run_ids: Sequence[str]) -> list[str]:
        """Delete those of the runs that have ended, with everything recorded for them, in
        one transaction; the ids deleted (a run that has not ended is never touched)."""
        ...

    async def purge_webhook_responses(self, before: datetime) -> int:
        """Delete webhook responses stored before ``before``; how many."""
        ...


class Schedules(Protocol):
    """Cron schedules and firing their ticks. Every decision (what a tick starts, what an
    edit writes) is made by ``worlds.schedule_rules``; a World reads the row under a lock,
    asks, and writes the answer in the same transaction."""

    async def change_schedule(self, schedule_id: str, decide: Decision) -> ScheduleRecord | None:
        """Read the schedule under its lock (None if there is none), write what
        ``decide(record, now)`` returns (None: nothing; a change without a record: delete
        the row), and commit; the schedule as it is now (None: there is none). Errors
        ``decide`` raises propagate, and nothing is written."""
        ...

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None: ...

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        ...

    async def fire_schedules(
        self,
        workflow_names: Sequence[str],
        input_for: TickInput,
        *,
        now: float | None = None,
        limit: int = 32,
    ) -> list[FiredTick]:
        """Fire the due ticks of up to ``limit`` active schedules of the named workflows, in
        one transaction with the runs they start (``schedule_rules.plan_fire``; a run's input
        is ``input_for(schedule, tick)``); the ticks that started a run. Schedules another
        process is firing are skipped, not waited for. ``now``: the time ticks are due by
        (a test's virtual clock), by default the World's; runs are created on the World's
        clock either way."""
        ...

    async def schedules_due(self, workflow_names: Sequence[str]) -> SchedulesDue:
        """When the active schedules of the named workflows next need firing."""
        ...


class ChangeFeed(Protocol):
    """Who hears of changes: this process's every append and stream write, and of other
    processes' at least those that concern someone else than the run's owner (a new run, a
    payload, a wake-up, a cancellation, a run's end, steps offered to any worker, a stream
    write), soon after each commits. A worker's own progress through its run (its steps,
    its start) may stay unheard elsewhere. Listeners are called from a backend thread and
    must hand work over thread-safely."""

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]: ...

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]: ...


@runtime_checkable
class World(
    EventLog, Leases, StepQueue, Streams, Queues, Retention, Schedules, ChangeFeed, Protocol
):
    """Storage, scheduling and change notification for workflow runs: what a backend
    implements. Every method is a coroutine callable from any event loop, except ``now``
    and the ``subscribe`` pair. The conformance suite (``tests/worlds``) is the proof that a
    backend is right.
    """

    async def close(self) -> None: ...


def home_loop(world: World) -> asyncio.AbstractEventLoop | None:
    """The event loop ``world`` does its work on, if it has one (``home_loop``, beyond the
    contract): a worker run there calls it with no hand-off between threads. The PostgreSQL
    World has one; the SQLite World works on threads of its own and has none."""
    loop = getattr(world, "home_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


async def on_home_loop(world: World, coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``, a chain of calls to ``world``, on the World's own loop if it has one
    (in the caller's context): the chain then pays one hand-off between threads each way,
    not two per call. Here if it has none, or this is that loop."""
    loop = home_loop(world)
    if loop is None or loop is asyncio.get_running_loop():
        return await coro
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
