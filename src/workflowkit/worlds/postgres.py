"""The scale-out World: PostgreSQL shared by many worker processes on many machines.

Selected by ``WORKFLOWKIT_WORLD=postgresql://user@host/db?schema=name`` (``postgres://``
works too; the schema defaults to ``workflowkit``). Needs the ``postgres`` extra
(``psycopg[binary]`` and ``psycopg-pool``).

Event loops. The World is called from any event loop (the runtime's background loop, user
loops, ``asyncio.run`` in tests), but a psycopg async pool and its connections belong to the
loop that created them. So the World owns one dedicated thread running its own event loop;
the connection pool and the LISTEN connection live there, and every public coroutine is
bridged to it (``run_coroutine_threadsafe``) and awaited from the caller's loop. This costs a
thread hop per call (as the SQLite World's writer thread does) and buys: one pool per World
whatever the number of caller loops, a synchronous constructor (``open_world`` is sync), and
a ``close()`` that can shut everything down from any loop. A caller that is cancelled does
not cancel the database work it started: a write runs to its commit or rollback.

Semantics mirror ``SQLiteWorld``: an append locks the run row (``FOR UPDATE``) so appenders to
one run serialise and ``seq`` stays contiguous; the shared transition rules come from
``base``. Times for leases and due runs come from the database clock
(``clock_timestamp()``), so workers on machines with skewed clocks agree. Appends of step and
wait events that arrive while another is in flight are committed together (group commit,
``postgres_batch``).

Change notification: local listeners are told right after a commit; other processes learn
through ``NOTIFY`` sent inside the committing transaction (so it is delivered only if the
transaction commits) on a channel named after the schema. A dedicated LISTEN connection
forwards other processes' notifications; when it is lost it reconnects with backoff and then
polls the runs touched meanwhile (fallback poll), so a gap loses no wake-up.

Failures. A lost connection (or a serialisation failure / deadlock) before ``COMMIT`` was
sent is retried with backoff: nothing committed. A connection lost *during* ``COMMIT`` is
ambiguous; such a write is never retried blindly: append and create_run check whether their
first event is in the log (they generate its id before writing) and return the result they
computed if it is; a webhook response checks what is stored under its key; claims return
the candidate runs the worker now holds; idempotent writes
(lease renewal, release, worker registration) are simply retried. When the database stays
unreachable past ``retry_for`` seconds, ``WorldUnavailableError`` is raised, and
``AmbiguousCommitError`` if a write's outcome could not be established.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import (
    AmbiguousCommitError,
    CorruptDataError,
    LeaseLostError,
    WorkflowRunNotFoundError,
    WorldClosedError,
    WorldUnavailableError,
)
from ..ids import new_id
from .base import ChangeListener, StreamListener
from .records import (
    RUN_TARGET,
    RUN_TRANSITIONS,
    STEP_TRANSITIONS,
    AppendResult,
    ChunkWriter,
    Event,
    EventType,
    HookRecord,
    NewChunk,
    NewEvent,
    Rejected,
    RunChange,
    RunRecord,
    RunStatus,
    StepClaim,
    StepRecord,
    StepStatus,
    StreamChange,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerInfo,
)
from .rows import dump_attrs, load_attrs, pid_alive, run_status

try:
    import psycopg
    from psycopg import AsyncConnection, sql
    from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the PostgreSQL World needs psycopg 3: pip install 'workflowkit[postgres]'"
    ) from exc

from . import postgres_streams as streams
from .postgres_batch import (
    AppendJob,
    AppendQueue,
    Outcome,
    RowPlan,
    append_many,
    check_writes,
    insert_events,
    plan_rows,
    row_write,
    rows_touched,
    send_writes,
    touch_run,
)

T = TypeVar("T")
Conn = AsyncConnection[tuple[Any, ...]]

log = logging.getLogger("workflowkit.postgres")
DEFAULT_SCHEMA = "workflowkit"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")
_ACTIVE = "('pending', 'running')"
_IDLE_TIMEOUT = "25P03"  # idle_in_transaction_session_timeout ended the session
# A worker's runs (all of them here; lease renewal names some), locked in run_id order: the
# order a batch of appends locks them in
# (postgres_batch). A plain ``UPDATE ... WHERE owner = $1`` locks them in whatever order the
# scan finds them, so it could deadlock with the worker's own batch, and a deadlock costs
# both sides deadlock_timeout (1 s) before one is retried.
_HELD_IN_ORDER = (
    "held AS MATERIALIZED (SELECT run_id FROM runs WHERE owner = %s ORDER BY run_id FOR UPDATE)"
)

# -- migrations ------------------------------------------------------------------------------
# Each migration runs once, in order, inside one transaction holding an advisory lock, and is
# recorded in the ``migrations`` table. Never edit a released migration: add the next one.

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "initial",
        """
