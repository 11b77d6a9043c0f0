"""The embedded World: one SQLite file in WAL mode, shared safely by several processes.

Every write goes through one writer thread per process that commits all queued work in a
single transaction (group commit) and waits out other processes' locks itself, so callers
never see "database is locked". Reads use their own connection and never block writes.
Other processes' commits are noticed by polling ``PRAGMA data_version``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ..errors import CorruptDataError, LeaseLostError, WorkflowRunNotFoundError, WorldClosedError
from ..ids import new_id, new_ids
from . import sqlite_streams as streams
from .base import ChangeListener, StreamListener
from .dbthread import DbThread, Job, retry_busy
from .records import (
    DELIVERY_EVENTS,
    RUN_TARGET,
    RUN_TRANSITIONS,
    STEP_TARGET,
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
    from_timestamp,
)
from .rows import dump_attrs, event_row, load_attrs, pid_alive, run_status

log = logging.getLogger("workflowkit.sqlite")
SCHEMA_VERSION = 4
# Columns added since schema 2, for upgrading older files in place (tables are created
# by the schema script itself).
_ADDED_COLUMNS = (
    ("steps", "executor", "TEXT"),
    ("steps", "lease_until", "REAL"),
    ("steps", "queued_at", "REAL"),
)
_UPGRADABLE = frozenset({2, 3})
DEFAULT_PATH = Path(".workflowkit") / "workflowkit.db"
# Past this size the checkpointer truncates the WAL (see SQLiteWorld._checkpoint).
WAL_LIMIT_BYTES = 16 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    updated_at REAL NOT NULL,
    output_seq INTEGER,
    error_seq INTEGER,
    owner TEXT,
    lease_until REAL,
    wake_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_due ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_updated ON runs (updated_at);
CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_workflow ON runs (workflow_name, run_id);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    correlation_id TEXT,
    payload BLOB,
    attrs TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    input_seq INTEGER,
    output_seq INTEGER,
    error_seq INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    retry_at REAL,
    executor TEXT,
    lease_until REAL,
    queued_at REAL,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS steps_queued ON steps (queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS steps_executor ON steps (executor) WHERE executor IS NOT NULL;
CREATE TABLE IF NOT EXISTS waits (
    run_id TEXT NOT NULL,
    wait_id TEXT NOT NULL,
    resume_at REAL NOT NULL,
    created_at REAL NOT NULL,
    completed_at REAL,
    PRIMARY KEY (run_id, wait_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hooks (
    hook_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    created_seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    attrs TEXT
);
CREATE INDEX IF NOT EXISTS hooks_run ON hooks (run_id);
CREATE TABLE IF NOT EXISTS webhook_responses (
    reply_to TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
"""

_RUN_COLUMNS = (
    "r.run_id, r.workflow_name, r.status, r.created_at, r.started_at, r.completed_at, "
    "r.updated_at, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), r.owner, "
    "r.wake_at, "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = 1), "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = r.output_seq), "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = r.error_seq)"
)
_ACTIVE = "('pending', 'running')"
# A list of names or ids passed as one JSON parameter: any number, one statement text.
_NAMES = "(SELECT value FROM json_each(?))"


def path_from_url(url: str | None) -> Path:
    """``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` or a plain path."""
    if not url:
        return DEFAULT_PATH
    if url.startswith("sqlite:"):
        parsed = urlparse(url)
        # sqlite:///rel.db -> "rel.db"; sqlite:////abs.db -> "/abs.db"
        raw = unquote(parsed.netloc + parsed.path)
        return Path(raw[1:] if raw.startswith("/") else raw)
    return Path(url)


def _check_schema_version(conn: sqlite3.Connection, path: Path) -> None:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    row = (
        conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() if has_meta else None
    )
    if row is None or int(row[0]) == SCHEMA_VERSION:
        return
    found = int(row[0])
    if found in _UPGRADABLE:
        for table, column, kind in _ADDED_COLUMNS:
            present = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
        return
    if found > SCHEMA_VERSION:
        raise CorruptDataError(
            f"{path} was written by a newer workflowkit (schema {found}; this version knows "
            f"{SCHEMA_VERSION}): upgrade workflowkit"
        )
    raise CorruptDataError(
        f"{path} was written by a pre-release development version of workflowkit (schema "
        f"{found}, now {SCHEMA_VERSION}) that has no migration: delete the file to start afresh"
    )


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = OFF")
    return conn


