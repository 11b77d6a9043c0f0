"""The scale-out World: PostgreSQL shared by many worker processes on many machines.

Selected by ``WORKFLOWKIT_WORLD=postgresql://user@host/db?schema=name`` (``postgres://``
works too; the schema defaults to ``workflowkit``). Needs the ``postgres`` extra.

The World is a few collaborators: its own event loop on a thread (``WorldLoop``: the pool
belongs to it and every call is bridged there), transactions with their retry and
lost-commit rules (``Database``), the change feed (``Feed``: NOTIFY, LISTEN, the fallback
poll, the database clock), group commit for appends (``AppendQueue``), and the statements
(``_jobs``, ``_streams``). Times for leases and due runs come from the database clock, so
workers on machines with skewed clocks agree.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import (
    AmbiguousCommitError,
    LeaseLostError,
    WorkflowRunNotFoundError,
    WorldClosedError,
    WorldUnavailableError,
)
from .. import _migrations, _sql
from .._listeners import Listeners
from ..apply import AppendPlan, lookups, plan_create_run
from ..base import ChangeListener, StreamListener
from ..records import (
    AppendResult,
    ChunkWriter,
    Event,
    HookRecord,
    NewChunk,
    NewEvent,
    RunChange,
    RunRecord,
    RunStatus,
    StepClaim,
    StepRecord,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerInfo,
)
from . import _jobs, _streams
from ._batch import AppendQueue
from ._batch import Outcome as BatchOutcome
from ._feed import Clock, Feed
from ._jobs import ACTIVE, AppendJob
from ._loop import WorldLoop
from ._transactions import Conn, Database, Outcome

try:
    from psycopg import sql
    from psycopg_pool import AsyncConnectionPool, PoolClosed
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the PostgreSQL World needs psycopg 3: pip install 'workflowkit[postgres]'"
    ) from exc

T = TypeVar("T")
log = logging.getLogger("workflowkit.postgres")
DEFAULT_SCHEMA = "workflowkit"
MIGRATIONS = _migrations.load("workflowkit.worlds.postgres")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}")
# A worker's runs, locked in run_id order: the order appends lock them in (``_jobs``). A
# plain ``UPDATE ... WHERE owner = $1`` locks them in whatever order the scan finds them,
# so it could deadlock with the worker's own batch (costing both deadlock_timeout, 1 s).
_HELD_IN_ORDER = (
    "held AS MATERIALIZED (SELECT run_id FROM runs WHERE owner = %s {also} "
    "ORDER BY run_id FOR UPDATE)"
)


def parse_url(url: str, schema: str | None = None) -> tuple[str, str]:
    """Split ``postgresql://...?schema=name`` into a libpq URL and the schema name."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "schema"]
    from_url = [v for k, v in query if k == "schema"]
    name = schema or (from_url[-1] if from_url else DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(name):
        raise ValueError(
            f"invalid schema name {name!r}: use lower-case letters, digits and underscores"
        )
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return conninfo, name


class PostgresWorld:
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
        # A client frozen inside a transaction (SIGSTOP, a VM paused) would hold its row
        # locks for as long as it stays frozen, and claims skip locked runs: the server ends
        # such a session after this long, so its runs can be taken over.
        idle_ms = max(1, int(idle_in_transaction_timeout * 1000))
        connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"-c search_path={self.schema} -c TimeZone=UTC "
            f"-c idle_in_transaction_session_timeout={idle_ms}",
        }
        self._listeners = Listeners()
        self._clock = Clock()
        self._feed = Feed(
            self.conninfo,
            connect_kwargs,
            f"workflowkit_{self.schema}",
            self._listeners,
            self._clock,
            listen_heartbeat,
        )
        self._appends = AppendQueue(self._append_alone, self._append_together)
        self._loop = WorldLoop()
        try:
            pool = self._loop.run_sync(self._open_pool(connect_kwargs, min_size, max_size))
        except BaseException:
            self._loop.stop()
            raise
        self._db = Database(pool, self._listeners, retry_for)
        try:
            self._loop.run_sync(self._migrate())
            self._loop.run_sync(self._db.read(self._clock.read, "read the database clock"))
        except BaseException:
            self._loop.run_sync(pool.close())
            self._loop.stop()
            raise

    def __repr__(self) -> str:
        return f"PostgresWorld(schema={self.schema!r})"

    @property
    def channel(self) -> str:
        return self._feed.channel

    def now(self) -> float:
        """The database clock, estimated locally (within half a round trip)."""
        return self._clock.now()

    async def _open_pool(
        self, connect_kwargs: dict[str, Any], min_size: int, max_size: int
    ) -> AsyncConnectionPool[Conn]:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs=connect_kwargs,
            # Waiting for a connection counts against the retry budget: with the pool's own
            # default (30 s) a call could wait that long before its retries even began.
            timeout=self.retry_for,
            open=False,
            name=f"workflowkit-{self.schema}",
        )
        try:
            await pool.open(wait=True, timeout=self.retry_for)
        except BaseException:
            await pool.close()
            raise
        return pool

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._loop.call(coro)

    async def _migrate(self) -> None:
        async def body(conn: Conn, retry: bool) -> Outcome:
            # Serialise concurrent starters (several workers booting at once).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.channel,))
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
            )
            cur = await conn.execute("SELECT coalesce(max(version), 0) FROM migrations")
            row = await cur.fetchone()
            where = f"PostgreSQL schema {self.schema!r}"
            for migration in _migrations.to_apply(MIGRATIONS, int(row[0]) if row else 0, where):
                _migrations.note(migration, where)
                await conn.execute(migration.sql.encode())
                await conn.execute(
                    _jobs.DIALECT.sql(_migrations.RECORD), (migration.version, migration.name)
                )
            return Outcome(None)

        await self._db.transaction(body, idempotent=True, what="migrate")

    # -- change notification -----------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        self._loop.call_soon(self._feed.start)
        return self._listeners.subscribe(listener)

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]:
        self._loop.call_soon(self._feed.start)
        return self._listeners.subscribe_streams(listener)

    # -- runs and events ---------------------------------------------------------------------

    async def create_run(
        self, run_id: str, workflow_name: str, input: bytes, attrs: Mapping[str, Any]
    ) -> RunRecord:
        created: list[Event] = []

        async def body(conn: Conn, retry: bool) -> Outcome:
            if retry and created:  # an earlier attempt may have committed after all
                existing = await _jobs.get_run(conn, run_id)
                first = created[0]
                if existing is not None and await _jobs.has_event(conn, run_id, 1, first.event_id):
                    return Outcome(existing)
            plan = plan_create_run(run_id, workflow_name, input, attrs, self.now())
            created[:] = [plan.event]

            async def writes(conn: Conn) -> None:
                await _jobs.queue_create_run(conn, plan, self._feed)

            return Outcome(plan.record, [plan.change], writes=writes)

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            found = await _jobs.has_event(conn, run_id, 1, created[0].event_id)
            return outcome if found else None

        coro = self._db.transaction(body, what="create_run", recover=recover)
        result: RunRecord = await self._call(coro)
        return result

    async def append(
        self, run_id: str, events: Sequence[NewEvent], *, owner: str | None = None
    ) -> AppendResult:
        job = AppendJob(run_id, events, owner, lookups(events))
        return await self._call(self._appends.submit(job))

    async def _append_alone(self, job: AppendJob) -> AppendResult:
        """One append, one transaction."""
        (outcome,) = await self._append_all([job])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _append_all(self, jobs: list[AppendJob]) -> list[BatchOutcome]:
        async def body(conn: Conn, retry: bool) -> Outcome:
            verdicts, plans = await _jobs.append_all(conn, jobs, self._feed)
            changes = [v.change for v in verdicts if v.change is not None]
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

    async def _append_together(self, jobs: list[AppendJob]) -> Sequence[BatchOutcome]:
        """Appends to different runs, one transaction for all (group commit).

        If the transaction fails as a whole for a reason that is not the database being away
        (a statement one job's data makes fail), each job is appended on its own instead, so
        only the job at fault fails.
        """
        try:
            return await self._append_all(jobs)
        except (WorldUnavailableError, AmbiguousCommitError, WorldClosedError, PoolClosed):
            raise  # about the database or the World, not one job: every job shares it
        except Exception as exc:
            log.warning(
                "PostgreSQL World: a batch of %d appends failed (%s); appending each alone",
                len(jobs),
                exc,
            )
        return await asyncio.gather(
            *(self._append_alone(job) for job in jobs), return_exceptions=True
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = await self._read(lambda c: _jobs.get_run(c, run_id), "get_run")
        return result

    async def _read(self, fn: Callable[[Conn], Coroutine[Any, Any, T]], what: str) -> T:
        return await self._call(self._db.read(fn, what))

    async def list_runs(
        self,
        *,
        workflow_name: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[RunRecord]:
        query, params = _sql.list_runs(workflow_name, status, before, limit)
        result: list[RunRecord] = await self._read(
            lambda c: _jobs.list_runs(c, query, params), "list_runs"
        )
        return result

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        result: list[Event] = await self._read(
            lambda c: _jobs.get_events(c, run_id, after_seq), "get_events"
        )
        return result

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        result: list[StepRecord] = await self._read(
            lambda c: _jobs.list_steps(c, run_id), "list_steps"
        )
        return result

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        result: list[WaitRecord] = await self._read(
            lambda c: _jobs.list_waits(c, run_id), "list_waits"
        )
        return result

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        hooks: list[HookRecord] = await self._read(
            lambda c: _jobs.list_hooks(c, "h.token = ?", (token,)), "get_hook_by_token"
        )
        return hooks[0] if hooks else None

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        where, params = ("h.run_id = ?", (run_id,)) if run_id else ("true", ())
        result: list[HookRecord] = await self._read(
            lambda c: _jobs.list_hooks(c, where, params), "list_hooks"
        )
        return result

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

    async def get_webhook_response(self, reply_to: str) -> bytes | None:
        result: bytes | None = await self._read(
            lambda c: _jobs.webhook_response(c, reply_to), "get_webhook_response"
        )
        return result

    # -- scheduling --------------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        async def register(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO workers (worker_id, hostname, pid, started_at, heartbeat_at) "
                "VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp()) "
                "ON CONFLICT (worker_id) DO UPDATE SET hostname = excluded.hostname, "
                "pid = excluded.pid, heartbeat_at = excluded.heartbeat_at",
                (info.worker_id, info.hostname, info.pid),
            )

        await self._call(self._db.write("register_worker", register))

    async def unregister_worker(self, worker_id: str) -> None:
        async def unregister(conn: Conn) -> None:
            await conn.execute(
                f"WITH {_HELD_IN_ORDER.format(also='')} UPDATE runs r SET owner = NULL, "
                "lease_until = NULL FROM held WHERE r.run_id = held.run_id",
                (worker_id,),
            )
            await conn.execute(
                "UPDATE steps SET claimed_by = NULL, lease_until = NULL, "
                "queued_at = clock_timestamp() WHERE claimed_by = %s",
                (worker_id,),
            )
            await conn.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,))

        await self._call(self._db.write("unregister_worker", unregister))

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        candidates: list[str] = []

        async def body(conn: Conn, retry: bool) -> Outcome:
            dead = await _jobs.dead_local_workers(conn, worker)
            cur = await conn.execute(
                "WITH due AS (SELECT run_id FROM runs WHERE wake_at <= clock_timestamp() "
                f"AND status IN {ACTIVE} AND (owner IS NULL OR lease_until < clock_timestamp() "
                "OR owner = ANY(%s)) AND workflow_name = ANY(%s) ORDER BY wake_at LIMIT %s "
                "FOR UPDATE SKIP LOCKED) UPDATE runs r SET owner = %s, "
                "lease_until = clock_timestamp() + %s * interval '1 second', "
                "wake_at = clock_timestamp() FROM due WHERE r.run_id = due.run_id "
                "RETURNING r.run_id",
                (dead, list(workflow_names), limit, worker.worker_id, float(lease_seconds)),
            )
            candidates[:] = [row[0] for row in await cur.fetchall()]
            return Outcome(await _jobs.get_runs(conn, candidates))

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            # Whatever of the candidates this worker holds now is its to run.
            held = await _jobs.get_runs(conn, candidates)
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
        async def renew(conn: Conn) -> None:
            await conn.execute(
                f"WITH {_HELD_IN_ORDER.format(also='AND run_id = ANY(%s)')} UPDATE runs r "
                "SET lease_until = clock_timestamp() + %s * interval '1 second' "
                "FROM held WHERE r.run_id = held.run_id",
                (worker_id, list(run_ids), float(lease_seconds)),
            )
            await conn.execute(
                "UPDATE steps SET lease_until = clock_timestamp() + %s * interval '1 second' "
                "WHERE claimed_by = %s AND step_id = ANY(%s)",
                (float(lease_seconds), worker_id, list(step_ids)),
            )
            await conn.execute(
                "UPDATE workers SET heartbeat_at = clock_timestamp() WHERE worker_id = %s",
                (worker_id,),
            )

        await self._call(self._db.write("renew_leases", renew))

    async def release_run(
        self, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None = None
    ) -> None:
        async def release(conn: Conn) -> None:
            cur = await conn.execute(
                "SELECT owner FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            )
            row = await cur.fetchone()
            if row is None or row[0] != owner:
                return
            if known_seq is not None and await _jobs.max_seq(conn, run_id) > known_seq:
                # Something arrived after the worker last looked: due at once.
                await conn.execute(
                    "UPDATE runs SET owner = NULL, lease_until = NULL, "
                    "wake_at = clock_timestamp() WHERE run_id = %s",
                    (run_id,),
                )
                return
            await conn.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL, wake_at = %s WHERE run_id = %s",
                (wake_at, run_id),
            )

        await self._call(self._db.write("release_run", release))

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        async def fetch(conn: Conn) -> datetime | None:
            cur = await conn.execute(
                f"SELECT min(wake_at) FROM runs WHERE owner IS NULL AND status IN {ACTIVE} "
                "AND workflow_name = ANY(%s)",
                (list(workflow_names),),
            )
            row = await cur.fetchone()
            return None if row is None or row[0] is None else _jobs.DIALECT.moment(row[0])

        result: datetime | None = await self._read(fetch, "next_wake_at")
        return result

    # -- the step queue ------------------------------------------------------------------------

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        async def body(conn: Conn, retry: bool) -> Outcome:
            cur = await conn.execute(
                "SELECT owner, status FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            )
            row = await cur.fetchone()
            if row is None:
                raise WorkflowRunNotFoundError(run_id)
            if row[0] != owner:
                raise LeaseLostError(run_id, owner)
            await conn.execute(
                "UPDATE steps SET queued_at = clock_timestamp() + %s * interval '1 second' "
                "WHERE run_id = %s AND step_id = ANY(%s) AND status IN ('pending', 'running') "
                "AND claimed_by IS NULL",
                (float(delay), run_id, list(step_ids)),
            )
            await conn.execute(
                "UPDATE runs SET updated_at = clock_timestamp() WHERE run_id = %s", (run_id,)
            )
            seq = await _jobs.max_seq(conn, run_id)
            change = RunChange(run_id, seq, RunStatus(row[1]), owner, steps_queued=True)
            await self._feed.send(conn, [change])
            return Outcome(None, [change])

        await self._call(self._db.transaction(body, what="queue_steps", idempotent=True))

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        async def body(conn: Conn, retry: bool) -> Outcome:
            claims, plans = await _jobs.claim_steps(
                conn, worker, step_names, limit, lease_seconds, self._feed
            )
            changes = [plan.change for plan in plans if plan.result.events]
            return Outcome(claims, changes, writes=self._writes(plans))

        async def recover(conn: Conn, outcome: Outcome) -> Outcome | None:
            # The claims that committed are those whose lease this worker holds now.
            held = []
            for claim in outcome.value:
                cur = await conn.execute(
                    "SELECT claimed_by, attempt FROM steps WHERE run_id = %s AND step_id = %s",
                    (claim.run_id, claim.step_id),
                )
                row = await cur.fetchone()
                if row is not None and (row[0], row[1]) == (worker.worker_id, claim.attempt):
                    held.append(claim)
            return Outcome(held, outcome.changes)

        coro = self._db.transaction(body, what="claim_steps", recover=recover)
        result: list[StepClaim] = await self._call(coro)
        return result

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        async def body(conn: Conn, retry: bool) -> Outcome:
            plan = await _jobs.finish_step(conn, run_id, outcome, claimer, retry_after, self._feed)
            if plan is None:
                return Outcome(None)
            return Outcome(plan.result.events[-1], [plan.change], writes=self._writes([plan]))

        async def recover(conn: Conn, found: Outcome) -> Outcome | None:
            event: Event | None = found.value
            if event is None:
                return found
            recorded = await _jobs.has_event(conn, run_id, event.seq, event.event_id)
            return found if recorded else None

        coro = self._db.transaction(body, what="finish_step", recover=recover)
        recorded = await self._call(coro)
        return recorded is not None

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
            change, start = await _streams.write(conn, run_id, name, chunks, writer, close)
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

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        page: StreamPage = await self._read(
            lambda c: _streams.read(c, run_id, name, start_index, limit), "read_stream"
        )
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        found: list[StreamInfo] = await self._read(
            lambda c: _streams.list_streams(c, run_id), "list_streams"
        )
        return found

    async def close(self) -> None:
        if self._loop.closed:
            return
        self._db.closed = True

        async def finish() -> None:
            self._appends.close()
            await self._feed.close()
            await self._db.pool.close()

        await self._loop.shut_down(finish())