CREATE TABLE runs (
    run_id text PRIMARY KEY,
    workflow_name text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL,
    output_seq integer,
    error_seq integer,
    owner text,
    lease_until timestamptz,
    wake_at timestamptz
);
CREATE INDEX runs_due ON runs (wake_at)
    WHERE wake_at IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_updated ON runs (updated_at);
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_workflow ON runs (workflow_name, run_id);
CREATE INDEX runs_status ON runs (status, run_id);
CREATE TABLE events (
    run_id text NOT NULL,
    seq integer NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    correlation_id text,
    payload bytea,
    attrs text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE steps (
    run_id text NOT NULL,
    step_id text NOT NULL,
    step_name text NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL,
    input_seq integer,
    output_seq integer,
    error_seq integer,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    retry_at timestamptz,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE waits (
    run_id text NOT NULL,
    wait_id text NOT NULL,
    resume_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (run_id, wait_id)
);
CREATE TABLE hooks (
    hook_id text PRIMARY KEY,
    run_id text NOT NULL,
    token text NOT NULL UNIQUE,
    created_seq integer NOT NULL,
    created_at timestamptz NOT NULL,
    attrs text
);
CREATE INDEX hooks_run ON hooks (run_id);
CREATE TABLE workers (
    worker_id text PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
""",
    ),
    (
        2,
        "webhook_responses",
        """
CREATE TABLE webhook_responses (
    reply_to text PRIMARY KEY,
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL
);
""",
    ),
    (3, "streams", streams.MIGRATION),
    (
        4,
        "step_queue",
        """
ALTER TABLE steps ADD COLUMN executor text;
ALTER TABLE steps ADD COLUMN lease_until timestamptz;
ALTER TABLE steps ADD COLUMN queued_at timestamptz;
CREATE INDEX steps_queued ON steps (queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX steps_executor ON steps (executor) WHERE executor IS NOT NULL;
""",
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_RUN_COLUMNS = (
    "r.run_id, r.workflow_name, r.status, r.created_at, r.started_at, r.completed_at, "
    "r.updated_at, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), r.owner, "
    "r.wake_at, "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = 1), "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = r.output_seq), "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = r.error_seq)"
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
    if not _SCHEMA_NAME.match(name):
        raise ValueError(
            f"invalid schema name {name!r}: use lower-case letters, digits and underscores"
        )
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return conninfo, name


def _is_transient(exc: BaseException) -> bool:
    """A failure that says nothing about the data: the connection, not the statement."""
    if isinstance(exc, PoolClosed):
        return False
    if isinstance(exc, PoolTimeout):
        return True
    if getattr(exc, "sqlstate", None) == _IDLE_TIMEOUT:
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return isinstance(exc, psycopg.InterfaceError)
    state = exc.sqlstate
    return state is None or state.startswith(("08", "40", "57P"))


def _rolled_back(exc: BaseException) -> bool:
    """The server said it rolled the transaction back (serialisation failure, deadlock, or
    it ended a session that sat idle inside a transaction)."""
    return getattr(exc, "sqlstate", None) in {"40001", "40P01", _IDLE_TIMEOUT}


@dataclass(slots=True)
class _Outcome:
    """A transaction body's value plus the changes to announce once it committed."""

    value: Any
    changes: list[RunChange]
    stream_changes: Sequence[StreamChange] = ()


_Body = Callable[[Conn, bool], Awaitable[_Outcome]]
_Recover = Callable[[Conn, _Outcome], Awaitable[_Outcome | None]]


class PostgresWorld:
    """The World on PostgreSQL (``WORKFLOWKIT_WORLD=postgresql://...``)."""

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
        self.channel = f"workflowkit_{self.schema}"
        self.retry_for = retry_for
        self._heartbeat = listen_heartbeat
        self._instance = uuid.uuid4().hex
        self._listeners: list[ChangeListener] = []
        self._stream_listeners: list[StreamListener] = []
        self._listeners_lock = threading.Lock()
        self._listen_task: asyncio.Task[None] | None = None
        self._listen_seen: datetime | None = None
        # Database clock minus local clock; read at open, refreshed by the LISTEN heartbeat.
        self._clock_offset = 0.0
        self._closed = False
        self._appends = AppendQueue(
            lambda job: self._append_alone(job.run_id, job.events, job.owner),
            self._append_together,
        )
        # A client frozen inside a transaction (SIGSTOP, a VM paused) would hold its row
        # locks for as long as it stays frozen, and claims skip locked runs: the server ends
        # such a session after this long, so its runs can be taken over.
        idle_ms = max(1, int(idle_in_transaction_timeout * 1000))
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"-c search_path={self.schema} -c TimeZone=UTC "
            f"-c idle_in_transaction_session_timeout={idle_ms}",
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, name="workflowkit-postgres", daemon=True
        )
        self._thread.start()
        try:
            self._pool: AsyncConnectionPool[Conn] = self._run_sync(
                self._open_pool(min_size, max_size)
            )
        except BaseException:
            self._stop_thread()
            raise
        try:
            self._run_sync(self._migrate())
            self._run_sync(self._read(self._read_clock, "read the database clock"))
        except BaseException:
            self._run_sync(self._pool.close())
            self._stop_thread()
            raise

    def __repr__(self) -> str:
        return f"PostgresWorld(schema={self.schema!r})"

    # -- the World's own loop ---------------------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _stop_thread(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._loop.close()

    async def _open_pool(self, min_size: int, max_size: int) -> AsyncConnectionPool[Conn]:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs=self._connect_kwargs,
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
        """Run ``coro`` on the World's loop and await it from the caller's loop."""
        if self._closed:
            coro.close()
            raise WorldClosedError("this World is closed")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - coroutines always have a loop
            running = None
        if running is self._loop:
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and future.cancelled() and not (task and task.cancelling()):
                raise WorldClosedError("this World was closed before the call finished") from None
            raise

    # -- the clock ---------------------------------------------------------------------------

    def now(self) -> float:
        """The database clock, estimated locally (within half a round trip)."""
        return time.time() + self._clock_offset

    async def _read_clock(self, conn: Conn) -> datetime:
        """The database's time now; also notes how far the local clock is off from it."""
        before = time.time()
        db_now = await _db_now(conn)
        after = time.time()
        self._clock_offset = db_now.timestamp() - (before + after) / 2
        return db_now

    # -- schema ----------------------------------------------------------------------------

    async def _migrate(self) -> None:
        async def body(conn: Conn, retry: bool) -> _Outcome:
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
            found = int(row[0]) if row else 0
            if found > SCHEMA_VERSION:
                raise CorruptDataError(
                    f"PostgreSQL schema {self.schema!r} was migrated by a newer workflowkit "
                    f"(version {found}; this version knows {SCHEMA_VERSION}): upgrade workflowkit"
                )
            for version, name, statements in MIGRATIONS:
                if version <= found:
                    continue
                log.info("applying migration %04d_%s to schema %s", version, name, self.schema)
                await conn.execute(statements.encode())
                await conn.execute(
                    "INSERT INTO migrations (version, name) VALUES (%s, %s)", (version, name)
                )
            return _Outcome(None, [])

        await self._transaction(body, idempotent=True, what="migrate")

    # -- transactions and retries ------------------------------------------------------------

    async def _backoff(self, delay: float, started: float, what: str, exc: BaseException) -> float:
        if self._closed:
            raise WorldClosedError(f"this World was closed while {what} was retried") from exc
        if time.monotonic() - started > self.retry_for:
            raise WorldUnavailableError(
                f"PostgreSQL World: {what} failed for {self.retry_for:.0f} s: {exc}"
            ) from exc
        log.warning("PostgreSQL World: %s failed (%s); retrying in %.2f s", what, exc, delay)
        await asyncio.sleep(delay)
        return min(delay * 2, 2.0)

    async def _transaction(
        self,
        body: _Body,
        *,
        what: str,
        idempotent: bool = False,
        recover: _Recover | None = None,
        begins: bool = False,
    ) -> Any:
        """Run ``body`` in a transaction, retrying what surely did not commit.

        With ``begins``, the body sends BEGIN itself, in the pipeline of its first statements:
        a round trip less, which matters most when this thread waits for the GIL after each.
        """
        delay, started, retry = 0.05, time.monotonic(), False
        while True:
            committing = False
            outcome: _Outcome | None = None
            try:
                async with self._pool.connection() as conn:
                    if not begins:
                        await conn.execute("BEGIN")
                    try:
                        outcome = await body(conn, retry)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK")
                        raise
                    committing = True
                    await conn.execute("COMMIT")
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                retry = True
                if committing and not _rolled_back(exc) and not idempotent:
                    assert outcome is not None
                    resolved = await self._resolve(outcome, recover, what, exc)
                    if resolved is not None:
                        outcome = resolved
                        break
                delay = await self._backoff(delay, started, what, exc)
                continue
            break
        if outcome.changes:
            self._notify(outcome.changes)
        if outcome.stream_changes:
            self._notify_streams(outcome.stream_changes)
        return outcome.value

    async def _resolve(
        self, outcome: _Outcome, recover: _Recover | None, what: str, exc: BaseException
    ) -> _Outcome | None:
        """After a lost COMMIT: the outcome if it committed, None if it surely did not."""
        if recover is None:
            raise AmbiguousCommitError(
                f"PostgreSQL World: the connection was lost while committing {what}; "
                "it may or may not have been applied"
            ) from exc
        delay, started = 0.05, time.monotonic()
        while True:
            try:
                async with self._pool.connection() as conn:
                    return await recover(conn, outcome)
            except Exception as again:
                if not _is_transient(again):
                    raise
                if time.monotonic() - started > self.retry_for:
                    raise AmbiguousCommitError(
                        f"PostgreSQL World: the connection was lost while committing {what} "
                        "and the database stayed unreachable; it may or may not have been applied"
                    ) from again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _read(self, fn: Callable[[Conn], Awaitable[T]], what: str) -> T:
        delay, started = 0.05, time.monotonic()
        while True:
            try:
                async with self._pool.connection() as conn:
                    return await fn(conn)
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                delay = await self._backoff(delay, started, what, exc)

    # -- change notification -----------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        with self._listeners_lock:
            self._listeners.append(listener)
        if not self._closed:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._start_listening)

        def unsubscribe() -> None:
            with self._listeners_lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, changes: Sequence[RunChange]) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(changes)
            except Exception:
                log.exception("change listener failed")

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]:
        with self._listeners_lock:
            self._stream_listeners.append(listener)
        if not self._closed:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._start_listening)

        def unsubscribe() -> None:
            with self._listeners_lock, contextlib.suppress(ValueError):
                self._stream_listeners.remove(listener)

        return unsubscribe

    def _notify_streams(self, changes: Sequence[StreamChange]) -> None:
        with self._listeners_lock:
            listeners = list(self._stream_listeners)
        for listener in listeners:
            try:
                listener(changes)
            except Exception:
                log.exception("stream listener failed")

    def _start_listening(self) -> None:
        if self._listen_task is None and not self._closed:
            self._listen_task = self._loop.create_task(self._listen_forever())

    def _payload(self, change: RunChange) -> str:
        return "|".join(
            (
                self._instance,
                change.run_id,
                str(change.last_seq),
                change.status,
                change.writer or "",
                "q" if change.steps_queued else "",
            )
        )

    def _stream_payload(self, change: StreamChange) -> str:
        # The name goes last: it may contain the separator.
        closed = "1" if change.closed else "0"
        fields = (self._instance, "stream", change.run_id, str(change.length), closed, change.name)
        return "|".join(fields)

    def _on_notify(self, payload: str) -> None:
        if payload.startswith(self._instance):
            return  # ours: local listeners heard it straight after the commit
        parts = payload.split("|", 5)
        if len(parts) == 6 and parts[1] == "stream":
            try:
                stream = StreamChange(parts[2], parts[5], int(parts[3]), parts[4] == "1")
            except ValueError:
                log.warning("ignoring malformed notification %r", payload)
                return
            self._notify_streams([stream])
            return
        parts = payload.split("|")
        if len(parts) != 6:
            return
        try:
            change = RunChange(
                parts[1], int(parts[2]), RunStatus(parts[3]), parts[4] or None, parts[5] == "q"
            )
        except ValueError:
            log.warning("ignoring malformed notification %r", payload)
            return
        self._notify([change])

    async def _listen_forever(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                conn = await AsyncConnection.connect(self.conninfo, **self._connect_kwargs)
            except Exception as exc:
                log.warning("PostgreSQL World: cannot LISTEN (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                since = self._listen_seen
                self._listen_seen = await self._read_clock(conn)
                if since is not None:
                    await self._catch_up(conn, since)
                delay = 0.1
                while not self._closed:
                    async for note in conn.notifies(timeout=self._heartbeat):
                        self._on_notify(note.payload)
                    # A heartbeat: proves the connection alive, dates what we have seen.
                    self._listen_seen = await self._read_clock(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closed:
                    log.warning("PostgreSQL World: LISTEN connection lost (%s)", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _catch_up(self, conn: Conn, since: datetime) -> None:
        """The fallback poll: runs touched while no LISTEN connection was open."""
        cur = await conn.execute(
            "SELECT r.run_id, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), "
            "r.status FROM runs r WHERE r.updated_at >= %s - interval '5 seconds'",
            (since,),
        )
        rows = await cur.fetchall()
        if rows:
            self._notify([RunChange(r[0], int(r[1] or 0), run_status(r[2])) for r in rows])
        stream_changes = await streams.changed_since(conn, since)
        if stream_changes:
            self._notify_streams(stream_changes)

    async def _send(self, conn: Conn, changes: Sequence[RunChange]) -> None:
        for change in changes:
            await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self._payload(change)))

    # -- runs and events ---------------------------------------------------------------------

    async def create_run(
        self, run_id: str, workflow_name: str, input: bytes, attrs: Mapping[str, Any]
    ) -> RunRecord:
        event_id = new_id("evnt")

        async def body(conn: Conn, retry: bool) -> _Outcome:
            if retry:  # an earlier attempt may have committed after all
                existing = await _select_run(conn, run_id)
                if existing is not None and await _has_event(conn, run_id, 1, event_id):
                    return _Outcome(existing, [])
            change = RunChange(run_id, 1, RunStatus.PENDING)
            # One round trip (a pipeline), and the record is built from what the insert
            # returns rather than read back.
            async with conn.pipeline():
                cur = await conn.execute(
                    "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, "
                    "wake_at) VALUES (%s, %s, 'pending', clock_timestamp(), clock_timestamp(), "
                    "clock_timestamp()) RETURNING created_at, updated_at, wake_at",
                    (run_id, workflow_name),
                )
                await conn.execute(
                    "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, "
                    "attrs, created_at) SELECT %s, 1, %s, 'run_created', NULL, %s, %s, "
                    "created_at FROM runs WHERE run_id = %s",
                    (run_id, event_id, input, dump_attrs(attrs), run_id),
                )
                await self._send(conn, [change])
            row = await cur.fetchone()
            assert row is not None
            record = RunRecord(
                run_id=run_id,
                workflow_name=workflow_name,
                status=RunStatus.PENDING,
                created_at=_utc(row[0]),
                started_at=None,
                completed_at=None,
                updated_at=_utc(row[1]),
                last_seq=1,
                owner=None,
                wake_at=_utc(row[2]),
                input=input,
                output=None,
                error=None,
            )
            return _Outcome(record, [change])

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            if await _has_event(conn, run_id, 1, event_id):
                return outcome
            return None

        coro = self._transaction(body, what="create_run", recover=recover)
        result: RunRecord = await self._call(coro)
        return result

    async def append(
        self, run_id: str, events: Sequence[NewEvent], *, owner: str | None = None
    ) -> AppendResult:
        rows = rows_touched(events)
        coro: Coroutine[Any, Any, AppendResult]
        if rows is None:
            coro = self._append_alone(run_id, events, owner)
        else:
            coro = self._appends.submit(AppendJob(run_id, events, owner, *rows))
        return await self._call(coro)

    async def _append_alone(
        self, run_id: str, events: Sequence[NewEvent], owner: str | None
    ) -> AppendResult:
        """One append, one transaction."""

        async def body(conn: Conn, retry: bool) -> _Outcome:
            result, notify = await _append(conn, run_id, events, owner, begin=True)
            last = result.events[-1].seq if result.events else await _max_seq(conn, run_id)
            change = RunChange(run_id, last, result.run_status, writer=owner)
            if notify:
                await self._send(conn, [change])
            return _Outcome(result, [change])

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            result: AppendResult = outcome.value
            if not result.events:
                return outcome  # it wrote nothing that could be lost or doubled
            first = result.events[0]
            return outcome if await _has_event(conn, run_id, first.seq, first.event_id) else None

        appended: AppendResult = await self._transaction(
            body, what="append", recover=recover, begins=True
        )
        return appended

    async def _append_together(self, jobs: list[AppendJob]) -> Sequence[Outcome]:
        """Appends of row events to different runs, one transaction for all (group commit).

        If the transaction fails as a whole for a reason that is not the database being away
        (a statement one job's data makes fail), each job is appended on its own instead, so
        only the job at fault fails.
        """

        async def body(conn: Conn, retry: bool) -> _Outcome:
            verdicts = await append_many(conn, jobs, self.channel, self._payload)
            changes = [v.change for v in verdicts if v.change is not None]
            return _Outcome([v.result for v in verdicts], changes)

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            # One transaction: either every job's events are in the log or none is, so the
            # first event written tells for all of them.
            written = [
                r.events[0] for r in outcome.value if isinstance(r, AppendResult) and r.events
            ]
            if not written:
                return outcome  # it wrote nothing that could be lost or doubled
            first = written[0]
            found = await _has_event(conn, first.run_id, first.seq, first.event_id)
            return outcome if found else None

        try:
            outcomes: list[Outcome] = await self._transaction(
                body, what=f"a batch of {len(jobs)} appends", recover=recover, begins=True
            )
            return outcomes
        except (WorldUnavailableError, AmbiguousCommitError, WorldClosedError, PoolClosed):
            raise  # about the database or the World, not one job: every job shares it
        except Exception as exc:
            log.warning(
                "PostgreSQL World: a batch of %d appends failed (%s); appending each alone",
                len(jobs),
                exc,
            )
        return await asyncio.gather(
            *(self._append_alone(job.run_id, job.events, job.owner) for job in jobs),
            return_exceptions=True,
        )

    async def get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = await self._call(
            self._read(lambda c: _select_run(c, run_id), "get_run")
        )
        return result

    async def list_runs(
        self,
        *,
        workflow_name: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[RunRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if workflow_name is not None:
            clauses.append("r.workflow_name = %s")
            params.append(workflow_name)
        if status is not None:
            clauses.append("r.status = %s")
            params.append(str(status))
        if before is not None:
            clauses.append("r.run_id < %s")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {_RUN_COLUMNS} FROM runs r {where} ORDER BY r.run_id DESC LIMIT %s"

        async def fetch(conn: Conn) -> list[RunRecord]:
            cur = await conn.execute(query.encode(), (*params, limit))
            return [_run_from_row(row) for row in await cur.fetchall()]

        result: list[RunRecord] = await self._call(self._read(fetch, "list_runs"))
        return result

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        async def fetch(conn: Conn) -> list[Event]:
            cur = await conn.execute(
                "SELECT run_id, seq, event_id, type, correlation_id, payload, attrs, created_at "
                "FROM events WHERE run_id = %s AND seq > %s ORDER BY seq",
                (run_id, after_seq),
            )
            cache: dict[str, Any] = {}
            return [_event_from_row(row, cache) for row in await cur.fetchall()]

        result: list[Event] = await self._call(self._read(fetch, "get_events"))
        return result

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        async def fetch(conn: Conn) -> list[StepRecord]:
            cur = await conn.execute(
                "SELECT s.step_id, s.run_id, s.step_name, s.status, s.attempt, "
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq),"
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.output_seq),"
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.error_seq),"
                "s.created_at, s.started_at, s.completed_at, s.retry_at, s.executor, s.queued_at "
                "FROM steps s WHERE s.run_id = %s ORDER BY s.input_seq",
                (run_id,),
            )
            return [_step_from_row(row) for row in await cur.fetchall()]

        result: list[StepRecord] = await self._call(self._read(fetch, "list_steps"))
        return result

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        async def fetch(conn: Conn) -> list[WaitRecord]:
            cur = await conn.execute(
                "SELECT wait_id, run_id, resume_at, created_at, completed_at FROM waits "
                "WHERE run_id = %s ORDER BY created_at, wait_id",
                (run_id,),
            )
            return [
                WaitRecord(r[0], r[1], _utc(r[2]), _utc(r[3]), _utc_or_none(r[4]))
                for r in await cur.fetchall()
            ]

        result: list[WaitRecord] = await self._call(self._read(fetch, "list_waits"))
        return result

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        hooks: list[HookRecord] = await self._call(
            self._read(lambda c: _select_hooks(c, "h.token = %s", (token,)), "get_hook_by_token")
        )
        return hooks[0] if hooks else None

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        where, params = ("h.run_id = %s", (run_id,)) if run_id else ("true", ())
        result: list[HookRecord] = await self._call(
            self._read(lambda c: _select_hooks(c, where, params), "list_hooks")
        )
        return result

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        async def body(conn: Conn, retry: bool) -> _Outcome:
            cur = await conn.execute(
                "INSERT INTO webhook_responses (reply_to, payload, created_at) "
                "VALUES (%s, %s, clock_timestamp()) ON CONFLICT DO NOTHING",
                (reply_to, payload),
            )
            return _Outcome(bool(cur.rowcount), [])

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            if not outcome.value:
                return outcome
            stored = await _webhook_response(conn, reply_to)
            return None if stored is None else _Outcome(stored == payload, [])

        coro = self._transaction(body, what="put_webhook_response", recover=recover)
        result: bool = await self._call(coro)
        return result

    async def get_webhook_response(self, reply_to: str) -> bytes | None:
        result: bytes | None = await self._call(
            self._read(lambda c: _webhook_response(c, reply_to), "get_webhook_response")
        )
        return result

    # -- scheduling --------------------------------------------------------------------------

    async def _write(self, what: str, fn: Callable[[Conn], Awaitable[Any]]) -> None:
        """An idempotent write: safe to repeat whether or not an earlier attempt committed."""

        async def body(conn: Conn, retry: bool) -> _Outcome:
            await fn(conn)
            return _Outcome(None, [])

        await self._call(self._transaction(body, what=what, idempotent=True))

    async def register_worker(self, info: WorkerInfo) -> None:
        async def register(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO workers (worker_id, hostname, pid, started_at, heartbeat_at) "
                "VALUES (%s, %s, %s, clock_timestamp(), clock_timestamp()) "
                "ON CONFLICT (worker_id) DO UPDATE SET hostname = excluded.hostname, "
                "pid = excluded.pid, heartbeat_at = excluded.heartbeat_at",
                (info.worker_id, info.hostname, info.pid),
            )

        await self._write("register_worker", register)

    async def unregister_worker(self, worker_id: str) -> None:
        async def unregister(conn: Conn) -> None:
            await conn.execute(
                f"WITH {_HELD_IN_ORDER} UPDATE runs r SET owner = NULL, lease_until = NULL "
                "FROM held WHERE r.run_id = held.run_id",
                (worker_id,),
            )
            await conn.execute(
                "UPDATE steps SET executor = NULL, lease_until = NULL, "
                "queued_at = clock_timestamp() WHERE executor = %s",
                (worker_id,),
            )
            await conn.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,))

        await self._write("unregister_worker", unregister)

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        candidates: list[str] = []

        async def body(conn: Conn, retry: bool) -> _Outcome:
            dead = await _dead_local_workers(conn, worker)
            cur = await conn.execute(
                "WITH due AS (SELECT run_id FROM runs WHERE wake_at <= clock_timestamp() "
                f"AND status IN {_ACTIVE} AND (owner IS NULL OR lease_until < clock_timestamp() "
                "OR owner = ANY(%s)) AND workflow_name = ANY(%s) ORDER BY wake_at LIMIT %s "
                "FOR UPDATE SKIP LOCKED) UPDATE runs r SET owner = %s, "
                "lease_until = clock_timestamp() + %s * interval '1 second', "
                "wake_at = clock_timestamp() FROM due WHERE r.run_id = due.run_id "
                "RETURNING r.run_id",
                (dead, list(workflow_names), limit, worker.worker_id, float(lease_seconds)),
            )
            ids = [row[0] for row in await cur.fetchall()]
            candidates[:] = ids
            return _Outcome(await _select_runs(conn, ids), [])

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            # Whatever of the candidates this worker holds now is its to run.
            held = await _select_runs(conn, candidates)
            return _Outcome([r for r in held if r.owner == worker.worker_id], [])

        coro = self._transaction(body, what="claim_runs", recover=recover)
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
                "WITH held AS MATERIALIZED (SELECT run_id FROM runs WHERE owner = %s "
                "AND run_id = ANY(%s) ORDER BY run_id FOR UPDATE) UPDATE runs r "
                "SET lease_until = clock_timestamp() + %s * interval '1 second' "
                "FROM held WHERE r.run_id = held.run_id",
                (worker_id, list(run_ids), float(lease_seconds)),
            )
            await conn.execute(
                "UPDATE steps SET lease_until = clock_timestamp() + %s * interval '1 second' "
                "WHERE executor = %s AND step_id = ANY(%s)",
                (float(lease_seconds), worker_id, list(step_ids)),
            )
            await conn.execute(
                "UPDATE workers SET heartbeat_at = clock_timestamp() WHERE worker_id = %s",
                (worker_id,),
            )

        await self._write("renew_leases", renew)

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
            if known_seq is not None and await _max_seq(conn, run_id) > known_seq:
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

        await self._write("release_run", release)

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        async def fetch(conn: Conn) -> datetime | None:
            cur = await conn.execute(
                f"SELECT min(wake_at) FROM runs WHERE owner IS NULL AND status IN {_ACTIVE} "
                "AND workflow_name = ANY(%s)",
                (list(workflow_names),),
            )
            row = await cur.fetchone()
            return None if row is None else _utc_or_none(row[0])

        result: datetime | None = await self._call(self._read(fetch, "next_wake_at"))
        return result

    # -- the step queue ------------------------------------------------------------------------

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        async def body(conn: Conn, retry: bool) -> _Outcome:
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
                "AND executor IS NULL",
                (float(delay), run_id, list(step_ids)),
            )
            await conn.execute(
                "UPDATE runs SET updated_at = clock_timestamp() WHERE run_id = %s", (run_id,)
            )
            seq = await _max_seq(conn, run_id)
            change = RunChange(run_id, seq, run_status(row[1]), owner, steps_queued=True)
            await self._send(conn, [change])
            return _Outcome(None, [change])

        await self._call(self._transaction(body, what="queue_steps", idempotent=True))

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        async def body(conn: Conn, retry: bool) -> _Outcome:
            dead = await _dead_local_workers(conn, worker)
            cur = await conn.execute(
                "SELECT s.run_id, s.step_id, s.step_name, s.attempt, r.workflow_name, "
                "coalesce(r.started_at, r.created_at), "
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq) "
                "FROM steps s JOIN runs r ON r.run_id = s.run_id "
                f"WHERE r.status IN {_ACTIVE} AND s.step_name = ANY(%s) "
                "AND (s.queued_at <= clock_timestamp() OR (s.executor IS NOT NULL "
                "AND s.status = 'running' AND (s.lease_until < clock_timestamp() "
                "OR s.executor = ANY(%s)))) "
                "ORDER BY coalesce(s.queued_at, s.lease_until) LIMIT %s "
                "FOR UPDATE OF s SKIP LOCKED",
                (list(step_names), dead, limit),
            )
            claims: list[StepClaim] = []
            changes: list[RunChange] = []
            for run_id, step_id, name, attempt, workflow, started, payload in await cur.fetchall():
                start = NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": attempt + 1})
                result, _ = await _append(conn, run_id, [start], None)
                if not result.events:
                    continue
                await conn.execute(
                    "UPDATE steps SET executor = %s, queued_at = NULL, "
                    "lease_until = clock_timestamp() + %s * interval '1 second' "
                    "WHERE run_id = %s AND step_id = %s",
                    (worker.worker_id, float(lease_seconds), run_id, step_id),
                )
                claims.append(
                    StepClaim(
                        run_id,
                        step_id,
                        name,
                        attempt + 1,
                        bytes(payload or b""),
                        workflow,
                        _utc(started),
                    )
                )
                changes.append(
                    # No writer: the run's owner (maybe this very worker) must hear of it.
                    RunChange(run_id, result.events[-1].seq, result.run_status)
                )
            await self._send(conn, changes)
            return _Outcome(claims, changes)

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            # The claims that committed are those whose lease this worker holds now.
            held = []
            for claim in outcome.value:
                cur = await conn.execute(
                    "SELECT executor, attempt FROM steps WHERE run_id = %s AND step_id = %s",
                    (claim.run_id, claim.step_id),
                )
                row = await cur.fetchone()
                if row is not None and (row[0], row[1]) == (worker.worker_id, claim.attempt):
                    held.append(claim)
            return _Outcome(held, outcome.changes)

        coro = self._transaction(body, what="claim_steps", recover=recover)
        result: list[StepClaim] = await self._call(coro)
        return result

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        async def body(conn: Conn, retry: bool) -> _Outcome:
            cur = await conn.execute(
                "SELECT executor, status FROM steps WHERE run_id = %s AND step_id = %s FOR UPDATE",
                (run_id, outcome.correlation_id),
            )
            row = await cur.fetchone()
            if row is None or row[0] != claimer or row[1] != "running":
                return _Outcome(None, [])
            result, _ = await _append(conn, run_id, [outcome], None)
            if not result.events:
                return _Outcome(None, [])
            await conn.execute(
                "UPDATE steps SET executor = NULL, lease_until = NULL, queued_at = CASE "
                "WHEN %s::float8 IS NULL THEN NULL "
                "ELSE clock_timestamp() + %s::float8 * interval '1 second' END "
                "WHERE run_id = %s AND step_id = %s",
                (retry_after, retry_after, run_id, outcome.correlation_id),
            )
            change = RunChange(
                run_id,
                result.events[-1].seq,
                result.run_status,
                None,  # no writer: the run's owner (maybe this very worker) must hear of it
                steps_queued=retry_after is not None,
            )
            await self._send(conn, [change])
            return _Outcome(result.events[-1], [change])

        async def recover(conn: Conn, found: _Outcome) -> _Outcome | None:
            event: Event | None = found.value
            if event is None:
                return found
            return found if await _has_event(conn, run_id, event.seq, event.event_id) else None

        coro = self._transaction(body, what="finish_step", recover=recover)
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
        async def body(conn: Conn, retry: bool) -> _Outcome:
            change, start = await streams.write(conn, run_id, name, chunks, writer, close)
            await conn.execute(
                "SELECT pg_notify(%s, %s)", (self.channel, self._stream_payload(change))
            )
            return _Outcome((change.length, start), [], (change,))

        async def recover(conn: Conn, outcome: _Outcome) -> _Outcome | None:
            if not chunks:
                return outcome  # closing is idempotent
            start = outcome.value[1]
            found = await streams.committed(conn, run_id, name, start, chunks[0], writer)
            return outcome if found else None

        coro = self._transaction(body, what="write_stream", recover=recover)
        length, _ = await self._call(coro)
        return int(length)

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        page: StreamPage = await self._call(
            self._read(lambda c: streams.read(c, run_id, name, start_index, limit), "read_stream")
        )
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        found: list[StreamInfo] = await self._call(
            self._read(lambda c: streams.list_streams(c, run_id), "list_streams")
        )
        return found

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            self._appends.close()
            task, self._listen_task = self._listen_task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self._pool.close()
            # Calls still retrying end now; their callers get WorldClosedError.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for other in others:
                other.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        if self._loop.is_running():
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(shutdown(), self._loop))
        await asyncio.to_thread(self._stop_thread)


