"""The embedded World: one SQLite file in WAL mode, shared safely by several processes.

Writes go through one write connection per process (``Writer``: group commit, a worker's
writes inline on its loop, other processes' commits noticed); reads use a connection of
their own on a reader thread and never block writes. A background thread keeps the WAL
short (``Checkpointer``). Because one writer per file is SQLite's own rule, a transaction
here is the run's lock the planner needs: what it reads stays true until it commits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

from ..._settings import redact_url
from ...errors import ConfigurationError
from .. import _payload_sql, _queue_sql, _retention_sql, _sql
from .._listeners import Listeners
from .._rows import divergence_json
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
    RunQuery,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    SchedulesDue,
    StepClaim,
    StepRecord,
    StoredPayload,
    StreamInfo,
    StreamPage,
    WaitRecord,
    WorkerInfo,
    WorkerRecord,
    from_timestamp,
)
from ..schedule_rules import Decision, TickInput
from . import _jobs, _schedules, _streams
from ._jobs import DIALECT
from ._liveness import WorkerLocks
from ._schema import MIGRATIONS, Checkpointer, connect, prepare
from ._threads import DbThread, InlineConnection
from ._writer import Changed, Writer

DEFAULT_PATH = Path(".workflowkit") / "workflowkit.db"
_ACTIVE = "('pending', 'running')"
T = TypeVar("T")
# The workflows' versions as one JSON object: {name: version}.
_RESUME_DIVERGED = _sql.resume_diverged(
    "?", "(SELECT key AS name, value AS version FROM json_each(?)) AS v"
)


def path_from_url(url: str | None) -> Path:
    """``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` or a plain path.

    Any other ``sqlite:`` form (a host, fewer slashes, no path, a query) is a
    ``ConfigurationError``: it is not guessed at.
    """
    if not url:
        return DEFAULT_PATH
    if url[:7].lower() != "sqlite:":
        return Path(url)
    path = urlsplit(url).path
    if not url[7:].startswith("///") or "?" in url or "#" in url or len(path) < 2:
        raise ConfigurationError(
            f"malformed SQLite URL {redact_url(url)!r}: write sqlite:///relative/file.db, "
            "sqlite:////absolute/file.db or a plain path (a file name with ? or # in it "
            "is written %3F or %23)"
        )
    return Path(unquote(path[1:]))  # "/rel.db" -> "rel.db"; "//abs.db" -> "/abs.db"


class SQLiteWorld:
    """The World on a local SQLite file (``WORKFLOWKIT_WORLD=sqlite:///path``)."""

    schema_version = MIGRATIONS[-1].version  # what a file is brought to on opening

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        poll_interval: float = 0.01,
        checkpoint_interval: float = 1.0,
    ):
        self.path = Path(path) if path is not None else DEFAULT_PATH
        self.path.parent.mkdir(parents=True, exist_ok=True)
        prepare(self.path)
        self._listeners = Listeners()
        self._checkpointer = Checkpointer(self.path, checkpoint_interval)
        self._writer = Writer(
            self.path, self._listeners, poll_interval, self._checkpointer.caught_up
        )
        self._reader: DbThread[sqlite3.Connection] = DbThread(
            "workflowkit-sqlite-reader", lambda: connect(self.path)
        )
        self._reader.start_and_wait()
        self._inline_reads = InlineConnection(connect(self.path))
        self._locks = WorkerLocks(self.path)
        self._closed = False

    def __repr__(self) -> str:
        return f"SQLiteWorld({str(self.path)!r})"

    def now(self) -> float:
        # One machine: its clock is the store's clock. Whole microseconds, as stored times
        # and datetimes are: a time compared with a stored one is on the same grid. (The
        # division is what ``datetime.timestamp()`` computes; ``round(t, 6)`` costs a
        # decimal conversion on every step.)
        return time.time_ns() // 1000 / 1_000_000

    async def _write(self, fn: Callable[[sqlite3.Connection], Any], *, worker: bool = False) -> Any:
        return await self._writer.write(fn, worker=worker)

    async def _read(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        """On the reader thread; a short read (``inline``) here if its connection is free."""
        if inline:
            done, value = self._inline_reads.try_run(fn)
            if done:
                return cast(T, value)
        return await self._reader.call(fn)

    # -- change notification ---------------------------------------------------------------

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.subscribe(listener)

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]:
        return self._listeners.subscribe_streams(listener)

    # -- runs and events -------------------------------------------------------------------

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

        def create(conn: sqlite3.Connection) -> Changed:
            return _jobs.create_run(
                conn, run_id, workflow_name, input, attrs, options, start, self.now(), lease
            )

        created: CreatedRun = await self._write(create)
        return created

    async def append(
        self,
        run_id: str,
        events: Sequence[NewEvent],
        *,
        owner: str | None = None,
        after: AppendAfter | None = None,
    ) -> AppendResult:
        def planned(presume: bool) -> Callable[[sqlite3.Connection], Changed]:
            return lambda conn: _jobs.append(
                conn, run_id, events, owner, self.now(), after, presume=presume
            )

        worker = owner is not None
        result: AppendResult
        try:
            result = await self._write(planned(True), worker=worker)
        except _jobs.PresumptionMissed:  # rolled back: decide again from the rows read
            result = await self._write(planned(False), worker=worker)
        return result

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._read(lambda c: _jobs.get_run(c, run_id), inline=True)

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
        query = RunQuery(
            workflow_name,
            status,
            parent_run_id,
            since,
            until,
            id_prefix,
            before,
            limit,
            queue,
            key,
            diverged,
            forked_from,
        )
        return await self._read(lambda c: _jobs.list_runs(c, query))

    async def get_events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        return await self._read(lambda c: _jobs.get_events(c, run_id, after_seq))

    async def get_logs(self, run_ids: Sequence[str]) -> dict[str, list[Event]]:
        return await self._read(lambda c: _jobs.get_logs(c, run_ids))

    async def count_active_runs(self) -> dict[RunStatus, int]:
        rows: list[tuple[str, int]] = await self._read(
            lambda c: c.execute(_sql.COUNT_ACTIVE_RUNS).fetchall()
        )
        return {RunStatus(status): int(count) for status, count in rows}

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        return await self._read(lambda c: _jobs.list_steps(c, run_id))

    async def list_waits(self, run_id: str) -> list[WaitRecord]:
        return await self._read(lambda c: _jobs.list_waits(c, run_id))

    async def recent_workflows(self, runs: int) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute(_sql.RECENT_WORKFLOWS, (runs,))]

        return await self._read(read)

    async def open_work(self, run_ids: Sequence[str]) -> OpenWork:
        if not run_ids:
            return OpenWork()
        return await self._read(lambda c: _jobs.open_work(c, run_ids))

    async def get_hook_by_token(self, token: str) -> HookRecord | None:
        hooks: list[HookRecord] = await self._read(
            lambda c: _jobs.list_hooks(c, "h.token = ?", (token,))
        )
        return hooks[0] if hooks else None

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        where, params = ("h.run_id = ?", (run_id,)) if run_id else ("1 = 1", ())
        return await self._read(lambda c: _jobs.list_hooks(c, where, params))

    async def put_webhook_response(self, reply_to: str, payload: bytes) -> bool:
        def put(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "INSERT INTO webhook_responses (reply_to, payload, created_at) "
                    "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (reply_to, payload, self.now()),
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

        return await self._read(get)

    # -- scheduling ----------------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        self._locks.hold(info.worker_id)
        gone = self._locks.take_gone()

        def register(conn: sqlite3.Connection) -> None:
            now = self.now()
            for worker_id in gone:  # they died holding runs: those are due again at once
                _jobs.hand_back(conn, worker_id, now)
            conn.execute(_sql.FORGET_GONE_WORKERS, (now - _sql.GONE_AFTER,))
            conn.execute(_sql.UPSERT_WORKER, _sql.worker_params(info, now))

        await self._write(register, worker=True)

    async def list_workers(self) -> list[WorkerRecord]:
        return await self._read(_jobs.list_workers)

    async def wake_run(self, run_id: str) -> bool:
        def wake(conn: sqlite3.Connection) -> Changed:
            now = self.now()
            if not conn.execute(_sql.wake_run("?"), (now, now, run_id, now)).rowcount:
                return Changed(False)
            head = conn.execute(_sql.SELECT_HEAD, (run_id,)).fetchone()
            return Changed(True, [RunChange(run_id, int(head[2] or 0), RunStatus.PENDING)])

        woken: bool = await self._write(wake)
        return woken

    async def register_queues(self, queues: Sequence[QueueLimits]) -> None:
        def register(conn: sqlite3.Connection) -> None:
            now = self.now()
            conn.executemany(
                _queue_sql.UPSERT_QUEUE, [_queue_sql.queue_params(q, now) for q in queues]
            )

        await self._write(register)

    async def list_queues(self) -> list[QueueInfo]:
        now = self.now()

        def read(conn: sqlite3.Connection) -> list[QueueInfo]:
            rows = conn.execute(_queue_sql.select_queues(_jobs.DIALECT), (now,) * 4).fetchall()
            return [_queue_sql.info_from_row(row, _jobs.DIALECT.moment) for row in rows]

        return await self._read(read)

    async def queue_usage(self, name: str) -> QueueUsage | None:
        now = self.now()
        return await self._read(lambda c: _jobs.queue_usage(c, name, now))

    async def expired_runs(
        self, ended_before: datetime, statuses: Sequence[RunStatus], limit: int
    ) -> list[str]:
        sql = _retention_sql.expired(_jobs.DIALECT, len(statuses))
        params = (*(str(s) for s in statuses), ended_before.timestamp(), limit)
        result: list[str] = await self._read(
            lambda conn: [row[0] for row in conn.execute(sql, params)]
        )
        return result

    async def delete_runs(self, run_ids: Sequence[str]) -> list[str]:
        ids = _jobs.DIALECT.list_param(run_ids)

        def delete(conn: sqlite3.Connection) -> list[str]:
            ended = [r[0] for r in conn.execute(_retention_sql.ended(_jobs.DIALECT), (ids,))]
            gone = _jobs.DIALECT.list_param(ended)
            for statement in _retention_sql.deletes(_jobs.DIALECT):
                conn.execute(statement, (gone,))
            return ended

        deleted: list[str] = await self._write(delete)
        return deleted

    async def purge_webhook_responses(self, before: datetime) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            return conn.execute(_retention_sql.PURGE_RESPONSES, (before.timestamp(),)).rowcount

        count: int = await self._write(purge)
        return count

    async def unregister_worker(self, worker_id: str) -> None:
        await self._write(lambda conn: _jobs.hand_back(conn, worker_id, self.now()), worker=True)
        self._locks.release(worker_id)

    async def claim_runs(
        self,
        worker: WorkerInfo,
        workflow_names: Sequence[str],
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[RunRecord]:
        names = DIALECT.list_param(workflow_names)
        result: list[RunRecord] = await self._write(
            lambda c: _jobs.claim_runs(c, worker, names, limit, lease_seconds, self.now()),
            worker=True,
        )
        return result

    async def renew_leases(
        self,
        worker_id: str,
        run_ids: Sequence[str],
        step_ids: Sequence[str],
        lease_seconds: float,
    ) -> None:
        runs, steps = DIALECT.list_param(run_ids), DIALECT.list_param(step_ids)
        gone = self._locks.take_gone()

        def renew(conn: sqlite3.Connection) -> None:
            now = self.now()
            for gone_id in gone:
                _jobs.hand_back(conn, gone_id, now)
            conn.execute(
                f"UPDATE runs SET lease_until = ? WHERE owner = ? AND run_id {DIALECT.in_list}",
                (now + lease_seconds, worker_id, runs),
            )
            conn.execute(
                "UPDATE steps SET lease_until = ? WHERE claimed_by = ? "
                f"AND step_id {DIALECT.in_list}",
                (now + lease_seconds, worker_id, steps),
            )
            conn.execute(
                "UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?", (now, worker_id)
            )

        await self._write(renew, worker=True)

    async def release_run(
        self, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None = None
    ) -> None:
        wake = None if wake_at is None else wake_at.timestamp()
        await self._write(
            lambda c: _jobs.release_run(c, run_id, owner, wake, known_seq, self.now()),
            worker=True,
        )

    async def park_run(self, run_id: str, owner: str, divergence: Divergence) -> bool:
        params = (divergence_json(divergence), divergence.version, run_id, owner)

        def park(conn: sqlite3.Connection) -> bool:
            return conn.execute(_sql.PARK_RUN, params).rowcount == 1

        parked: bool = await self._write(park)
        return parked

    async def resume_diverged(self, versions: Mapping[str, str]) -> list[str]:
        def resume(conn: sqlite3.Connection) -> Changed:
            params = (self.now(), json.dumps(dict(versions)))
            ids = [row[0] for row in conn.execute(_RESUME_DIVERGED, params)]
            changes = [RunChange(run_id, 0, RunStatus.RUNNING) for run_id in ids]
            return Changed(ids, changes)

        resumed: list[str] = await self._write(resume)
        return resumed

    async def next_wake_at(self, workflow_names: Sequence[str]) -> datetime | None:
        names = DIALECT.list_param(workflow_names)

        def query(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(_sql.next_wake_at(DIALECT), (names,)).fetchone()
            return None if row is None else row[0]

        value: float | None = await self._read(query)
        return from_timestamp(value)

    # -- the step queue ----------------------------------------------------------------------

    async def queue_steps(
        self, run_id: str, step_ids: Sequence[str], *, owner: str, delay: float = 0.0
    ) -> None:
        await self._write(
            lambda c: _jobs.queue_steps(c, run_id, step_ids, owner, self.now() + delay),
            worker=True,
        )

    async def claim_steps(
        self, worker: WorkerInfo, step_names: Sequence[str], *, limit: int, lease_seconds: float
    ) -> list[StepClaim]:
        names = DIALECT.list_param(step_names)
        found: list[StepClaim] = await self._write(
            lambda c: _jobs.claim_steps(c, worker, names, limit, lease_seconds, self.now()),
            worker=True,
        )
        return found

    async def finish_step(
        self, run_id: str, outcome: NewEvent, *, claimer: str, retry_after: float | None = None
    ) -> bool:
        recorded: bool = await self._write(
            lambda c: _jobs.finish_step(c, run_id, outcome, claimer, retry_after, self.now()),
            worker=True,
        )
        return recorded

    # -- schedules -------------------------------------------------------------------------

    async def change_schedule(self, schedule_id: str, decide: Decision) -> ScheduleRecord | None:
        record: ScheduleRecord | None = await self._write(
            lambda c: _schedules.change_schedule(c, schedule_id, decide, self.now())
        )
        return record

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        found: ScheduleRecord | None = await self._read(
            lambda c: _schedules.get_schedule(c, schedule_id)
        )
        return found

    async def list_schedules(self) -> list[ScheduleRecord]:
        found: list[ScheduleRecord] = await self._read(_schedules.list_schedules)
        return found

    async def fire_schedules(
        self,
        workflow_names: Sequence[str],
        input_for: TickInput,
        *,
        now: float | None = None,
        limit: int = 32,
    ) -> list[FiredTick]:
        names = DIALECT.list_param(workflow_names)

        def fire(conn: sqlite3.Connection) -> Changed:
            clock = self.now()
            at = clock if now is None else now
            return _schedules.fire_schedules(conn, names, input_for, at, limit, clock)

        fired: list[FiredTick] = await self._write(fire, worker=True)
        return fired

    async def schedules_due(self, workflow_names: Sequence[str]) -> SchedulesDue:
        names = DIALECT.list_param(workflow_names)
        tick, buffered = await self._read(lambda c: _schedules.schedules_due(c, names))
        return SchedulesDue(from_timestamp(tick), buffered > 0)

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
        def write(conn: sqlite3.Connection) -> Changed:
            change = _streams.write(conn, run_id, name, chunks, writer, close, self.now())
            return Changed(change.length, (), (change,))

        length: int = await self._write(write, worker=writer is not None)
        return length

    async def read_stream(
        self, run_id: str, name: str, start_index: int, limit: int = 1000
    ) -> StreamPage:
        page: StreamPage = await self._read(
            lambda c: _streams.read(c, run_id, name, start_index, limit)
        )
        return page

    async def list_streams(self, run_id: str) -> list[StreamInfo]:
        found: list[StreamInfo] = await self._read(lambda c: _streams.list_streams(c, run_id))
        return found

    # -- payloads, for re-encryption (worlds._payload_sql) ------------------------------------

    async def scan_payloads(
        self, place: str, after: Sequence[Any] | None, skip_prefix: bytes, limit: int
    ) -> list[StoredPayload]:
        spec = _payload_sql.PLACES[place]
        sql, params = _payload_sql.scan(spec, after, skip_prefix, limit, "?")

        def read(conn: sqlite3.Connection) -> list[StoredPayload]:
            return [_payload_sql.row_payload(spec, r) for r in conn.execute(sql, params)]

        found: list[StoredPayload] = await self._read(read)
        return found

    async def swap_payloads(self, swaps: Sequence[tuple[StoredPayload, bytes, str | None]]) -> int:
        def write(conn: sqlite3.Connection) -> int:
            done = 0
            for old, data, kind in swaps:
                spec = _payload_sql.PLACES[old.place]
                params = _payload_sql.swap_params(spec, old, data, kind)
                done += conn.execute(_payload_sql.swap(spec, "?"), params).rowcount
            return done

        swapped: int = await self._write(write)
        return swapped

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._reader.stop()
        self._inline_reads.close()
        self._checkpointer.stop()
        self._locks.release_all()
