"""The queue statements both Worlds share (``worlds.limits`` decides; these read and claim).

Each takes the World's time ``now`` as a parameter: a run is held while its lease lasts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ._rows import Moment
from ._sql import Dialect
from .limits import QueueCandidate
from .records import QueueInfo, QueueLimits, QueueUsage

_ACTIVE = "('pending', 'running')"
_QUEUE_COLUMNS = (
    "q.name, q.concurrency, q.per_key, q.per_worker, q.rate_count, q.rate_period, "
    "q.hold_while_waiting"
)

UPSERT_QUEUE = (
    "INSERT INTO queues (name, concurrency, per_key, per_worker, rate_count, rate_period, "
    "hold_while_waiting, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO "
    "UPDATE SET concurrency = excluded.concurrency, per_key = excluded.per_key, "
    "per_worker = excluded.per_worker, rate_count = excluded.rate_count, "
    "rate_period = excluded.rate_period, hold_while_waiting = excluded.hold_while_waiting, "
    "updated_at = excluded.updated_at"
)


def queue_params(limits: QueueLimits, now: Any) -> tuple[Any, ...]:
    return (
        limits.name,
        limits.concurrency,
        limits.per_key,
        limits.per_worker,
        limits.rate_count,
        limits.rate_period,
        limits.hold_while_waiting,
        now,
    )


def limits_from_row(row: Sequence[Any]) -> QueueLimits:
    name, concurrency, per_key, per_worker, count, period, hold = row[:7]
    return QueueLimits(
        name,
        concurrency,
        per_key,
        per_worker,
        count,
        None if period is None else float(period),
        bool(hold),
    )


# -- the claim ---------------------------------------------------------------------------------


def _unheld(dialect: Dialect) -> str:
    """A run no worker holds (as a condition on ``r``): params now."""
    return "(r.owner IS NULL OR r.lease_until < ?)"


@functools.cache
def due_queues(dialect: Dialect) -> str:
    """The registered queues with due runs no worker holds, of the listed workflows.
    Params: now, now, workflow names."""
    return dialect.sql(
        f"SELECT {_QUEUE_COLUMNS} FROM queues q WHERE EXISTS (SELECT 1 FROM runs r "
        f"WHERE r.queue = q.name AND r.status IN {_ACTIVE} AND {_unheld(dialect)} "
        f"AND r.wake_at <= ? AND r.diverged IS NULL AND r.workflow_name {dialect.in_list}) "
        "ORDER BY q.name"
    )


@functools.cache
def unregistered(dialect: Dialect) -> str:
    """``WITH RECURSIVE`` tables ending in ``unregistered(queue)``: the queues with active
    runs that no worker registered, whose runs start as if in no queue. It reads the first
    entry of ``runs_queue_active`` after each name in turn (a loose index scan): one read
    per queue, not one per run waiting in a queue. No params."""
    first = (
        f"SELECT r.queue FROM runs r{dialect.indexed_by.format('runs_queue_active')} "
        f"WHERE {{}} AND r.status IN {_ACTIVE} ORDER BY r.queue LIMIT 1"
    )
    return (
        f"WITH RECURSIVE named(queue) AS (SELECT ({first.format('r.queue IS NOT NULL')}) "
        f"UNION ALL SELECT ({first.format('r.queue > n.queue')}) FROM named n "
        "WHERE n.queue IS NOT NULL), unregistered(queue) AS (SELECT n.queue FROM named n "
        "WHERE n.queue IS NOT NULL AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = n.queue)) "
    )


@functools.cache
def places(dialect: Dialect, hold_while_waiting: bool) -> str:
    """Runs holding a place in the queue, by key, and how many the worker holds.
    Params: worker id, queue, now.

    Where only held runs hold places, they are found through the index of owned runs
    (``runs_owner``: as many as workers hold), not the queue's: SQLite, with no statistics,
    picked ``runs_queue_active`` and read every run waiting in the queue on each claim.
    """
    waiting = " OR r.status = 'running'" if hold_while_waiting else ""
    queue, status = "r.queue", "r.status"
    if not hold_while_waiting:
        queue, status = dialect.unindexed.format(queue), dialect.unindexed.format(status)
    return dialect.sql(
        "SELECT r.queue_key, count(*), sum(CASE WHEN r.owner = ? THEN 1 ELSE 0 END) "
        f"FROM runs r WHERE {queue} = ? AND {status} IN {_ACTIVE} AND ((r.owner IS NOT NULL "
        f"AND r.lease_until >= ?){waiting}) "
        "GROUP BY r.queue_key"
    )


@functools.cache
def recent_starts(dialect: Dialect) -> str:
    """First starts from the queue since the window began. Params: queue, window start."""
    return dialect.sql(
        "SELECT dequeued_at FROM runs WHERE queue = ? AND dequeued_at > ? ORDER BY dequeued_at"
    )


@functools.cache
def candidates(dialect: Dialect) -> str:
    """Due runs of the queue no worker holds, of the listed workflows, aged priority first,
    with the worker that held each last (its lease ran out) and its workflow (for
    ``holders``). Params: queue, now, now, workflow names, limit.

    Aged priority, ``priority + (now - wake_at) / AGING_SECONDS`` descending, orders runs
    exactly as ``wake_at - AGING_SECONDS * priority`` ascending does (``dialect.queue_rank``),
    whatever ``now`` is, and that is a value of the row alone: the index ``runs_queue_order``
    holds the queue's active runs in that order, so a claim reads the first due ones instead
    of sorting the whole backlog (with 100,000 runs waiting, a sort took ~100 ms a claim).
    SQLite, with no statistics, would rather read the queue's due runs through
    ``runs_due_queue`` and sort them.
    """
    runs = f"runs r{dialect.indexed_by.format('runs_queue_order')}"
    return dialect.sql(
        f"SELECT r.run_id, r.queue_key, r.dequeued_at IS NULL, r.status, r.owner, "
        f"r.workflow_name FROM {runs} "
        f"WHERE r.queue = ? AND r.status IN {_ACTIVE} AND {_unheld(dialect)} "
        f"AND r.wake_at <= ? AND r.diverged IS NULL AND r.workflow_name {dialect.in_list} "
        f"ORDER BY {dialect.queue_rank}, r.wake_at, r.run_id LIMIT ?"
    )


@functools.cache
def claim(dialect: Dialect) -> str:
    """Hold the listed runs, those still unheld (a claim of a run past its deadline, which
    ignores queues, may have taken one). Params: worker id, lease end, now, now, run ids,
    now."""
    return dialect.sql(
        "UPDATE runs SET owner = ?, lease_until = ?, wake_at = ?, "
        f"dequeued_at = COALESCE(dequeued_at, ?) WHERE run_id {dialect.in_list} "
        "AND (owner IS NULL OR lease_until < ?) RETURNING run_id"
    )


def usage(
    limits: QueueLimits, rows: Sequence[Sequence[Any]], starts: Sequence[float]
) -> QueueUsage:
    """``QueueUsage`` from the ``places`` rows and the ``recent_starts`` times."""
    by_key = {key: int(count) for key, count, _ in rows}
    mine = sum(int(held or 0) for _, _, held in rows)
    return QueueUsage(limits, sum(by_key.values()), by_key, mine, tuple(starts))


def candidate(row: Sequence[Any], limits: QueueLimits) -> QueueCandidate:
    run_id, key, first, status = row[:4]
    return QueueCandidate(
        run_id, key, bool(first), limits.hold_while_waiting and status == "running"
    )


def holders(
    rows: Sequence[Sequence[Any]], chosen: Sequence[str]
) -> list[tuple[str, str | None, str]]:
    """The chosen candidates, each with the worker that held it last and its workflow (for
    takeovers)."""
    held = {row[0]: (row[4], row[5]) for row in rows}
    return [(run_id, *held[run_id]) for run_id in chosen if run_id in held]


# -- what inspection reads -----------------------------------------------------------------------

SELECT_QUEUE = f"SELECT {_QUEUE_COLUMNS} FROM queues q WHERE q.name = ?"


@functools.cache
def select_queues(dialect: Dialect) -> str:
    """Every registered queue with its usage. Params: now, now, now, now."""
    return dialect.sql(
        f"SELECT {_QUEUE_COLUMNS}, "
        f"(SELECT count(*) FROM runs r WHERE r.queue = q.name AND r.status IN {_ACTIVE} "
        "AND ((r.owner IS NOT NULL AND r.lease_until >= ?) "
        "OR (q.hold_while_waiting AND r.status = 'running'))), "
        f"(SELECT count(*) FROM runs r WHERE r.queue = q.name AND r.status IN {_ACTIVE} "
        "AND r.owner IS NULL AND r.wake_at <= ?), "
        f"(SELECT min(r.wake_at) FROM runs r WHERE r.queue = q.name AND r.status IN {_ACTIVE} "
        "AND r.owner IS NULL AND r.wake_at <= ?), "
        "(SELECT count(*) FROM runs r WHERE r.queue = q.name AND q.rate_period IS NOT NULL "
        f"AND {dialect.elapsed.format('r.dequeued_at')} < q.rate_period) "
        "FROM queues q ORDER BY q.name"
    )


def info_from_row(row: Sequence[Any], moment: Moment) -> QueueInfo:
    running, waiting, oldest, recent = row[7:]
    oldest_at = None if oldest is None else moment(oldest)
    return QueueInfo(limits_from_row(row), int(running), int(waiting), oldest_at, int(recent))