# -- the write path --------------------------------------------------------------------------


async def _db_now(conn: Conn) -> datetime:
    cur = await conn.execute("SELECT clock_timestamp()")
    row = await cur.fetchone()
    assert row is not None
    return _utc(row[0])


async def _webhook_response(conn: Conn, reply_to: str) -> bytes | None:
    cur = await conn.execute(
        "SELECT payload FROM webhook_responses WHERE reply_to = %s", (reply_to,)
    )
    row = await cur.fetchone()
    return None if row is None else bytes(row[0])


async def _has_event(conn: Conn, run_id: str, seq: int, event_id: str) -> bool:
    cur = await conn.execute(
        "SELECT event_id FROM events WHERE run_id = %s AND seq = %s", (run_id, seq)
    )
    row = await cur.fetchone()
    return row is not None and row[0] == event_id


async def _max_seq(conn: Conn, run_id: str) -> int:
    cur = await conn.execute("SELECT max(seq) FROM events WHERE run_id = %s", (run_id,))
    row = await cur.fetchone()
    return int(row[0] or 0) if row else 0


async def _append(
    conn: Conn,
    run_id: str,
    events: Sequence[NewEvent],
    owner: str | None,
    *,
    begin: bool = False,
) -> tuple[AppendResult, bool]:
    """Apply ``events``; the result and whether other processes should hear of it.

    Round trips: a batch of step and wait events only (the hot path: a step's result and
    the next step's creation and start) costs two, each a pipeline: the lock with the
    state the batch touches (and BEGIN, with ``begin``), then every write. Others apply
    event by event.
    """
    rows = rows_touched(events)
    # The row lock serialises appenders to this run, so seq stays contiguous, and everything
    # that changes steps and waits holds it: the state read below stays true until commit.
    # The log and that state are read by statements after the lock: one that waited for the
    # lock still has its old snapshot.
    async with conn.pipeline():
        if begin:
            await conn.execute("BEGIN")
        lock = await conn.execute(
            "SELECT status, owner FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
        )
        head = await conn.execute(
            "SELECT (SELECT max(seq) FROM events WHERE run_id = %s), clock_timestamp()",
            (run_id,),
        )
        touched = None
        if rows is not None:
            touched = await conn.execute(
                "SELECT 'step', step_id, status FROM steps WHERE run_id = %s "
                "AND step_id = ANY(%s) UNION ALL SELECT 'wait', wait_id, CASE WHEN "
                "completed_at IS NULL THEN 'waiting' ELSE 'completed' END FROM waits "
                "WHERE run_id = %s AND wait_id = ANY(%s)",
                (run_id, rows[0], run_id, rows[1]),
            )
    row = await lock.fetchone()
    if row is None:
        raise WorkflowRunNotFoundError(run_id)
    if owner is not None and row[1] != owner:
        raise LeaseLostError(run_id, owner)
    status = initial_status = run_status(row[0])
    log_row = await head.fetchone()
    assert log_row is not None
    seq = int(log_row[0] or 0)
    now: datetime = log_row[1]
    if touched is not None:
        states = {(r[0], r[1]): r[2] for r in await touched.fetchall()}
        plan = plan_rows(run_id, status, seq, now, events, states)
    else:
        plan, status = await _apply_each(conn, run_id, status, seq, now, events)
    # The hot path (a worker recording its own steps) leaves the runs row alone and tells
    # nobody else; other writers and status changes bump updated_at and notify.
    announce = bool(plan.accepted) and (owner is None or status is not initial_status)
    result = AppendResult(plan.accepted, plan.rejected, status)
    if not plan.accepted:
        return result, announce
    if announce:
        plan.writes.append(touch_run(run_id, plan.accepted, owner, status))
    async with conn.pipeline():
        sent = await send_writes(conn, plan.writes)
        await insert_events(conn, plan.accepted)
    check_writes(sent, f"run {run_id}")
    return result, announce


