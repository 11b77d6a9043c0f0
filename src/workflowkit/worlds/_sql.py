"""The SQL both Worlds share: the planner's writes as statements, and the common reads.

SQLite and PostgreSQL store the same tables and columns; they differ in how parameters are
written (``?`` or ``%s``), in the type of time columns (Unix seconds or ``timestamptz``),
and in how a statement takes a list of values. A ``Dialect`` holds those differences, so
each statement is written once, here, with ``?`` placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ._rows import Moment, dump_attrs, step_status
from .apply import (
    ClaimStep,
    CompleteWait,
    DeleteHook,
    DeleteRunHooks,
    EndRun,
    EndRunSteps,
    EndStep,
    InsertHook,
    InsertRun,
    InsertStep,
    InsertWait,
    Lookups,
    RetryStep,
    RunState,
    StartRun,
    StartStep,
    TouchRun,
    UnclaimStep,
    Write,
)
from .records import (
    ChunkWriter,
    Event,
    NewChunk,
    RunQuery,
    RunStatus,
    ScheduleRecord,
    StepStatus,
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
    # SQL: the text column "{}" compared by code point (what an id prefix range needs), in
    # a form an index covers: SQLite's default; PostgreSQL's "C" collation.
    by_code_point: str = "{}"
    _texts: dict[str, str] = field(default_factory=dict)

    def sql(self, text: str) -> str:
        """``text`` (written with ``?``) in this dialect."""
        found = self._texts.get(text)
        if found is None:
            found = self._texts[text] = text.replace("?", self.placeholder)
        return found

    def render(self, write: Write) -> tuple[str, tuple[Any, ...], bool]:
        """``write`` as (SQL, parameters, whether it must change exactly one row)."""
        sql, params, checked = _RENDER[type(write)](write, self.time)
        if self.placeholder != "?":
            sql = self.sql(sql)
        return sql, params, checked


# -- the planner's writes ------------------------------------------------------------------

_Rendered = tuple[str, tuple[Any, ...], bool]
_Time = Callable[[float], Any]


def _insert_step(w: InsertStep, time: _Time) -> _Rendered:
    started = None if w.started_at is None else time(w.started_at)
    return (
        "INSERT INTO steps (run_id, step_id, step_name, status, attempt, input_seq, "
        "created_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            w.run_id,
            w.step_id,
            w.name,
            str(w.status),
            w.attempt,
            w.input_seq,
            time(w.created_at),
            started,
        ),
        True,
    )


def _start_step(w: StartStep, time: _Time) -> _Rendered:
    return (
        "UPDATE steps SET status = 'running', attempt = coalesce(CAST(? AS INTEGER), attempt + 1), "
        "started_at = coalesce(started_at, ?), retry_at = NULL "
        "WHERE run_id = ? AND step_id = ? AND status = ?",
        (w.attempt, time(w.at), w.run_id, w.step_id, str(w.was)),
        True,
    )


def _retry_step(w: RetryStep, time: _Time) -> _Rendered:
    retry_at = None if w.retry_at is None else time(w.retry_at)
    return (
        "UPDATE steps SET status = 'pending', error_seq = ?, retry_at = ? "
        "WHERE run_id = ? AND step_id = ? AND status = ?",
        (w.error_seq, retry_at, w.run_id, w.step_id, str(w.was)),
        True,
    )


_END_STEP = {
    StepStatus.COMPLETED: "UPDATE steps SET status = 'completed', output_seq = ?, completed_at = ? "
    "WHERE run_id = ? AND step_id = ? AND status = ?",
    StepStatus.FAILED: "UPDATE steps SET status = 'failed', error_seq = ?, completed_at = ? "
    "WHERE run_id = ? AND step_id = ? AND status = ?",
}


def _end_step(w: EndStep, time: _Time) -> _Rendered:
    return _END_STEP[w.status], (w.seq, time(w.at), w.run_id, w.step_id, str(w.was)), True


def _end_run_steps(w: EndRunSteps, time: _Time) -> _Rendered:
    return (
        "UPDATE steps SET status = ?, completed_at = ?, retry_at = NULL, queued_at = NULL, "
        "claimed_by = NULL, lease_until = NULL "
        "WHERE run_id = ? AND status IN ('pending', 'running')",
        (str(w.status), time(w.at), w.run_id),
        False,
    )


def _insert_wait(w: InsertWait, time: _Time) -> _Rendered:
    return (
        "INSERT INTO waits (run_id, wait_id, resume_at, created_at) VALUES (?, ?, ?, ?)",
        (w.run_id, w.wait_id, time(w.resume_at), time(w.created_at)),
        True,
    )


def _complete_wait(w: CompleteWait, time: _Time) -> _Rendered:
    return (
        "UPDATE waits SET completed_at = ? WHERE run_id = ? AND wait_id = ? "
        "AND completed_at IS NULL",
        (time(w.at), w.run_id, w.wait_id),
        True,
    )


def _insert_hook(w: InsertHook, time: _Time) -> _Rendered:
    return (
        "INSERT INTO hooks (hook_id, run_id, token, created_seq, created_at, attrs) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (w.hook_id, w.run_id, w.token, w.created_seq, time(w.created_at), dump_attrs(w.attrs)),
        True,
    )


def _delete_hook(w: DeleteHook, time: _Time) -> _Rendered:
    return "DELETE FROM hooks WHERE hook_id = ? AND run_id = ?", (w.hook_id, w.run_id), True


def _delete_run_hooks(w: DeleteRunHooks, time: _Time) -> _Rendered:
    return "DELETE FROM hooks WHERE run_id = ?", (w.run_id,), False


def _insert_run(w: InsertRun, time: _Time) -> _Rendered:
    at, o = time(w.at), w.options
    deadline = None if o.deadline is None else time(o.deadline.timestamp())
    return (
        "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at, "
        "deadline, queue, queue_key, priority, parent_run_id, detached, forked_from) "
        "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            w.run_id,
            w.workflow_name,
            at,
            at,
            time(w.wake_at),
            deadline,
            o.queue,
            o.key,
            o.priority,
            o.parent_run_id,
            o.detached,
            o.forked_from,
        ),
        True,
    )


def _claim_step(w: ClaimStep, time: _Time) -> _Rendered:
    return (
        "UPDATE steps SET claimed_by = ?, lease_until = ?, queued_at = NULL "
        "WHERE run_id = ? AND step_id = ?",
        (w.claimer, time(w.lease_until), w.run_id, w.step_id),
        True,
    )


def _unclaim_step(w: UnclaimStep, time: _Time) -> _Rendered:
    queued_at = None if w.queued_at is None else time(w.queued_at)
    return (
        "UPDATE steps SET claimed_by = NULL, lease_until = NULL, queued_at = ? "
        "WHERE run_id = ? AND step_id = ?",
        (queued_at, w.run_id, w.step_id),
        True,
    )


def _start_run(w: StartRun, time: _Time) -> _Rendered:
    at = time(w.at)
    return (
        "UPDATE runs SET status = 'running', started_at = ?, updated_at = ?, code_version = ? "
        "WHERE run_id = ?",
        (at, at, w.version, w.run_id),
        True,
    )


_END_RUN = {
    column: "UPDATE runs SET status = ?, completed_at = ?, "
    f"{column} = ?, owner = NULL, lease_until = NULL, wake_at = NULL, "
    "started_at = coalesce(started_at, ?), updated_at = ? WHERE run_id = ?"
    for column in ("output_seq", "error_seq")
}


def _end_run(w: EndRun, time: _Time) -> _Rendered:
    at = time(w.at)
    column = "output_seq" if w.status is RunStatus.COMPLETED else "error_seq"
    return _END_RUN[column], (str(w.status), at, w.seq, at, at, w.run_id), True


def _touch_run(w: TouchRun, time: _Time) -> _Rendered:
    at = time(w.at)
    if w.wake:
        return (
            "UPDATE runs SET updated_at = ?, wake_at = ? WHERE run_id = ?",
            (at, at, w.run_id),
            True,
        )
    return "UPDATE runs SET updated_at = ? WHERE run_id = ?", (at, w.run_id), True


_RENDER: dict[type, Callable[[Any, _Time], _Rendered]] = {
    InsertRun: _insert_run,
    ClaimStep: _claim_step,
    UnclaimStep: _unclaim_step,
    InsertStep: _insert_step,
    StartStep: _start_step,
    RetryStep: _retry_step,
    EndStep: _end_step,
    EndRunSteps: _end_run_steps,
    InsertWait: _insert_wait,
    CompleteWait: _complete_wait,
    InsertHook: _insert_hook,
    DeleteHook: _delete_hook,
    DeleteRunHooks: _delete_run_hooks,
    StartRun: _start_run,
    EndRun: _end_run,
    TouchRun: _touch_run,
}

INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, attrs, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def event_params(event: Event, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The ``events`` columns of ``event``, in ``INSERT_EVENT``'s order."""
    return (
        event.run_id,
        event.seq,
        event.event_id,
        str(event.type),
        event.correlation_id,
        event.payload,
        dump_attrs(event.attrs),
        stamp(event.created_at),
    )


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
SELECT_EVENTS = (
    "SELECT run_id, seq, event_id, type, correlation_id, payload, attrs, created_at "
    "FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"
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
    "INSERT INTO workers (worker_id, hostname, pid, workflows, lease_seconds, process_space, "
    "started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO "
    "UPDATE SET hostname = excluded.hostname, pid = excluded.pid, "
    "workflows = excluded.workflows, lease_seconds = excluded.lease_seconds, "
    "process_space = excluded.process_space, heartbeat_at = excluded.heartbeat_at"
)
# By the (status, created_at) index: only active runs, however many have ended.
COUNT_ACTIVE_RUNS = (
    "SELECT status, count(*) FROM runs WHERE status IN ('pending', 'running') GROUP BY status"
)

