"""The PostgreSQL World's queue calls: registering limits, reading usage, and the queued
part of a claim.

A claim takes each queue's advisory lock (transaction scoped) before it reads the queue's
usage, so two workers' claims of one queue never interleave and a limit can never be passed
by a count-then-claim race. It only tries the lock: a worker that finds another claiming from
the queue skips it this time rather than wait (the other takes what the limits allow; a run
ending anywhere, or the next poll, brings the next turn). Claims of different queues, and of
runs in none, never meet. The claim itself updates only rows still unheld.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import _queue_sql
from .._takeovers import log_takeovers
from ..limits import offer_size, pick, window_start
from ..records import QueueInfo, QueueLimits, QueueUsage, WorkerInfo
from ._dialect import DIALECT, moment
from ._transactions import Conn


async def register(conn: Conn, queues: Sequence[QueueLimits], now: float) -> None:
    at = DIALECT.time(now)
    async with conn.cursor() as cursor:
        await cursor.executemany(
            DIALECT.sql(_queue_sql.UPSERT_QUEUE), [_queue_sql.queue_params(q, at) for q in queues]
        )


async def list_queues(conn: Conn, now: float) -> list[QueueInfo]:
    cur = await conn.execute(_queue_sql.select_queues(DIALECT), (DIALECT.time(now),) * 4)
    return [_queue_sql.info_from_row(row, moment) for row in await cur.fetchall()]


async def usage(conn: Conn, name: str, now: float) -> QueueUsage | None:
    cur = await conn.execute(DIALECT.sql(_queue_sql.SELECT_QUEUE), (name,))
    row = await cur.fetchone()
    if row is None:
        return None
    return await _usage(conn, "", _queue_sql.limits_from_row(row), now)


async def _usage(conn: Conn, worker_id: str, limits: QueueLimits, now: float) -> QueueUsage:
    at = DIALECT.time(now)
    cur = await conn.execute(
        _queue_sql.places(DIALECT, limits.hold_while_waiting), (worker_id, limits.name, at)
    )
    places = await cur.fetchall()
    since = window_start(limits, now)
    starts: list[float] = []
    if since is not None:
        cur = await conn.execute(
            _queue_sql.recent_starts(DIALECT), (limits.name, DIALECT.time(since))
        )
        starts = [row[0].timestamp() for row in await cur.fetchall()]
    return _queue_sql.usage(limits, places, starts)


async def _try_lock(conn: Conn, channel: str, name: str) -> bool:
    cur = await conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtext(%s), hashtext(%s))", (channel, f"queue:{name}")
    )
    row = await cur.fetchone()
    return bool(row and row[0])


async def claim(
    conn: Conn,
    worker: WorkerInfo,
    workflow_names: Sequence[str],
    room: int,
    lease: float,
    now: float,
    channel: str,
) -> list[str]:
    """Runs of registered queues this worker takes, within their limits (up to ``room``)."""
    at, names = DIALECT.time(now), list(workflow_names)
    cur = await conn.execute(_queue_sql.due_queues(DIALECT), (at, at, names))
    taken: list[str] = []
    for row in await cur.fetchall():
        if len(taken) >= room:
            break
        limits = _queue_sql.limits_from_row(row)
        if not await _try_lock(conn, channel, limits.name):
            continue  # another worker is claiming from it right now: it takes what it can
        used = await _usage(conn, worker.worker_id, limits, now)
        wanted = offer_size(used, room - len(taken))
        if not wanted:
            continue
        found = await conn.execute(
            _queue_sql.candidates(DIALECT), (limits.name, at, at, names, wanted)
        )
        rows = await found.fetchall()
        offered = [_queue_sql.candidate(r, limits) for r in rows]
        chosen = pick(used, offered, room - len(taken))
        if chosen:
            lease_until = DIALECT.time(now + lease)
            params = (worker.worker_id, lease_until, at, at, chosen, at)
            cur_claim = await conn.execute(_queue_sql.claim(DIALECT), params)
            claimed = [r[0] for r in await cur_claim.fetchall()]
            log_takeovers(worker.worker_id, _queue_sql.holders(rows, claimed))
            taken += claimed
    return taken
