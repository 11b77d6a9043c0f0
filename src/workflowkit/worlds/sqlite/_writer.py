"""The SQLite World's one write connection: group commit, worker writes inline, and what
other processes committed.

Every write is a job: a function run inside a transaction on the write connection. Jobs
that queue up while a transaction runs share the next one (group commit); a job that raises
is rolled back alone, through a savepoint, and the others still commit. A job returns
``Changed`` to have listeners told of its changes once the commit is done.

Jobs run on the writer thread, except a worker's own writes (the hot path): those run
inline on the worker's loop, with no thread hop, and those made in one turn of that loop
share a commit. Another write made alone (a client's start, say) also runs inline if the
connection is free and no other process holds SQLite's write lock; else, and for a burst
of writes, the writer thread takes it. A lock keeps the users of the connection apart.
The writer thread also polls ``PRAGMA data_version`` on that connection, which moves only
when another process commits, to tell listeners what other processes changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ...errors import WorldClosedError
from .._listeners import Listeners
from .._rows import run_status
from ..records import RunChange, StreamChange
from . import _streams
from ._schema import BUSY_TIMEOUT_MS, connect
from ._threads import DbThread, Job, retry_busy

Outcome = tuple[Any, BaseException | None]


class Changed(NamedTuple):
    """A job's value, and the changes to announce once it is committed."""

    value: Any
    changes: Sequence[RunChange] = ()
    stream_changes: Sequence[StreamChange] = ()