SELECT_WORKERS = (
    "SELECT worker_id, hostname, pid, workflows, lease_seconds, started_at, heartbeat_at, "
    "process_space FROM workers ORDER BY started_at, worker_id"
)
# Other workers whose pid means something here (same process space). Params: it, me.
SAME_SPACE_WORKERS = (
    "SELECT worker_id, pid FROM workers WHERE process_space = ? AND process_space <> '' "
    "AND worker_id <> ?"
)
# A pending run waiting for its start time (and held by nobody) is due now instead.
WAKE_RUN = (
    "UPDATE runs SET wake_at = ?, updated_at = ? WHERE run_id = ? "
    "AND status IN ('pending', 'running') AND owner IS NULL AND wake_at > ?"
)


# Parking a run whose code diverged: unheld and never due until resumed.
# Params: the divergence (JSON), its code version, run id, owner.
PARK_RUN = (
    "UPDATE runs SET diverged = ?, diverged_version = ?, owner = NULL, lease_until = NULL, "
    "wake_at = NULL WHERE run_id = ? AND owner = ? AND status IN ('pending', 'running')"
)
# Params: now, workflow name, version. Returns the ids made due.
RESUME_DIVERGED = (
    "UPDATE runs SET diverged = NULL, diverged_version = NULL, wake_at = ? "
    "WHERE workflow_name = ? AND diverged IS NOT NULL AND status IN ('pending', 'running') "
    "AND (diverged_version IS NULL OR diverged_version <> ?) RETURNING run_id"
)