class SQLiteWorld:
    """The World on a local SQLite file (``WORKFLOWKIT_WORLD=sqlite:///path``)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        poll_interval: float = 0.01,
        checkpoint_interval: float = 1.0,
    ):
        self.path = Path(path) if path is not None else DEFAULT_PATH
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        self._checkpoint_interval = checkpoint_interval
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._listeners: list[ChangeListener] = []
        self._stream_listeners: list[StreamListener] = []
        self._listeners_lock = threading.Lock()
        self._init_schema()
        self._seen_version: int | None = None
        self._seen_at = time.time()
        # One write connection, used by the writer thread and, for a worker's writes, inline
        # on the worker's loop (no thread hop on the hot path); the lock keeps them apart.
        self._write_lock = threading.Lock()
        self._write_conn = self._open_writer()
        # A worker's writes queued on its loop for the commit at the end of the loop's turn.
        self._inline_jobs: dict[asyncio.AbstractEventLoop, list[Job[sqlite3.Connection]]] = {}
        self._writer: DbThread[sqlite3.Connection] = DbThread(
            "workflowkit-sqlite-writer",
            lambda: self._write_conn,
            transaction=self._locked_transaction,
            periodic=self._locked_notice,
            period=poll_interval,
        )
        self._reader: DbThread[sqlite3.Connection] = DbThread(
            "workflowkit-sqlite-reader", self._open
        )
        self._writer.start_and_wait()
        self._reader.start_and_wait()
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_forever, name="workflowkit-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteWorld({str(self.path)!r})"

    # -- connections and transactions ---------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        return _connect(self.path)

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        # Checkpoints run on their own thread; inside a commit they would stall that commit.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    def _init_schema(self) -> None:
        conn = _connect(self.path)
        try:
            retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"), what="enable WAL")

            def create() -> None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _check_schema_version(conn, self.path)
                    for statement in (_SCHEMA + streams.SCHEMA).split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

            retry_busy(create, what="create schema")
        finally:
            conn.close()

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[Job[sqlite3.Connection]]
    ) -> list[tuple[Any, BaseException | None]]:
        outcomes = self._run_jobs(conn, batch, isolate=False)
        if outcomes is None:  # a job failed: run them again, each in a savepoint
            outcomes = self._run_jobs(conn, batch, isolate=True)
            assert outcomes is not None
        changes: dict[str, RunChange] = {}
        stream_changes: dict[tuple[str, str], StreamChange] = {}
        for result, _ in outcomes:
            if isinstance(result, _Changed):
                for change in result.changes:
                    changes[change.run_id] = change
                for stream_change in result.stream_changes:
                    stream_changes[stream_change.run_id, stream_change.name] = stream_change
        if changes:
            self._notify(list(changes.values()))
        if stream_changes:
            self._notify_streams(list(stream_changes.values()))
        return [(r.value if isinstance(r, _Changed) else r, e) for r, e in outcomes]

    def _run_jobs(
        self, conn: sqlite3.Connection, batch: list[Job[sqlite3.Connection]], *, isolate: bool
    ) -> list[tuple[Any, BaseException | None]] | None:
        retry_busy(lambda: conn.execute("BEGIN IMMEDIATE"), what="begin write")
        outcomes: list[tuple[Any, BaseException | None]] = []
        for job in batch:
            if isolate:
                conn.execute("SAVEPOINT job")
            try:
                outcomes.append((job.fn(conn), None))
            except BaseException as exc:
                if not isolate:
                    conn.execute("ROLLBACK")
                    return None
                conn.execute("ROLLBACK TO job")
                outcomes.append((None, exc))
            if isolate:
                conn.execute("RELEASE job")
        try:
            retry_busy(lambda: conn.execute("COMMIT"), what="commit")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            return [(None, exc) for _ in batch]
        return outcomes

    def _locked_transaction(
        self, conn: sqlite3.Connection, batch: list[Job[sqlite3.Connection]]
    ) -> list[tuple[Any, BaseException | None]]:
        with self._write_lock:
            return self._transaction(conn, batch)

    def _locked_notice(self, conn: sqlite3.Connection) -> None:
        with self._write_lock:
            self._notice_other_processes(conn)

    def now(self) -> float:
        # One machine: its clock is the store's clock.
        return time.time()

    async def _write(self, fn: Callable[[sqlite3.Connection], Any], *, worker: bool = False) -> Any:
        """Run ``fn`` in a write transaction: on the writer thread, or, for a write a worker
        makes (the hot path), inline on the calling loop's thread."""
        if not worker:
            return await self._writer.call(fn)
        if self._closed:
            raise WorldClosedError("this World is closed")
        loop = asyncio.get_running_loop()
        jobs = self._inline_jobs.get(loop)
        if not jobs and _loop_is_idle(loop):
            # No other write could join this commit by waiting for the next turn: commit
            # now and save the loop a round.
            ((result, error),) = self._locked_transaction(self._write_conn, [Job(fn, None, None)])
            if error is not None:
                raise error
            return result
        future: asyncio.Future[Any] = loop.create_future()
        if jobs is None:
            jobs = self._inline_jobs[loop] = []
        jobs.append(Job(fn, loop, future))
        if len(jobs) == 1:
            # Everything the loop queues before this callback runs shares one commit.
            loop.call_soon(self._flush_inline, loop)
        return await future

    def _flush_inline(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._inline_jobs.pop(loop, [])
        try:
            outcomes = self._locked_transaction(self._write_conn, jobs)
        except BaseException as exc:  # the transaction itself failed: every job did
            outcomes = [(None, exc) for _ in jobs]
        for job, (result, error) in zip(jobs, outcomes, strict=True):
            if job.future is not None and not job.future.done():
                if error is not None:
                    job.future.set_exception(error)
                else:
                    job.future.set_result(result)

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return await self._reader.call(fn)

    # -- change notification ---------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        with self._listeners_lock:
            self._listeners.append(listener)

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

    def _notice_other_processes(self, conn: sqlite3.Connection) -> None:
        """Runs on the writer's connection, whose data_version moves only for other writers."""
        if not self._listeners and not self._stream_listeners:
            return
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._seen_version:
            return
        first, self._seen_version = self._seen_version is None, version
        since, self._seen_at = self._seen_at, time.time()
        if first:
            return
        rows = conn.execute(
            "SELECT r.run_id, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), "
            "r.status FROM runs r WHERE r.updated_at >= ?",
            (since - 1.0,),  # a second of slack for clocks of other processes
        ).fetchall()
        if rows:
            self._notify([RunChange(r[0], int(r[1] or 0), run_status(r[2])) for r in rows])
        if self._stream_listeners:
            stream_changes = streams.changed_since(conn, since - 1.0)
            if stream_changes:
                self._notify_streams(stream_changes)

    def _checkpoint_forever(self) -> None:
        conn = _connect(self.path)
        # A blocking checkpoint holds new writers back while it waits for readers: give up
        # soon and try again next time rather than stall the writers for long.
        conn.execute("PRAGMA busy_timeout = 100")
        try:
            while not self._stop.wait(self._checkpoint_interval):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            # A passive checkpoint never catches up with a writer that never pauses, and the
            # WAL starts over only once it has: it would grow without bound under steady
            # load. Past the limit, finish the job and truncate; the passive pass has
            # already copied nearly everything, so writers wait only briefly.
            if _file_size(self._wal_path) > WAL_LIMIT_BYTES:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- runs and events -------------------------------------------------------------------

    async def create_run(
        self, run_id: str, workflow_name: str, input: bytes, attrs: Mapping[str, Any]
    ) -> RunRecord:
        def create(conn: sqlite3.Connection) -> _Changed:
            now = time.time()
            conn.execute(
                "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, "
                "wake_at) VALUES (?, ?, 'pending', ?, ?, ?)",
                (run_id, workflow_name, now, now, now),
            )
            conn.execute(
                "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, "
                "attrs, created_at) VALUES (?, 1, ?, 'run_created', NULL, ?, ?, ?)",
                (run_id, new_id("evnt"), input, dump_attrs(attrs), now),
            )
            record = _select_run(conn, run_id)
            assert record is not None
            return _Changed(record, [RunChange(run_id, 1, RunStatus.PENDING)])

        result: RunRecord = await self._write(create)
        return result

    async def append(
        self, run_id: str, events: Sequence[NewEvent], *, owner: str | None = None
    ) -> AppendResult:
        def append(conn: sqlite3.Connection) -> _Changed:
            result = _append(conn, run_id, events, owner, time.time())
            change = RunChange(
                run_id, _last_seq(result, conn, run_id), result.run_status, writer=owner
            )
            return _Changed(result, [change])

        result: AppendResult = await self._write(append, worker=owner is not None)
        return result

    async def get_run(self, run_id: str) -> RunRecord | None:
        result: RunRecord | None = await self._read(lambda c: _select_run(c, run_id))
        return result

    async def list_runs(
        self,
        *,
        workflow_name: str | None = None,
        status: RunStatus | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[RunRecord]:
        clauses, params = [], []
        if workflow_name is not None:
            clauses.append("r.workflow_name = ?")
            params.append(workflow_name)
        if status is not None:
            clauses.append("r.status = ?")
            params.append(str(status))
        if before is not None:
            clauses.append("r.run_id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT {_RUN_COLUMNS} FROM runs r {where} ORDER BY r.run_id DESC LIMIT ?"

        def query(conn: sqlite3.Connection) -> list[RunRecord]:
            return [_run_from_row(row) for row in conn.execute(sql, (*params, limit))]

        result: list[RunRecord] = await self._read(query)
        return result

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        def query(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT run_id, seq, event_id, type, correlation_id, payload, attrs, created_at "
                "FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after_seq),
            )
            cache: dict[str, Any] = {}
            return [_event_from_row(row, cache) for row in rows]

        result: list[Event] = await self._read(query)
        return result

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        def query(conn: sqlite3.Connection) -> list[StepRecord]:
            rows = conn.execute(
                "SELECT s.step_id, s.run_id, s.step_name, s.status, s.attempt, "
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq),"
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.output_seq),"
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.error_seq),"
                "s.created_at, s.started_at, s.completed_at, s.retry_at, s.executor, s.queued_at "
                "FROM steps s WHERE s.run_id = ? ORDER BY s.input_seq",
                (run_id,),
            )
            return [_step_from_row(row) for row in rows]

        result: list[StepRecord] = await self._read(query)
        return result

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        def query(conn: sqlite3.Connection) -> list[WaitRecord]:
            rows = conn.execute(
                "SELECT wait_id, run_id, resume_at, created_at, completed_at FROM waits "
                "WHERE run_id = ? ORDER BY created_at, wait_id",
                (run_id,),
            )
            return [
                WaitRecord(r[0], r[1], _dt(r[2]), _dt(r[3]), from_timestamp(r[4])) for r in rows
            ]

        result: list[WaitRecord] = await self._read(query)
        return result

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        hooks: list[HookRecord] = await self._read(
            lambda c: _select_hooks(c, "h.token = ?", (token,))
        )
        return hooks[0] if hooks else None

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        where, params = ("h.run_id = ?", (run_id,)) if run_id else ("1", ())
        result: list[HookRecord] = await self._read(lambda c: _select_hooks(c, where, params))
        return result

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        def put(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "INSERT OR IGNORE INTO webhook_responses (reply_to, payload, created_at) "
                    "VALUES (?, ?, ?)",
                    (reply_to, payload, time.time()),
                ).rowcount
            )

        stored: bool = await self._write(put)
        return stored

    async def get_webhook_response(self, reply_to: str) -> bytes | None:
        def get(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT payload FROM webhook_responses WHERE reply_to = ?", (reply_to,)
            ).fetchone()
            return None if row is None else bytes(row[0])

        result: bytes | None = await self._read(get)
        return result

    # -- scheduling ----------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        def register(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                "INSERT OR REPLACE INTO workers (worker_id, hostname, pid, started_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?)",
                (info.worker_id, info.hostname, info.pid, now, now),
            )

        await self._write(register, worker=True)

    async def unregister_worker(self, worker_id: str) -> None:
        def unregister(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = ?", (worker_id,)
            )
            conn.execute(
                "UPDATE steps SET executor = NULL, lease_until = NULL, queued_at = ? "
                "WHERE executor = ?",
                (time.time(), worker_id),
            )
            conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))

        await self._write(unregister, worker=True)

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        names = _json_list(workflow_names)

        def claim(conn: sqlite3.Connection) -> list[RunRecord]:
            now = time.time()
            dead = _dead_local_workers(conn, worker)
            marks = ",".join("?" for _ in dead)
            dead_clause = f" OR r.owner IN ({marks})" if dead else ""
            rows = conn.execute(
                f"SELECT r.run_id FROM runs r WHERE r.wake_at <= ? AND r.status IN {_ACTIVE} "
                f"AND (r.owner IS NULL OR r.lease_until < ?{dead_clause}) "
                f"AND r.workflow_name IN {_NAMES} ORDER BY r.wake_at LIMIT ?",
                (now, now, *dead, names, limit),
            ).fetchall()
            claimed = []
            for (run_id,) in rows:
                conn.execute(
                    "UPDATE runs SET owner = ?, lease_until = ?, wake_at = ? WHERE run_id = ?",
                    (worker.worker_id, now + lease_seconds, now, run_id),
                )
                record = _select_run(conn, run_id)
                if record is not None:
                    claimed.append(record)
            return claimed

        result: list[RunRecord] = await self._write(claim, worker=True)
        return result

    async def renew_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        step_ids: Sequence[str],
        lease_seconds: float,
    ) -> None:
        runs, steps = _json_list(run_ids), _json_list(step_ids)

        def renew(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute(
                f"UPDATE runs SET lease_until = ? WHERE owner = ? AND run_id IN {_NAMES}",
                (now + lease_seconds, worker_id, runs),
            )
            conn.execute(
                f"UPDATE steps SET lease_until = ? WHERE executor = ? AND step_id IN {_NAMES}",
                (now + lease_seconds, worker_id, steps),
            )
            conn.execute(
                "UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?", (now, worker_id)
            )

        await self._write(renew, worker=True)

    async def release_run(
        self, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None = None
    ) -> None:
        def release(conn: sqlite3.Connection) -> None:
            row = conn.execute(
                "SELECT (SELECT max(seq) FROM events WHERE run_id = ?), owner FROM runs "
                "WHERE run_id = ?",
                (run_id, run_id),
            ).fetchone()
            if row is None or row[1] != owner:
                return
            wake = None if wake_at is None else wake_at.timestamp()
            if known_seq is not None and row[0] > known_seq:
                wake = time.time()  # something arrived after the worker last looked
            conn.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL, wake_at = ? WHERE run_id = ?",
                (wake, run_id),
            )

        await self._write(release, worker=True)

    # -- the step queue ----------------------------------------------------------------------

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        def queue(conn: sqlite3.Connection) -> _Changed:
            row = conn.execute(
                "SELECT owner, status, (SELECT max(seq) FROM events WHERE run_id = ?) FROM runs "
                "WHERE run_id = ?",
                (run_id, run_id),
            ).fetchone()
            if row is None:
                raise WorkflowRunNotFoundError(run_id)
            if row[0] != owner:
                raise LeaseLostError(run_id, owner)
            when = time.time() + delay
            conn.executemany(
                # Pending, or left running by a worker that died: not claimed by a worker.
                "UPDATE steps SET queued_at = ? WHERE run_id = ? AND step_id = ? "
                "AND status IN ('pending', 'running') AND executor IS NULL",
                [(when, run_id, step_id) for step_id in step_ids],
            )
            conn.execute("UPDATE runs SET updated_at = ? WHERE run_id = ?", (time.time(), run_id))
            change = RunChange(run_id, int(row[2] or 0), run_status(row[1]), owner, True)
            return _Changed(None, [change])

        await self._write(queue, worker=True)

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        names = frozenset(step_names)

        def claim(conn: sqlite3.Connection) -> _Changed:
            now = time.time()
            dead = _dead_local_workers(conn, worker)
            marks = ",".join("?" for _ in dead)
            dead_clause = f" OR s.executor IN ({marks})" if dead else ""
            rows = conn.execute(
                "SELECT s.run_id, s.step_id, s.step_name, s.attempt, r.workflow_name, "
                "coalesce(r.started_at, r.created_at), "
                "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq) "
                f"FROM steps s JOIN runs r ON r.run_id = s.run_id WHERE r.status IN {_ACTIVE} "
                "AND (s.queued_at <= ? OR (s.executor IS NOT NULL AND s.status = 'running' "
                f"AND (s.lease_until < ?{dead_clause}))) "
                "ORDER BY coalesce(s.queued_at, s.lease_until) LIMIT ?",
                (now, now, *dead, max(limit * 4, 64)),
            ).fetchall()
            claims: list[StepClaim] = []
            changes: list[RunChange] = []
            for run_id, step_id, name, attempt, workflow, started, payload in rows:
                if name not in names or len(claims) >= limit:
                    continue
                start = NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": attempt + 1})
                result = _append(conn, run_id, [start], None, now)
                if not result.events:
                    continue
                conn.execute(
                    "UPDATE steps SET executor = ?, lease_until = ?, queued_at = NULL "
                    "WHERE run_id = ? AND step_id = ?",
                    (worker.worker_id, now + lease_seconds, run_id, step_id),
                )
                claims.append(
                    StepClaim(
                        run_id,
                        step_id,
                        name,
                        attempt + 1,
                        bytes(payload or b""),
                        workflow,
                        _dt(started),
                    )
                )
                changes.append(
                    # No writer: the run's owner (maybe this very worker) must hear of it.
                    RunChange(run_id, result.events[-1].seq, result.run_status)
                )
            return _Changed(claims, changes)

        found: list[StepClaim] = await self._write(claim, worker=True)
        return found

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        def finish(conn: sqlite3.Connection) -> _Changed:
            row = conn.execute(
                "SELECT executor, status FROM steps WHERE run_id = ? AND step_id = ?",
                (run_id, outcome.correlation_id),
            ).fetchone()
            if row is None or row[0] != claimer or row[1] != "running":
                return _Changed(False, [])
            result = _append(conn, run_id, [outcome], None, time.time())
            if not result.events:
                return _Changed(False, [])
            queued = None if retry_after is None else time.time() + retry_after
            conn.execute(
                "UPDATE steps SET executor = NULL, lease_until = NULL, queued_at = ? "
                "WHERE run_id = ? AND step_id = ?",
                (queued, run_id, outcome.correlation_id),
            )
            seq, status = result.events[-1].seq, result.run_status
            # No writer: the run's owner (maybe this very worker) must hear of it.
            return _Changed(True, [RunChange(run_id, seq, status, None, queued is not None)])

        recorded: bool = await self._write(finish, worker=True)
        return recorded

    # -- streams ---------------------------------------------------------------------------

    async def write_stream(
        self,
        run_id: str,
        name: str,
        chunks: Sequence[NewChunk],
        *,
        writer: ChunkWriter | None = None,
        close: bool = False,
    ) -> int:
        def write(conn: sqlite3.Connection) -> _Changed:
            change = streams.write(conn, run_id, name, chunks, writer, close, time.time())
            return _Changed(change.length, (), (change,))

        length: int = await self._write(write, worker=writer is not None)
        return length

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        page: StreamPage = await self._read(
            lambda c: streams.read(c, run_id, name, start_index, limit)
        )
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        found: list[StreamInfo] = await self._read(lambda c: streams.list_streams(c, run_id))
        return found

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        names = _json_list(workflow_names)

        def query(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                f"SELECT min(wake_at) FROM runs WHERE owner IS NULL AND status IN {_ACTIVE} "
                f"AND workflow_name IN {_NAMES}",
                (names,),
            ).fetchone()
            return None if row is None else row[0]

        value: float | None = await self._read(query)
        return from_timestamp(value)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.stop()
        self._reader.stop()
        self._stop.set()
        self._checkpointer.join(timeout=5)