async def _apply_each(
    conn: Conn,
    run_id: str,
    status: RunStatus,
    seq: int,
    now: datetime,
    events: Sequence[NewEvent],
) -> tuple[RowPlan, RunStatus]:
    """Apply events that are not all row events one by one; the plan (its writes already
    done) and the run's status after them."""
    plan = RowPlan()
    for new in events:
        at = new.created_at if new.created_at is not None else now
        applied: NewEvent | str
        if status.terminal:
            applied = f"run is {status}"
        else:
            applied = await _apply(conn, run_id, status, seq + 1, new, at)
        if isinstance(applied, str):
            plan.rejected.append(Rejected(new, applied))
            continue
        seq += 1
        plan.accepted.append(
            Event(
                run_id,
                seq,
                new_id("evnt"),
                applied.type,
                applied.correlation_id,
                applied.payload,
                applied.attrs,
                _utc(at),
            )
        )
        if applied.type in RUN_TARGET:
            status = RUN_TARGET[applied.type]
            await _apply_run(conn, run_id, applied.type, seq, at)
    return plan, status


async def _apply_run(conn: Conn, run_id: str, kind: EventType, seq: int, at: datetime) -> None:
    target = str(RUN_TARGET[kind])
    if kind is EventType.RUN_STARTED:
        await conn.execute(
            "UPDATE runs SET status = %s, started_at = %s, updated_at = %s WHERE run_id = %s",
            (target, at, at, run_id),
        )
        return
    column = "output_seq" if kind is EventType.RUN_COMPLETED else "error_seq"
    await conn.execute(
        f"UPDATE runs SET status = %s, completed_at = %s, {column} = %s, owner = NULL, "
        "lease_until = NULL, wake_at = NULL, started_at = coalesce(started_at, %s), "
        "updated_at = %s WHERE run_id = %s",
        (target, at, seq, at, at, run_id),
    )
    # Terminal runs release their hook tokens.
    await conn.execute("DELETE FROM hooks WHERE run_id = %s", (run_id,))


