"""The SQL both Worlds share: the planner's writes as statements, and the common reads.

SQLite and PostgreSQL store the same tables and columns; they differ in how parameters are
written (``?`` or ``%s``), in the type of time columns (Unix seconds or ``timestamptz``),
and in how a statement takes a list of values. A ``Dialect`` holds those differences, so
each statement is written once, with ``?`` placeholders.

This module holds the ``Dialect``, what an append reads under the run's lock, the common
reads and the workers' statements; by subject, the others are ``_write_sql`` (the planner's
writes), ``_listing_sql`` (listing runs), ``_stream_sql`` and ``_schedule_sql``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._rows import Moment, step_status
from ._write_sql import RENDER
from .apply import (
    Lookups,
    RunState,
    Write,
)
from .records import (
    WorkerInfo,
)


@dataclass(frozen=True, slots=True, eq=False)
class Dialect:
    """What differs between the SQL of two databases that hold the same tables."""

    placeholder: str
    time: Callable[[float], Any]  # Unix seconds -> a time column's parameter
    stamp: Callable[[datetime], Any]  # an aware datetime -> a time column's parameter
    moment: Moment  # a time column's value -> an aware UTC datetime
    in_list: str  # SQL: "is one of the values in the list parameter", after a column
    list_param: Callable[[Sequence[str]], Any]  # that list, as the parameter
    elapsed: str  # SQL: seconds from the time column "{}" to the time parameter
    # SQL: a run's place in its queue, ascending: ``wake_at`` less ``AGING_SECONDS`` for
    # each level of priority (``_queue_sql.candidates`` says why), as the expression of the
    # index ``runs_queue_order`` spells it, so the index serves the order.
    queue_rank: str
    # SQL: the text column "{}" compared by code point (what an id prefix range needs), in
    # a form an index covers: SQLite's default; PostgreSQL's "C" collation.
    by_code_point: str = "{}"
    # SQL: the column "{}" in a condition no index may serve: SQLite, with no statistics,
    # picks an index on ``status`` that holds every sleeping run over the ``wake_at`` one.
    unindexed: str = "{}"
    # SQL after a table name: read it through the index "{}" (SQLite's INDEXED BY), where
    # SQLite, with no statistics, prefers an index that makes the statement read every run
    # waiting in a queue; PostgreSQL picks by its statistics.
    indexed_by: str = ""
    _texts: dict[str, str] = field(default_factory=dict)

    def sql(self, text: str) -> str:
        """``text`` (written with ``?``) in this dialect."""
        found = self._texts.get(text)
        if found is None:
            found = self._texts[text] = text.replace("?", self.placeholder)
        return found

    def render(self, write: Write) -> tuple[str, tuple[Any, ...], bool]:
        """``write`` as (SQL, parameters, whether it must change exactly one row)."""
        sql, params, checked = RENDER[type(write)](write, self.time)
        if self.placeholder != "?":
            sql = self.sql(sql)
        return sql, params, checked


# -- what an append reads under the run's lock ---------------------------------------------

SELECT_HEAD = (
    "SELECT status, owner, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id) "
    "FROM runs r WHERE r.run_id = ?"
)


def select_steps(dialect: Dialect) -> str:
    return dialect.sql(
        f"SELECT step_id, status FROM steps WHERE run_id = ? AND step_id {dialect.in_list}"
    )


def select_waits(dialect: Dialect) -> str:
    return dialect.sql(
        "SELECT wait_id, completed_at IS NOT NULL FROM waits WHERE run_id = ? "
        f"AND wait_id {dialect.in_list}"
    )


def select_hooks(dialect: Dialect) -> str:
    return dialect.sql(
        f"SELECT hook_id, run_id, token FROM hooks WHERE hook_id {dialect.in_list} "
        f"OR token {dialect.in_list}"
    )


def fill_state(
    state: RunState,
    needs: Lookups,
    steps: Iterable[Sequence[Any]],
    waits: Iterable[Sequence[Any]],
    hooks: Iterable[Sequence[Any]],
) -> RunState:
    """``state`` with the rows read by the three selects above (those ``needs`` asked for)."""
    for step_id, status in steps:
        state.steps[step_id] = step_status(status)
    for wait_id, completed in waits:
        state.waits[wait_id] = bool(completed)
    for hook_id, run_id, token in hooks:
        state.hooks[hook_id] = (run_id, token)
        if token in needs.tokens:
            state.tokens[token] = run_id
    return state


# A run's children that are cancelled with it: active and not detached.
ACTIVE_CHILDREN = (
    "SELECT run_id FROM runs WHERE parent_run_id = ? AND status IN ('pending', 'running') "
    "AND NOT detached ORDER BY run_id"
)


# -- reads ----------------------------------------------------------------------------------

RUN_COLUMNS = (
    "r.run_id, r.workflow_name, r.status, r.created_at, r.started_at, r.completed_at, "
    "r.updated_at, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), r.owner, "
    "r.wake_at, "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = 1), "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = r.output_seq), "
    "(SELECT payload FROM events e WHERE e.run_id = r.run_id AND e.seq = r.error_seq), "
    "r.deadline, r.queue, r.queue_key, r.priority, r.parent_run_id, r.detached, "
    "r.forked_from, r.code_version, r.diverged"
)
SELECT_RUN = f"SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id = ?"
_EVENT_COLUMNS = "run_id, seq, event_id, type, correlation_id, payload, attrs, created_at"
SELECT_EVENTS = f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"


def select_logs(dialect: Dialect) -> str:
    """The whole logs of the runs in the list parameter, run by run."""
    return dialect.sql(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id {dialect.in_list} ORDER BY run_id, seq"
    )


SELECT_STEPS = (
    "SELECT s.step_id, s.run_id, s.step_name, s.status, s.attempt, "
    "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq), "
    "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.output_seq), "
    "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.error_seq), "
    "s.created_at, s.started_at, s.completed_at, s.retry_at, s.claimed_by, s.queued_at "
    "FROM steps s WHERE s.run_id = ? ORDER BY s.input_seq"
)
SELECT_WAITS = (
    "SELECT wait_id, run_id, resume_at, created_at, completed_at FROM waits "
    "WHERE run_id = ? ORDER BY created_at, wait_id"
)
SELECT_HOOKS = (
    "SELECT h.hook_id, h.run_id, h.token, e.payload, h.created_at, h.attrs FROM hooks h "
    "LEFT JOIN events e ON e.run_id = h.run_id AND e.seq = h.created_seq "
    "WHERE {where} ORDER BY h.created_at, h.hook_id"
)


RECENT_WORKFLOWS = (
    "SELECT DISTINCT workflow_name FROM (SELECT workflow_name FROM runs "
    "ORDER BY created_at DESC, run_id DESC LIMIT ?) AS recent ORDER BY workflow_name"
)


def open_waits(dialect: Dialect) -> str:
    """The pending sleeps of the runs in the list parameter (``WAIT_COLUMNS``)."""
    return dialect.sql(
        "SELECT wait_id, run_id, resume_at, created_at, completed_at FROM waits "
        f"WHERE run_id {dialect.in_list} AND completed_at IS NULL ORDER BY resume_at, wait_id"
    )


def open_hooks(dialect: Dialect) -> str:
    """The active hooks of the runs in the list parameter (``HOOK_COLUMNS``)."""
    return dialect.sql(SELECT_HOOKS.format(where=f"h.run_id {dialect.in_list}"))


def open_steps(dialect: Dialect) -> str:
    """The steps not ended of the runs in the list parameter, without their payloads."""
    return dialect.sql(
        "SELECT run_id, step_id, step_name, status, attempt, started_at, retry_at FROM steps "
        f"WHERE run_id {dialect.in_list} AND status IN ('pending', 'running') "
        "ORDER BY created_at, step_id"
    )


# -- workers ---------------------------------------------------------------------------------

UPSERT_WORKER = (
    "INSERT INTO workers (worker_id, hostname, pid, workflows, lease_seconds, started_at, "
    "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET "
    "hostname = excluded.hostname, pid = excluded.pid, workflows = excluded.workflows, "
    "lease_seconds = excluded.lease_seconds, heartbeat_at = excluded.heartbeat_at"
)
# A worker's id is new in every process, so a process that died leaves a row nobody will
# update again (it is never asked whether it lives: its leases run out). Rows not heard
# from for this long go when a worker registers. Params: now - GONE_AFTER.
GONE_AFTER = 24 * 3600.0
FORGET_GONE_WORKERS = "DELETE FROM workers WHERE heartbeat_at < ?"
# By the (status, created_at) index: only active runs, however many have ended.
COUNT_ACTIVE_RUNS = (
    "SELECT status, count(*) FROM runs WHERE status IN ('pending', 'running') GROUP BY status"
)

SELECT_WORKERS = (
    "SELECT worker_id, hostname, pid, workflows, lease_seconds, started_at, heartbeat_at "
    "FROM workers ORDER BY started_at, worker_id"
)


# A pending run waiting for its start time (and held by nobody) is due now instead.
def wake_run(now: str) -> str:
    """Makes an unheld run due ``now`` (the SQL of it, as in ``resume_diverged``) if it was
    due later. Params: any ``now`` takes before the run id, the run id, then the last."""
    return (
        f"UPDATE runs SET wake_at = {now}, updated_at = {now} WHERE run_id = ? "
        f"AND status IN ('pending', 'running') AND owner IS NULL AND wake_at > {now}"
    )


# Parking a run whose code diverged: unheld and never due until resumed.
# Params: the divergence (JSON), its code version, run id, owner.
PARK_RUN = (
    "UPDATE runs SET diverged = ?, diverged_version = ?, owner = NULL, lease_until = NULL, "
    "wake_at = NULL WHERE run_id = ? AND owner = ? AND status IN ('pending', 'running')"
)


def resume_diverged(now: str, versions: str) -> str:
    """Makes due again the parked runs whose code version differs from the asking worker's;
    ``now`` the SQL of the moment they are due from (a database with a clock of its own
    gives its clock: a claim right after compares with that one), ``versions`` a FROM item
    ``v`` with a row per workflow: its ``name`` and the worker's ``version`` of it. Params:
    any ``now`` takes, then those of ``versions``. Returns the ids made due."""
    return (
        f"UPDATE runs SET diverged = NULL, diverged_version = NULL, wake_at = {now} "
        f"FROM {versions} WHERE workflow_name = v.name AND diverged IS NOT NULL "
        "AND status IN ('pending', 'running') "
        "AND (diverged_version IS NULL OR diverged_version <> v.version) RETURNING run_id"
    )


def next_wake_at(dialect: Dialect) -> str:
    """The earliest time an unowned active run becomes due for workers of the workflows in
    the list parameter, or reaches its deadline (whatever its workflow).

    Each part is its own ``min()`` over the column's index (``runs_due``, ``runs_deadline``):
    read in order, it stops at the first run that qualifies instead of reading every active
    run, and a worker asks this each time it has nothing to do.
    """
    status, workflow = dialect.unindexed.format("status"), dialect.unindexed.format("workflow_name")
    return dialect.sql(
        "SELECT min(t) FROM (SELECT min(wake_at) AS t FROM runs WHERE owner IS NULL "
        f"AND {status} IN ('pending', 'running') AND {workflow} {dialect.in_list} "
        "AND diverged IS NULL AND wake_at IS NOT NULL "
        "UNION ALL SELECT min(deadline) FROM runs WHERE owner IS NULL "
        f"AND {status} IN ('pending', 'running') AND deadline IS NOT NULL) AS due"
    )


def worker_params(info: WorkerInfo, now: Any) -> tuple[Any, ...]:
    """``UPSERT_WORKER`` parameters."""
    workflows = json.dumps(sorted(info.workflows))
    return (
        info.worker_id,
        info.hostname,
        info.pid,
        workflows,
        info.lease_seconds,
        now,
        now,
    )