def next_wake_at(dialect: Dialect) -> str:
    """The earliest time an unowned active run becomes due for workers of the workflows in
    the list parameter, or reaches its deadline (whatever its workflow)."""
    return dialect.sql(
        "SELECT min(t) FROM (SELECT wake_at AS t FROM runs WHERE owner IS NULL "
        f"AND status IN ('pending', 'running') AND workflow_name {dialect.in_list} "
        "AND diverged IS NULL "
        "UNION ALL SELECT deadline FROM runs WHERE owner IS NULL "
        "AND status IN ('pending', 'running') AND deadline IS NOT NULL) AS due"
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
        info.process_space,
        now,
        now,
    )


# -- streams ---------------------------------------------------------------------------------

# The run's status, and the stream's length and closing time (NULL if it has no row yet).
SELECT_STREAM_HEAD = (
    "SELECT r.status, s.length, s.closed_at FROM runs r LEFT JOIN streams s "
    "ON s.run_id = r.run_id AND s.name = ? WHERE r.run_id = ?"
)
INSERT_STREAM = (
    "INSERT INTO streams (run_id, name, length, created_at, updated_at) "
    "VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING"
)
INSERT_CHUNK = (
    "INSERT INTO stream_chunks (run_id, name, idx, kind, data, step_id, attempt, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_STREAM = (
    "UPDATE streams SET length = ?, updated_at = ?, closed_at = coalesce(closed_at, ?) "
    "WHERE run_id = ? AND name = ?"
)
SELECT_STREAMS = (
    "SELECT s.name, s.length, s.closed_at, s.created_at, s.updated_at, r.status "
    "FROM streams s JOIN runs r ON r.run_id = s.run_id WHERE s.run_id = ? ORDER BY s.name"
)
SELECT_CHANGED_STREAMS = "SELECT run_id, name, length, closed_at FROM streams WHERE updated_at >= ?"
# The condition (on stream_chunks aliased ``c``) for a chunk readers may see: written outside
# a step, or by the step's latest attempt while it runs or after it completed; never by a
# failed or abandoned attempt.
VISIBLE_CHUNK = (
    "(c.step_id IS NULL OR EXISTS (SELECT 1 FROM steps s WHERE s.run_id = c.run_id "
    "AND s.step_id = c.step_id AND s.attempt = c.attempt "
    "AND s.status IN ('running', 'completed')))"
)


