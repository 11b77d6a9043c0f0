"""The scale-out World: PostgreSQL shared by many worker processes on many machines.

Selected by ``WORKFLOWKIT_WORLD=postgresql://user@host/db?schema=name`` (``postgres://``
works too; the schema defaults to ``workflowkit``). Needs the ``postgres`` extra.

The World is a few collaborators: its own event loop on a thread (``WorldLoop``: the pool
belongs to it and every call is bridged there), transactions with their retry and
lost-commit rules (``Database``), the change feed (``Feed``: NOTIFY, LISTEN, the fallback
poll, the database clock), group commit for appends (``AppendQueue``), and the statements
(``_jobs``, ``_streams``). Times for leases and due runs come from the database clock, so
workers on machines with skewed clocks agree.

Its methods come in groups: the reads (``WorldReads``, in ``_reads``), upkeep (retention and
re-encryption: ``WorldUpkeep``, in ``_upkeep``), and here the writes and the World's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from .. import _sql
from .._listeners import Listeners
from .._rows import divergence_json
from ..apply import AppendPlan, lookups
from ..base import ChangeListener, StreamListener
from ..records import (
    NO_OPTIONS,
    AppendAfter,
    AppendResult,
    ChunkWriter,
    CreatedRun,
    Divergence,
    Event,
    FiredTick,
    Lease,
    NewChunk,
    NewEvent,
    QueueLimits,
    RunChange,
    RunOptions,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    StepClaim,
    WorkerInfo,
)
from ..schedule_rules import Decision, TickInput
from . import _creates, _jobs, _queues, _schedules, _streams
from . import _scheduling as sched
from ._batch import AppendQueue, alone, together
from ._batch import Outcome as BatchOutcome
from ._creates import CreateJob
from ._dialect import DIALECT
from ._feed import Clock, Feed
from ._jobs import AppendJob
from ._loop import WorldLoop
from ._reads import WorldReads
from ._schema import MIGRATIONS, connect_kwargs, migrate, open_pool, parse_url
from ._transactions import Conn, Database, Outcome, PresumptionMissed
from ._upkeep import WorldUpkeep

T = TypeVar("T")
log = logging.getLogger("workflowkit.postgres")
_RESUME_DIVERGED = DIALECT.sql(
    _sql.resume_diverged("clock_timestamp()", "unnest(?::text[], ?::text[]) AS v(name, version)")
)


class PostgresWorld(WorldReads, WorldUpkeep):
    """The World on PostgreSQL (``WORKFLOWKIT_WORLD=postgresql://...``)."""

    schema_version = MIGRATIONS[-1].version  # what a database is brought to on opening

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        retry_for: float = 30.0,
        listen_heartbeat: float = 1.0,
        idle_in_transaction_timeout: float = 30.0,
    ) -> None:
        self.conninfo, self.schema = parse_url(url, schema)
        self.retry_for = retry_for
        kwargs = connect_kwargs(self.schema, idle_in_transaction_timeout)
        self._listeners = Listeners()
        self._clock = Clock()
        channel = f"workflowkit_{self.schema}"
        self._feed = Feed(
            self.conninfo, kwargs, channel, self._listeners, self._clock, listen_heartbeat
        )
        self._appends: AppendQueue[AppendJob, AppendResult] = AppendQueue(
            self._append_alone, self._append_together, deferrable=_jobs.ends_its_run
        )
        self._creates: AppendQueue[CreateJob, CreatedRun] = AppendQueue(
            self._create_alone, self._create_together
        )
        self._loop = WorldLoop()
        try:
            pool = self._loop.run_sync(
                open_pool(self.conninfo, kwargs, self.schema, (min_size, max_size), retry_for)
            )
        except BaseException:
            self._loop.stop()
            raise
        self._db = Database(pool, self._listeners, retry_for)
        try:
            self._loop.run_sync(self._write("migrate", lambda c: migrate(c, self.schema, channel)))
            self._loop.run_sync(self._db.read(self._clock.read, "read the database clock"))
        except BaseException:
            self._loop.run_sync(pool.close())
            self._loop.stop()
            raise

    def __repr__(self) -> str:
        return f"PostgresWorld(schema={self.schema!r})"

    @property
    def home_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this World works on, in a thread of its own: code running there
        (a worker) calls it with no hand-off between threads."""
        return self._loop.loop

    # -- change notification -----------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        self._loop.call_soon(self._feed.start)
        return self._listeners.subscribe(listener)

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]:
        self._loop.call_soon(self._feed.start)
        return self._listeners.subscribe_streams(listener)

    # -- runs and events ---------------------------------------------------------------------

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
        start = None if start_at is None else start_at.timestamp()
        job = CreateJob(run_id, workflow_name, input, attrs, options, start, lease)
        return await self._call(self._creates.submit(job))

    async def _create_alone(self, job: CreateJob) -> CreatedRun:
        return await alone(self._create_all, job)

    async def _create_together(self, jobs: list[CreateJob]) -> Sequence[CreatedRun | BaseException]:
        return await together(self._create_all, jobs, "create_run calls")

    async def _create_all(self, jobs: list[CreateJob]) -> list[CreatedRun | BaseException]:
        async def body(conn: Conn, retry: bool) -> Outcome:
            plans = await _creates.decide(conn, jobs, self.channel)
            changes = [plan.change for plan in plans if plan.change is not None]
            if not changes:
                return Outcome([plan.result for plan in plans])  # it writes nothing

            async def writes(conn: Conn) -> None:
                await _creates.queue_creates(conn, plans, self._feed)

            return Outcome([plan.result for plan in plans], changes, writes=writes)

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            # One transaction: every new run's event landed or none did.
            created = [job for job, r in zip(jobs, outcome.value, strict=True) if r.created]
            if not created:
                return outcome  # it wrote nothing
            first = created[0]
            found = await _jobs.has_event(conn, first.run_id, 1, first.attempts[-1].event_id)
            return outcome if found else None

        what = "create_run" if len(jobs) == 1 else f"a batch of {len(jobs)} create_run calls"
        created: list[CreatedRun | BaseException] = await self._db.transaction(
            body, what=what, recover=recover, begins=True
        )
        return created

    async def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        after: AppendAfter | None = None,
    ) -> AppendResult:
        job = AppendJob(run_id, events, owner, lookups(events), after)
        return await self._call(self._appends.submit(job))

    async def _append_alone(self, job: AppendJob) -> AppendResult:
        return await alone(self._append_all, job)

    async def _append_together(self, jobs: list[AppendJob]) -> Sequence[BatchOutcome]:
        return await together(self._append_all, jobs, "appends")

    async def _append_all(self, jobs: list[AppendJob]) -> list[BatchOutcome]:
        presumed_rows = _jobs.presumable(jobs)

        async def presumed(conn: Conn, retry: bool) -> Outcome:
            assert presumed_rows is not None
            plans = _jobs.presumed_plans(jobs, presumed_rows, self._clock.now())

            async def writes(conn: Conn) -> None:
                await _jobs.queue_presumed(conn, jobs, plans, self._feed)

            changes = [plan.change for plan in plans]
            return Outcome([plan.result for plan in plans], changes, writes=writes, presumed=True)

        async def body(conn: Conn, retry: bool) -> Outcome:
            verdicts, plans, changes = await _jobs.append_all(conn, jobs, self._feed)
            return Outcome([v.result for v in verdicts], changes, writes=self._writes(plans))

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            # One transaction: either every job's events are in the log or none is, so the
            # first event written tells for all of them.
            written = [
                r.events[0] for r in outcome.value if isinstance(r, AppendResult) and r.events
            ]
            if not written:
                return outcome  # it wrote nothing that could be lost or doubled
            first = written[0]
            found = await _jobs.has_event(conn, first.run_id, first.seq, first.event_id)
            return outcome if found else None

        what = "append" if len(jobs) == 1 else f"a batch of {len(jobs)} appends"
        if presumed_rows is not None:
            with contextlib.suppress(PresumptionMissed):  # rolled back: read, decide again
                presumed_outcomes: list[BatchOutcome] = await self._db.transaction(
                    presumed, what=what, recover=recover, begins=True
                )
                return presumed_outcomes
        outcomes: list[BatchOutcome] = await self._db.transaction(
            body, what=what, recover=recover, begins=True
        )
        return outcomes

    def _writes(self, plans: Sequence[AppendPlan]) -> Callable[[Conn], Awaitable[None]] | None:
        if not any(plan.writes or plan.result.events for plan in plans):
            return None

        async def writes(conn: Conn) -> None:
            await _jobs.queue_writes(conn, plans, self._feed)

        return writes

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        async def body(conn: Conn, retry: bool) -> Outcome:
            cur = await conn.execute(
                "INSERT INTO webhook_responses (reply_to, payload, created_at) "
                "VALUES (%s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
                (reply_to, payload),
            )
            return Outcome(bool(cur.rowcount))

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            if not outcome.value:
                return outcome
            stored = await _jobs.webhook_response(conn, reply_to)
            return None if stored is None else Outcome(stored == payload)

        coro = self._db.transaction(body, what="put_webhook_response", recover=recover)
        result: bool = await self._call(coro)
        return result

    # -- scheduling --------------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        await self._call(
            self._write("register_worker", lambda c: sched.register_worker(c, info, self.now()))
        )

    async def wake_run(self, run_id: str) -> bool:
        async def body(conn: Conn, retry: bool) -> Outcome:
            change = await sched.wake_run(conn, run_id, self._feed)
            return Outcome(change is not None, [] if change is None else [change])

        woken: bool = await self._call(self._db.transaction(body, what="wake_run", idempotent=True))
        return woken

    async def register_queues(self, queues: Sequence[QueueLimits]) -> None:
        await self._call(
            self._write("register_queues", lambda c: _queues.register(c, queues, self.now()))
        )

    async def unregister_worker(self, worker_id: str) -> None:
        await self._call(
            self._write("unregister_worker", lambda c: sched.unregister_worker(c, worker_id))
        )

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        claimed: list[RunRecord] = []

        async def body(conn: Conn, retry: bool) -> Outcome:
            claimed[:] = await sched.claim_runs(
                conn, worker, workflow_names, limit, lease_seconds, self.now(), self.channel
            )
            return Outcome(claimed)

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            # Whatever of the candidates this worker holds now is its to run.
            held = await _jobs.get_runs(conn, [r.run_id for r in claimed])
            return Outcome([r for r in held if r.owner == worker.worker_id])

        coro = self._db.transaction(body, what="claim_runs", recover=recover)
        result: list[RunRecord] = await self._call(coro)
        return result

    async def renew_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        step_ids: Sequence[str],
        lease_seconds: float,
    ) -> None:
        await self._call(
            self._write(
                "renew_leases",
                lambda c: sched.renew_leases(c, worker_id, run_ids, step_ids, lease_seconds),
            )
        )

    async def release_run(
        self, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None = None
    ) -> None:
        await self._call(
            self._write(
                "release_run", lambda c: sched.release_run(c, run_id, owner, wake_at, known_seq)
            )
        )

    async def park_run(self, run_id: str, owner: str, divergence: Divergence) -> bool:
        params = (divergence_json(divergence), divergence.version, run_id, owner)

        async def body(conn: Conn, retry: bool) -> Outcome:
            cur = await conn.execute(DIALECT.sql(_sql.PARK_RUN), params)
            return Outcome(cur.rowcount == 1)

        coro = self._db.transaction(body, what="park_run", idempotent=True)
        parked: bool = await self._call(coro)
        return parked

    async def resume_diverged(self, versions: Mapping[str, str]) -> list[str]:
        params = (list(versions), list(versions.values()))

        async def body(conn: Conn, retry: bool) -> Outcome:
            cur = await conn.execute(_RESUME_DIVERGED, params)
            ids = [row[0] for row in await cur.fetchall()]
            changes = [RunChange(run_id, 0, RunStatus.RUNNING) for run_id in ids]
            await self._feed.send(conn, changes)
            return Outcome(ids, changes)

        coro = self._db.transaction(body, what="resume_diverged", idempotent=True)
        resumed: list[str] = await self._call(coro)
        return resumed

    # -- the step queue ------------------------------------------------------------------------

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        async def body(conn: Conn, retry: bool) -> Outcome:
            change, writes = await sched.queue_steps(
                conn, run_id, step_ids, owner, delay, self._feed
            )
            return Outcome(None, [change], writes=writes)

        coro = self._db.transaction(body, what="queue_steps", idempotent=True, begins=True)
        await self._call(coro)

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        async def body(conn: Conn, retry: bool) -> Outcome:
            claims, plans = await sched.claim_steps(
                conn, worker, step_names, limit, lease_seconds, self._feed
            )
            changes = [plan.change for plan in plans if plan.result.events]
            return Outcome(claims, changes, writes=self._writes(plans))

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            held = await sched.claims_held(conn, outcome.value, worker.worker_id)
            return Outcome(held, outcome.changes)

        coro = self._db.transaction(body, what="claim_steps", recover=recover)
        result: list[StepClaim] = await self._call(coro)
        return result

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        async def body(conn: Conn, retry: bool) -> Outcome:
            plan = await sched.finish_step(conn, run_id, outcome, claimer, retry_after, self._feed)
            if plan is None:
                return Outcome(None)
            return Outcome(plan.result.events[-1], [plan.change], writes=self._writes([plan]))

        async def recover(conn: Conn, found: Outcome) -> Outcome | None:
            event: Event | None = found.value
            if event is None:
                return found
            recorded = await _jobs.has_event(conn, run_id, event.seq, event.event_id)
            return found if recorded else None

        coro = self._db.transaction(body, what="finish_step", recover=recover, begins=True)
        recorded = await self._call(coro)
        return recorded is not None

    # -- schedules ---------------------------------------------------------------------------

    async def change_schedule(self, schedule_id: str, decide: Decision) -> ScheduleRecord | None:
        async def body(conn: Conn, retry: bool) -> Outcome:
            now = self.now()
            found = await _schedules.change_schedule(conn, schedule_id, decide, now, self.channel)
            return Outcome(found)

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            # Landed if the row is what was written (an edit read again would be refused:
            # a create finds its own row).
            stored = await _schedules.read(conn, schedule_id)
            return outcome if stored == outcome.value else None

        coro = self._db.transaction(body, what="change_schedule", recover=recover, begins=True)
        record: ScheduleRecord | None = await self._call(coro)
        return record

    async def fire_schedules(
        self,
        workflow_names: Sequence[str],
        input_for: TickInput,
        *,
        now: float | None = None,
        limit: int = 32,
    ) -> list[FiredTick]:
        async def body(conn: Conn, retry: bool) -> Outcome:
            clock = self.now()
            at = clock if now is None else now
            fired, changes = await _schedules.fire(
                conn, workflow_names, input_for, at, clock, limit, self._feed
            )
            return Outcome(fired, changes)

        # Firing again after a lost commit is safe: had it landed, the ticks are no longer
        # due; and a tick's run id makes starting its run idempotent anyway.
        coro = self._db.transaction(body, what="fire_schedules", idempotent=True, begins=True)
        fired: list[FiredTick] = await self._call(coro)
        return fired

    # -- streams -----------------------------------------------------------------------------

    async def write_stream(
        self,
        run_id: str,
        name: str,
        chunks: Sequence[NewChunk],
        *,
        writer: ChunkWriter | None = None,
        close: bool = False,
    ) -> int:
        async def body(conn: Conn, retry: bool) -> Outcome:
            change, start = await _streams.write(
                conn, run_id, name, chunks, writer, close, self.now()
            )
            await self._feed.send_stream(conn, change)
            return Outcome((change.length, start), (), (change,))

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            if not chunks:
                return outcome  # closing is idempotent
            start = outcome.value[1]
            found = await _streams.committed(conn, run_id, name, start, chunks[0], writer)
            return outcome if found else None

        coro = self._db.transaction(body, what="write_stream", recover=recover)
        length, _ = await self._call(coro)
        return int(length)

    # -- closing ------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._loop.closed:
            return
        self._db.closed = True

        async def finish() -> None:
            self._appends.close()
            self._creates.close()
            await self._feed.close()
            await self._db.pool.close()

        await self._loop.shut_down(finish())