async def _apply(
    conn: Conn, run_id: str, current: RunStatus, seq: int, new: NewEvent, at: datetime
) -> NewEvent | str:
    """Update the entity ``new`` touches; the event to record, or why it is refused.

    Inserts use ``ON CONFLICT DO NOTHING`` rather than catching errors: in PostgreSQL an
    error aborts the whole transaction.
    """
    kind, cid = new.type, new.correlation_id
    if kind in RUN_TRANSITIONS:
        if current not in RUN_TRANSITIONS[kind]:
            return f"run is {current}, cannot apply {kind}"
        return new
    if kind is EventType.RUN_CREATED:
        return "run_created is written by create_run only"
    if cid is None:
        return f"{kind} needs a correlation id"
    if kind is EventType.STEP_CREATED:
        cur = await conn.execute(*row_write(run_id, seq, new, at))
        return new if cur.rowcount else f"step {cid} already exists"
    if kind in STEP_TRANSITIONS:
        return await _apply_step(conn, run_id, seq, new, at)
    if kind is EventType.WAIT_CREATED:
        cur = await conn.execute(*row_write(run_id, seq, new, at))
        return new if cur.rowcount else f"wait {cid} already exists"
    if kind is EventType.WAIT_COMPLETED:
        cur = await conn.execute(*row_write(run_id, seq, new, at))
        return new if cur.rowcount else f"wait {cid} is not waiting"
    if kind is EventType.HOOK_CREATED:
        token = str(new.attrs["token"])
        while True:
            # Waits for a concurrent holder of the token to commit or roll back.
            cur = await conn.execute(
                "INSERT INTO hooks (hook_id, run_id, token, created_seq, created_at, attrs) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (cid, run_id, token, seq, at, dump_attrs(new.attrs)),
            )
            if cur.rowcount:
                return new
            cur = await conn.execute("SELECT run_id FROM hooks WHERE token = %s", (token,))
            holder = await cur.fetchone()
            if holder is not None:
                attrs = {**new.attrs, "holder_run_id": holder[0]}
                return NewEvent(EventType.HOOK_CONFLICT, cid, None, attrs, new.created_at)
            cur = await conn.execute("SELECT 1 FROM hooks WHERE hook_id = %s", (cid,))
            if await cur.fetchone() is not None:
                return f"hook {cid} already exists"
            # The holder let go between the two statements: try again.
    if kind is EventType.HOOK_RECEIVED:
        cur = await conn.execute(
            "SELECT 1 FROM hooks WHERE hook_id = %s AND run_id = %s", (cid, run_id)
        )
        return new if await cur.fetchone() else f"hook {cid} is not active"
    if kind is EventType.HOOK_DISPOSED:
        cur = await conn.execute(
            "DELETE FROM hooks WHERE hook_id = %s AND run_id = %s", (cid, run_id)
        )
        return new if cur.rowcount else f"hook {cid} is not active"
    return f"unknown event type {kind}"