def list_runs(
    dialect: Dialect, query: RunQuery, *, few_prefixed: bool = True
) -> tuple[str, tuple[Any, ...]]:
    """Runs newest first (by creation time, then id), filtered, paged after ``before``.

    The page cursor is a range an index serves (with a million runs, a page deep down reads
    about a page of index entries, not every run above it): "created at or before the
    cursor run, and not after it among runs created at the same time". So is an id prefix
    that ``few_prefixed`` ids have (``PREFIX_PROBE`` tells): ``prefix <= id < next(prefix)``,
    the few sorted by time; a prefix many ids have is instead checked on the runs read in
    time order, as a page of them comes soon.
    """
    clauses: list[str] = []
    params: list[Any] = []
    low, high = _prefix_range(query.id_prefix) if few_prefixed else (None, None)
    run_id = dialect.by_code_point.format("r.run_id")
    for clause, value in (
        ("r.workflow_name = ?", query.workflow_name),
        ("r.status = ?", None if query.status is None else str(query.status)),
        ("r.parent_run_id = ?", query.parent_run_id),
        ("r.created_at >= ?", _when(dialect, query.since)),
        ("r.created_at < ?", _when(dialect, query.until)),
        (f"{run_id} >= ?", low),
        (f"{run_id} < ?", high),
        ("substr(r.run_id, 1, length(?)) = ?", query.id_prefix if not high else None),
        ("r.queue = ?", query.queue),
        ("r.queue_key = ?", query.key),
        ("r.forked_from = ?", query.forked_from),
        ("r.diverged IS NOT NULL", True if query.diverged else None),
        ("r.diverged IS NULL", True if query.diverged is False else None),
        (
            f"r.created_at <= ({_CURSOR_TIME}) AND (r.created_at < ({_CURSOR_TIME}) "
            "OR r.run_id < ?)",
            query.before,
        ),
    ):
        if value is not None:
            clauses.append(clause)
            params.extend([value] * clause.count("?"))  # none for a test without parameters
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    order = "ORDER BY r.created_at DESC, r.run_id DESC"
    if query.id_prefix and not few_prefixed:
        # Ids first, from the index alone (the prefix is checked on each entry read), then
        # the page's rows: reading every row on the way was 5 times slower.
        ids = f"SELECT r.run_id FROM runs r {where}{order} LIMIT ?"
        sql = f"SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_id IN ({ids}) {order}"
    else:
        sql = f"SELECT {RUN_COLUMNS} FROM runs r {where}{order} LIMIT ?"
    return dialect.sql(sql), (*params, query.limit)


_CURSOR_TIME = "SELECT b.created_at FROM runs b WHERE b.run_id = ?"

# How many ids with a prefix are "few": sorting that many by time is quick.
FEW_PREFIXED = 1000


def prefix_probe(dialect: Dialect) -> str:
    """Counts ids in a prefix's range, up to ``FEW_PREFIXED`` (params: ``prefix_range``)."""
    run_id = dialect.by_code_point.format("run_id")
    return dialect.sql(
        f"SELECT count(*) FROM (SELECT 1 FROM runs WHERE {run_id} >= ? AND {run_id} < ? "
        f"LIMIT {FEW_PREFIXED}) AS prefixed"
    )


def prefix_range(prefix: str | None) -> tuple[str, str] | None:
    """``PREFIX_PROBE``'s parameters for ``prefix``; None if there is nothing to probe."""
    low, high = _prefix_range(prefix)
    return None if low is None or high is None else (low, high)


def _prefix_range(prefix: str | None) -> tuple[str | None, str | None]:
    """The ids starting with ``prefix``, as ``low <= id < high`` in code point order
    (``high`` None: no upper bound, for a prefix whose last character cannot grow; the
    prefix is then compared too)."""
    if prefix is None:
        return None, None
    if not prefix:
        return "", None
    last = ord(prefix[-1]) + 1
    if last > 0x10FFFF or 0xD800 <= last <= 0xDFFF:
        return prefix, None
    return prefix, prefix[:-1] + chr(last)