class Writer:
    def __init__(
        self,
        path: Path,
        listeners: Listeners,
        poll_interval: float,
        inline_allowed: Callable[[], bool] = lambda: True,
    ) -> None:
        self._listeners = listeners
        self._lock = threading.Lock()
        self._conn = connect(path)
        # Checkpoints run on their own thread; inside a commit they would stall that commit.
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._others = _OtherProcesses(listeners)
        # A worker's writes queued on its loop for the commit at the end of the loop's turn.
        self._inline: dict[asyncio.AbstractEventLoop, list[Job[sqlite3.Connection]]] = {}
        self._closed = False
        # Whether a lone write may commit on the caller's thread (not while the checkpointer
        # is behind). A caller writing without a pause would hold the GIL and the write lock
        # nearly all the time, and the WAL would outgrow its limit.
        self._inline_allowed = inline_allowed
        self._thread: DbThread[sqlite3.Connection] = DbThread(
            "workflowkit-sqlite-writer",
            lambda: self._conn,
            transaction=self._transaction,
            periodic=self._notice_others,
            period=poll_interval,
        )
        self._thread.start_and_wait()

    def close(self) -> None:
        self._closed = True
        self._thread.stop()

    async def write(self, fn: Callable[[sqlite3.Connection], Any], *, worker: bool) -> Any:
        """Run ``fn`` in a write transaction: on the writer thread, or inline on the calling
        loop's thread for a write a worker makes (the hot path) and for a lone write that
        would wait for nothing."""
        if not worker:
            if _loop_is_idle(asyncio.get_running_loop()) and self._inline_allowed():
                # A lone write: here if it waits for nothing, saving two thread hand-offs.
                # A burst goes to the writer thread, to share its commits.
                done, value = self._try_alone(fn)
                if done:
                    return value
            return await self._thread.call(fn)
        if self._closed:
            raise WorldClosedError("this World is closed")
        loop = asyncio.get_running_loop()
        jobs = self._inline.get(loop)
        if not jobs and _loop_is_idle(loop):
            # No other write could join this commit by waiting for the next turn: commit
            # now and save the loop a round.
            return self._alone(fn)
        future: asyncio.Future[Any] = loop.create_future()
        if jobs is None:
            jobs = self._inline[loop] = []
        jobs.append(Job(fn, loop, future))
        if len(jobs) == 1:
            # Everything the loop queues before this callback runs shares one commit.
            loop.call_soon(self._flush_inline, loop)
        return await future

    def _flush_inline(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._inline.pop(loop, [])
        try:
            outcomes = self._transaction(self._conn, jobs)
        except BaseException as exc:  # the transaction itself failed: every job did
            outcomes = [(None, exc) for _ in jobs]
        for job, (result, error) in zip(jobs, outcomes, strict=True):
            if job.future is not None and not job.future.done():
                if error is not None:
                    job.future.set_exception(error)
                else:
                    job.future.set_result(result)

    def _try_alone(self, fn: Callable[[sqlite3.Connection], Any]) -> tuple[bool, Any]:
        """``fn`` committed on the calling thread if that waits for nothing: neither for this
        process's other writes nor for another process's lock. Else (False, None)."""
        if self._closed or not self._lock.acquire(blocking=False):
            return False, None
        try:
            conn = self._conn
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return False, None  # another process writes: the writer thread waits for it
            finally:
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            result = _commit_one(conn, fn)
            return True, self._told(result)
        finally:
            self._lock.release()

    # -- transactions ----------------------------------------------------------------------

    def _alone(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """One job in a transaction of its own, on the calling thread (the hot path)."""
        with self._lock:
            return self._told(_run_one(self._conn, fn))

    def _told(self, result: Any) -> Any:
        """A committed job's value, its changes told (under the lock: in commit order)."""
        if not isinstance(result, Changed):
            return result
        if result.changes:
            self._listeners.runs.notify(result.changes)
        if result.stream_changes:
            self._listeners.streams.notify(result.stream_changes)
        return result.value

    def _transaction(
        self, conn: sqlite3.Connection, batch: list[Job[sqlite3.Connection]]
    ) -> list[Outcome]:
        with self._lock:
            outcomes = _run_jobs(conn, batch, isolate=False)
            if outcomes is None:  # a job failed: run them again, each in a savepoint
                outcomes = _run_jobs(conn, batch, isolate=True)
                assert outcomes is not None
            # Still under the lock, so listeners hear of commits in commit order.
            self._announce(outcomes)
        return [(r.value, e) if isinstance(r, Changed) else (r, e) for r, e in outcomes]

    def _announce(self, outcomes: list[Outcome]) -> None:
        if len(outcomes) == 1:  # the hot path: one job, one change
            result = outcomes[0][0]
            if isinstance(result, Changed) and not result.stream_changes:
                if result.changes:
                    self._listeners.runs.notify(result.changes)
                return
        changes: dict[str, RunChange] = {}
        stream_changes: dict[tuple[str, str], StreamChange] = {}
        for result, _ in outcomes:
            if isinstance(result, Changed):
                for change in result.changes:
                    changes[change.run_id] = change
                for stream_change in result.stream_changes:
                    stream_changes[stream_change.run_id, stream_change.name] = stream_change
        if changes:
            self._listeners.runs.notify(list(changes.values()))
        if stream_changes:
            self._listeners.streams.notify(list(stream_changes.values()))

    def _notice_others(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            self._others.notice(conn)


def _run_one(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    _busy_retried(conn, "BEGIN IMMEDIATE")
    return _commit_one(conn, fn)


def _commit_one(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """``fn`` in the transaction just begun, then COMMIT (or ROLLBACK if either fails)."""
    try:
        result = fn(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        _busy_retried(conn, "COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise
    return result


def _busy_retried(conn: sqlite3.Connection, sql: str) -> None:
    """``sql``, waiting out other processes' locks (tried once at first: the usual case)."""
    try:
        conn.execute(sql)
    except sqlite3.OperationalError:
        retry_busy(lambda: conn.execute(sql), what=sql.lower())


def _run_jobs(
    conn: sqlite3.Connection, batch: list[Job[sqlite3.Connection]], *, isolate: bool
) -> list[Outcome] | None:
    _busy_retried(conn, "BEGIN IMMEDIATE")
    outcomes: list[Outcome] = []
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
        _busy_retried(conn, "COMMIT")
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        return [(None, exc) for _ in batch]
    return outcomes


def _loop_is_idle(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether nothing else is queued to run on ``loop`` this turn.

    Reads asyncio's own queue of ready callbacks (``_ready``): a private attribute, so a
    loop without it (uvloop, say) counts as busy, and its writes take the batched path,
    which is correct, one loop turn slower.
    """
    return not getattr(loop, "_ready", True)


class _OtherProcesses:
    """Tells listeners what other processes committed, from the write connection, whose
    ``data_version`` moves only when another connection commits."""

    def __init__(self, listeners: Listeners) -> None:
        self._listeners = listeners
        self._seen_version: int | None = None
        self._seen_at = time.time()

    def notice(self, conn: sqlite3.Connection) -> None:
        if not self._listeners:
            return
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._seen_version:
            return
        first, self._seen_version = self._seen_version is None, version
        since, self._seen_at = self._seen_at, time.time()
        if first:
            return
        since -= 1.0  # a second of slack for the clocks of other processes
        rows = conn.execute(
            "SELECT r.run_id, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), "
            "r.status FROM runs r WHERE r.updated_at >= ?",
            (since,),
        ).fetchall()
        self._listeners.runs.notify(
            [RunChange(r[0], int(r[1] or 0), run_status(r[2])) for r in rows]
        )
        if self._listeners.streams:
            self._listeners.streams.notify(_streams.changed_since(conn, since))