async def _apply_step(
    conn: Conn, run_id: str, seq: int, new: NewEvent, at: datetime
) -> NewEvent | str:
    cid, kind = new.correlation_id, new.type
    cur = await conn.execute(*row_write(run_id, seq, new, at))
    if cur.rowcount:
        return new
    cur = await conn.execute(
        "SELECT status FROM steps WHERE run_id = %s AND step_id = %s", (run_id, cid)
    )
    row = await cur.fetchone()
    if row is None:
        return f"step {cid} does not exist"
    return f"step {cid} is {row[0]}, cannot apply {kind}"


async def _dead_local_workers(conn: Conn, me: WorkerInfo) -> list[str]:
    """Workers on this host whose process is gone: their leases need not be waited out."""
    cur = await conn.execute(
        "SELECT worker_id, pid FROM workers WHERE hostname = %s AND worker_id != %s",
        (me.hostname, me.worker_id),
    )
    dead = [
        worker_id for worker_id, pid in await cur.fetchall() if pid != me.pid and not pid_alive(pid)
    ]
    if dead:
        await conn.execute("DELETE FROM workers WHERE worker_id = ANY(%s)", (dead,))
    return dead


# -- rows to records -------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


async def _select_run(conn: Conn, run_id: str) -> RunRecord | None:
    cur = await conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.run_id = %s", (run_id,))
    row = await cur.fetchone()
    return None if row is None else _run_from_row(row)