def _when(dialect: Dialect, moment: datetime | None) -> Any:
    return None if moment is None else dialect.time(moment.timestamp())


SELECT_CHUNKS = (
    "SELECT c.idx, c.kind, c.data FROM stream_chunks c WHERE c.run_id = ? AND c.name = ? "
    f"AND c.idx >= ? AND c.idx < ? AND {VISIBLE_CHUNK} ORDER BY c.idx"
)
# The index of the n-th visible chunk from the end (``OFFSET`` n - 1).
SELECT_FROM_END = (
    "SELECT c.idx FROM stream_chunks c WHERE c.run_id = ? AND c.name = ? "
    f"AND {VISIBLE_CHUNK} ORDER BY c.idx DESC LIMIT 1 OFFSET ?"
)


def chunk_rows(
    run_id: str,
    name: str,
    start: int,
    chunks: Sequence[NewChunk],
    writer: ChunkWriter | None,
    at: Any,
) -> list[tuple[Any, ...]]:
    """``INSERT_CHUNK`` parameters for ``chunks`` written from index ``start`` on."""
    step_id, attempt = (writer.step_id, writer.attempt) if writer else (None, None)
    return [
        (run_id, name, start + i, str(c.kind), c.data, step_id, attempt, at)
        for i, c in enumerate(chunks)
    ]


# -- schedules -------------------------------------------------------------------------------

SCHEDULE_COLUMNS = (
    "schedule_id, workflow_name, cron, timezone, input, catch_up, overlap, start_at, end_at, "
    "paused, static, next_tick, last_tick, last_run_id, buffered_tick, created_at, updated_at"
)
SELECT_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?"
SELECT_SCHEDULES = f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY schedule_id"
UPSERT_SCHEDULE = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_id) DO UPDATE SET "
    "workflow_name = excluded.workflow_name, cron = excluded.cron, "
    "timezone = excluded.timezone, input = excluded.input, catch_up = excluded.catch_up, "
    "overlap = excluded.overlap, start_at = excluded.start_at, end_at = excluded.end_at, "
    "paused = excluded.paused, static = excluded.static, next_tick = excluded.next_tick, "
    "last_tick = excluded.last_tick, last_run_id = excluded.last_run_id, "
    "buffered_tick = excluded.buffered_tick, updated_at = excluded.updated_at"
)
DELETE_SCHEDULE = "DELETE FROM schedules WHERE schedule_id = ?"
# A schedule's last run is active: ``overlap`` decides what its next tick does.
RUN_ACTIVE = "SELECT 1 FROM runs WHERE run_id = ? AND status IN ('pending', 'running')"


def due_schedules(dialect: Dialect) -> str:
    """Active schedules of the workflows in the list parameter with a tick due by the time
    parameter, or a buffered tick (due once the schedule's run ends), earliest first."""
    return dialect.sql(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE NOT paused "
        f"AND workflow_name {dialect.in_list} AND (next_tick <= ? OR buffered_tick IS NOT NULL) "
        "ORDER BY next_tick, schedule_id LIMIT ?"
    )


def schedules_due(dialect: Dialect) -> str:
    """The earliest next tick of the active schedules of the listed workflows, and whether
    any holds a buffered tick."""
    return dialect.sql(
        "SELECT min(next_tick), count(buffered_tick) FROM schedules WHERE NOT paused "
        f"AND workflow_name {dialect.in_list}"
    )


def schedule_params(record: ScheduleRecord, dialect: Dialect) -> tuple[Any, ...]:
    """``UPSERT_SCHEDULE`` parameters, in ``SCHEDULE_COLUMNS`` order."""

    def when(moment: datetime | None) -> Any:
        return None if moment is None else dialect.stamp(moment)

    return (
        record.schedule_id,
        record.workflow_name,
        record.cron,
        record.timezone,
        record.input,
        str(record.catch_up),
        str(record.overlap),
        when(record.start_at),
        when(record.end_at),
        record.paused,
        record.static,
        when(record.next_tick),
        when(record.last_tick),
        record.last_run_id,
        when(record.buffered_tick),
        dialect.stamp(record.created_at),
        dialect.stamp(record.updated_at),
    )