# -- the write path -----------------------------------------------------------------------


class _Changed:
    """A job's return value plus the changes to announce once it is committed."""

    __slots__ = ("changes", "stream_changes", "value")

    def __init__(
        self,
        value: Any,
        changes: Sequence[RunChange],
        stream_changes: Sequence[StreamChange] = (),
    ) -> None:
        self.value = value
        self.changes = changes
        self.stream_changes = stream_changes


def _last_seq(result: AppendResult, conn: sqlite3.Connection, run_id: str) -> int:
    if result.events:
        return result.events[-1].seq
    return _max_seq(conn, run_id)


def _json_list(names: Sequence[str]) -> str:
    return json.dumps(list(names))


def _loop_is_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether nothing else is queued to run on ``loop`` this turn.

    Reads asyncio's own queue of ready callbacks (``_ready``): a private attribute, so a
    loop without it (uvloop, say) counts as busy, and its writes take the batched path,
    which is correct, one loop turn slower.
    """
    return not getattr(loop, "_ready", True)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _max_seq(conn: sqlite3.Connection, run_id: str) -> int:
    row = conn.execute("SELECT max(seq) FROM events WHERE run_id = ?", (run_id,)).fetchone()
    return int(row[0] or 0)


def _append(
    conn: sqlite3.Connection,
    run_id: str,
    events: Sequence[NewEvent],
    owner: str | None,
    now: float,
) -> AppendResult:
    row = conn.execute(
        "SELECT status, owner, (SELECT max(seq) FROM events WHERE run_id = ?) FROM runs "
        "WHERE run_id = ?",
        (run_id, run_id),
    ).fetchone()
    if row is None:
        raise WorkflowRunNotFoundError(run_id)
    if owner is not None and row[1] != owner:
        raise LeaseLostError(run_id, owner)
    status = initial_status = run_status(row[0])
    seq = int(row[2] or 0)
    accepted: list[Event] = []
    rejected: list[Rejected] = []
    event_ids = new_ids("evnt", len(events))
    starts = _starts_with_creation(events)
    for new in events:
        at = new.created_at.timestamp() if new.created_at is not None else now
        if status.terminal:
            applied: NewEvent | str = f"run is {status}"
        elif new.correlation_id in starts and new.type in _FOLDED:
            applied = _apply_created(conn, run_id, seq + 1, new, at, starts)
        else:
            applied = _apply(conn, run_id, status, seq + 1, new, at)
        if isinstance(applied, str):
            rejected.append(Rejected(new, applied))
            continue
        seq += 1
        accepted.append(
            Event(
                run_id,
                seq,
                event_ids[len(accepted)],
                applied.type,
                applied.correlation_id,
                applied.payload,
                applied.attrs,
                _dt(at),
            )
        )
        if applied.type in RUN_TARGET:
            status = RUN_TARGET[applied.type]
            _apply_run(conn, run_id, applied.type, seq, at)
    conn.executemany(
        "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, attrs, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [event_row(e, e.created_at.timestamp()) for e in accepted],
    )
    # The hot path (a worker recording its own steps) leaves the runs row alone; other
    # writers and status changes bump updated_at so other processes notice them.
    if accepted and (owner is None or status is not initial_status):
        delivered = any(e.type in DELIVERY_EVENTS for e in accepted)
        wake = delivered and owner is None and not status.terminal
        conn.execute(
            f"UPDATE runs SET updated_at = ?{', wake_at = ?' if wake else ''} WHERE run_id = ?",
            (now, now, run_id) if wake else (now, run_id),
        )
    return AppendResult(accepted, rejected, status)


_FOLDED = (EventType.STEP_CREATED, EventType.STEP_STARTED)


def _starts_with_creation(events: Sequence[NewEvent]) -> dict[str, NewEvent]:
    """Steps this batch creates and then starts, with nothing between for them or the run.

    Such a step's row is inserted already running, which saves an UPDATE per step on the
    hot path; both events are still recorded.
    """
    created: set[str] = set()
    starts: dict[str, NewEvent] = {}
    for new in events:
        cid = new.correlation_id
        if new.type in RUN_TRANSITIONS:
            created.clear()  # a run transition between them decides whether the start counts
        elif cid is None:
            continue
        elif new.type is EventType.STEP_CREATED:
            created.add(cid)
        elif new.type is EventType.STEP_STARTED and cid in created:
            created.discard(cid)
            starts[cid] = new
        else:
            created.discard(cid)
    return starts


def _apply_created(
    conn: sqlite3.Connection,
    run_id: str,
    seq: int,
    new: NewEvent,
    at: float,
    starts: dict[str, NewEvent],
) -> NewEvent | str:
    """``_apply`` for a step in ``starts``: its creation inserts the started row."""
    cid = str(new.correlation_id)
    if new.type is EventType.STEP_STARTED:
        del starts[cid]
        return new  # the row went in running when the step was created
    start = starts[cid]
    started_at = start.created_at.timestamp() if start.created_at is not None else at
    try:
        conn.execute(
            "INSERT INTO steps (step_id, run_id, step_name, status, attempt, input_seq, "
            "created_at, started_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
            (
                cid,
                run_id,
                str(new.attrs.get("name", "")),
                int(start.attrs.get("attempt") or 1),
                seq,
                at,
                started_at,
            ),
        )
    except sqlite3.IntegrityError:
        del starts[cid]  # the start is judged on its own, against the existing row
        return f"step {cid} already exists"
    return new


def _apply_run(conn: sqlite3.Connection, run_id: str, kind: EventType, seq: int, at: float) -> None:
    target = RUN_TARGET[kind]
    if kind is EventType.RUN_STARTED:
        conn.execute(
            "UPDATE runs SET status = ?, started_at = ?, updated_at = ? WHERE run_id = ?",
            (target, at, at, run_id),
        )
        return
    column = "output_seq" if kind is EventType.RUN_COMPLETED else "error_seq"
    conn.execute(
        f"UPDATE runs SET status = ?, completed_at = ?, {column} = ?, owner = NULL, "
        "lease_until = NULL, wake_at = NULL, started_at = coalesce(started_at, ?), "
        "updated_at = ? WHERE run_id = ?",
        (target, at, seq, at, at, run_id),
    )
    # Terminal runs release their hook tokens.
    conn.execute("DELETE FROM hooks WHERE run_id = ?", (run_id,))


def _apply(
    conn: sqlite3.Connection,
    run_id: str,
    current: RunStatus,
    seq: int,
    new: NewEvent,
    at: float,
) -> NewEvent | str:
    """Update the entity ``new`` touches; the event to record, or why it is refused."""
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
        try:
            conn.execute(
                "INSERT INTO steps (step_id, run_id, step_name, status, attempt, input_seq, "
                "created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                (cid, run_id, str(new.attrs.get("name", "")), seq, at),
            )
        except sqlite3.IntegrityError:
            return f"step {cid} already exists"
        return new
    if kind in STEP_TRANSITIONS:
        return _apply_step(conn, run_id, seq, new, at)
    if kind is EventType.WAIT_CREATED:
        resume_at = float(new.attrs["resume_at"])
        try:
            conn.execute(
                "INSERT INTO waits (wait_id, run_id, resume_at, created_at) VALUES (?, ?, ?, ?)",
                (cid, run_id, resume_at, at),
            )
        except sqlite3.IntegrityError:
            return f"wait {cid} already exists"
        return new
    if kind is EventType.WAIT_COMPLETED:
        updated = conn.execute(
            "UPDATE waits SET completed_at = ? WHERE run_id = ? AND wait_id = ? "
            "AND completed_at IS NULL",
            (at, run_id, cid),
        ).rowcount
        return new if updated else f"wait {cid} is not waiting"
    if kind is EventType.HOOK_CREATED:
        token = str(new.attrs["token"])
        holder = conn.execute("SELECT run_id FROM hooks WHERE token = ?", (token,)).fetchone()
        if holder is not None:
            attrs = {**new.attrs, "holder_run_id": holder[0]}
            return NewEvent(EventType.HOOK_CONFLICT, cid, None, attrs, new.created_at)
        conn.execute(
            "INSERT INTO hooks (hook_id, run_id, token, created_seq, created_at, attrs) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (cid, run_id, token, seq, at, dump_attrs(new.attrs)),
        )
        return new
    if kind is EventType.HOOK_RECEIVED:
        found = conn.execute(
            "SELECT 1 FROM hooks WHERE hook_id = ? AND run_id = ?", (cid, run_id)
        ).fetchone()
        return new if found else f"hook {cid} is not active"
    if kind is EventType.HOOK_DISPOSED:
        deleted = conn.execute(
            "DELETE FROM hooks WHERE hook_id = ? AND run_id = ?", (cid, run_id)
        ).rowcount
        return new if deleted else f"hook {cid} is not active"
    return f"unknown event type {kind}"


# The WHERE clause of each step transition: the row must be in a state it may leave.
_STEP_WHERE = {
    kind: "WHERE run_id = ? AND step_id = ? AND status IN ("
    + ",".join(f"'{status}'" for status in sorted(allowed))
    + ")"
    for kind, allowed in STEP_TRANSITIONS.items()
}


def _apply_step(
    conn: sqlite3.Connection, run_id: str, seq: int, new: NewEvent, at: float
) -> NewEvent | str:
    # One conditional UPDATE; only when it matches nothing do we look up why.
    cid, kind = new.correlation_id, new.type
    target = str(STEP_TARGET[kind])
    where = _STEP_WHERE[kind]
    if kind is EventType.STEP_STARTED:
        attempt = new.attrs.get("attempt")
        updated = conn.execute(
            "UPDATE steps SET status = ?, attempt = coalesce(?, attempt + 1), "
            f"started_at = coalesce(started_at, ?), retry_at = NULL {where}",
            (target, attempt, at, run_id, cid),
        ).rowcount
    elif kind is EventType.STEP_RETRYING:
        updated = conn.execute(
            f"UPDATE steps SET status = ?, error_seq = ?, retry_at = ? {where}",
            (target, seq, new.attrs.get("retry_at"), run_id, cid),
        ).rowcount
    else:
        column = "output_seq" if kind is EventType.STEP_COMPLETED else "error_seq"
        updated = conn.execute(
            f"UPDATE steps SET status = ?, {column} = ?, completed_at = ? {where}",
            (target, seq, at, run_id, cid),
        ).rowcount
    if updated:
        return new
    row = conn.execute(
        "SELECT status FROM steps WHERE run_id = ? AND step_id = ?", (run_id, cid)
    ).fetchone()
    if row is None:
        return f"step {cid} does not exist"
    return f"step {cid} is {row[0]}, cannot apply {kind}"


def _dead_local_workers(conn: sqlite3.Connection, me: WorkerInfo) -> list[str]:
    """Workers on this host whose process is gone: their leases need not be waited out."""
    dead = []
    rows = conn.execute(
        "SELECT worker_id, pid FROM workers WHERE hostname = ? AND worker_id != ?",
        (me.hostname, me.worker_id),
    ).fetchall()
    for worker_id, pid in rows:
        if pid != me.pid and not pid_alive(pid):
            dead.append(worker_id)
    for worker_id in dead:
        conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
    return dead


# -- rows to records -----------------------------------------------------------------------


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _select_hooks(
    conn: sqlite3.Connection, where: str, params: tuple[Any, ...]
) -> list[HookRecord]:
    rows = conn.execute(
        "SELECT h.hook_id, h.run_id, h.token, e.payload, h.created_at, h.attrs FROM hooks h "
        "LEFT JOIN events e ON e.run_id = h.run_id AND e.seq = h.created_seq "
        f"WHERE {where} ORDER BY h.created_at",
        params,
    ).fetchall()
    return [
        HookRecord(
            r[0],
            r[1],
            r[2],
            None if r[3] is None else bytes(r[3]),
            _dt(r[4]),
            bool(load_attrs(r[5]).get("webhook")),
        )
        for r in rows
    ]


def _select_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs r WHERE r.run_id = ?", (run_id,))
    found = row.fetchone()
    return None if found is None else _run_from_row(found)


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_name=row[1],
        status=run_status(row[2]),
        created_at=_dt(row[3]),
        started_at=from_timestamp(row[4]),
        completed_at=from_timestamp(row[5]),
        updated_at=_dt(row[6]),
        last_seq=int(row[7]),
        owner=row[8],
        wake_at=from_timestamp(row[9]),
        input=bytes(row[10] or b""),
        output=None if row[11] is None else bytes(row[11]),
        error=None if row[12] is None else bytes(row[12]),
    )


def _event_from_row(row: Sequence[Any], attrs_cache: dict[str, Any] | None = None) -> Event:
    try:
        kind = EventType(row[3])
    except ValueError as exc:
        raise CorruptDataError(f"unknown event type {row[3]!r} in run {row[0]}") from exc
    text = row[6]
    attrs: dict[str, Any] | None = None
    if attrs_cache is not None and text:
        # Long logs repeat the same few attribute texts ({"attempt":1}); parse each once.
        attrs = attrs_cache.get(text)
        if attrs is None:
            attrs = attrs_cache[text] = load_attrs(text)
    if attrs is None:
        attrs = load_attrs(text)
    payload = row[5]
    return Event(
        row[0],
        row[1],
        row[2],
        kind,
        row[4],
        None if payload is None else bytes(payload),
        attrs,
        _dt(row[7]),
    )


def _step_from_row(row: Sequence[Any]) -> StepRecord:
    return StepRecord(
        step_id=row[0],
        run_id=row[1],
        step_name=row[2],
        status=StepStatus(row[3]),
        attempt=int(row[4]),
        input=None if row[5] is None else bytes(row[5]),
        output=None if row[6] is None else bytes(row[6]),
        error=None if row[7] is None else bytes(row[7]),
        created_at=_dt(row[8]),
        started_at=from_timestamp(row[9]),
        completed_at=from_timestamp(row[10]),
        retry_at=from_timestamp(row[11]),
        claimed_by=row[12],
        queued_at=from_timestamp(row[13]),
    )