async def _select_runs(conn: Conn, run_ids: Sequence[str]) -> list[RunRecord]:
    if not run_ids:
        return []
    cur = await conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.run_id = ANY(%s) ORDER BY r.wake_at, r.run_id",
        (list(run_ids),),
    )
    return [_run_from_row(row) for row in await cur.fetchall()]


async def _select_hooks(conn: Conn, where: str, params: tuple[Any, ...]) -> list[HookRecord]:
    cur = await conn.execute(
        "SELECT h.hook_id, h.run_id, h.token, e.payload, h.created_at, h.attrs FROM hooks h "
        "LEFT JOIN events e ON e.run_id = h.run_id AND e.seq = h.created_seq "
        f"WHERE {where} ORDER BY h.created_at, h.hook_id",
        params,
    )
    return [
        HookRecord(
            r[0],
            r[1],
            r[2],
            _bytes_or_none(r[3]),
            _utc(r[4]),
            bool(load_attrs(r[5]).get("webhook")),
        )
        for r in await cur.fetchall()
    ]


def _bytes_or_none(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_name=row[1],
        status=run_status(row[2]),
        created_at=_utc(row[3]),
        started_at=_utc_or_none(row[4]),
        completed_at=_utc_or_none(row[5]),
        updated_at=_utc(row[6]),
        last_seq=int(row[7] or 0),
        owner=row[8],
        wake_at=_utc_or_none(row[9]),
        input=bytes(row[10] or b""),
        output=_bytes_or_none(row[11]),
        error=_bytes_or_none(row[12]),
    )


def _event_from_row(row: Sequence[Any], attrs_cache: dict[str, Any]) -> Event:
    try:
        kind = EventType(row[3])
    except ValueError as exc:
        raise CorruptDataError(f"unknown event type {row[3]!r} in run {row[0]}") from exc
    text = row[6]
    attrs: dict[str, Any] = {}
    if text:
        # Long logs repeat the same few attribute texts ({"attempt":1}); parse each once.
        cached = attrs_cache.get(text)
        if cached is None:
            cached = attrs_cache[text] = load_attrs(text)
        attrs = cached
    return Event(row[0], row[1], row[2], kind, row[4], _bytes_or_none(row[5]), attrs, _utc(row[7]))


def _step_from_row(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        step_id=row[0],
        run_id=row[1],
        step_name=row[2],
        status=StepStatus(row[3]),
        attempt=int(row[4]),
        input=_bytes_or_none(row[5]),
        output=_bytes_or_none(row[6]),
        error=_bytes_or_none(row[7]),
        created_at=_utc(row[8]),
        started_at=_utc_or_none(row[9]),
        completed_at=_utc_or_none(row[10]),
        retry_at=_utc_or_none(row[11]),
        claimed_by=row[12],
        queued_at=_utc_or_none(row[13]),
    )
