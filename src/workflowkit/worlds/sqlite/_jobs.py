"""What each call of the SQLite World does on its connection: the writes (run inside the
writer's transaction, which the single writer makes exclusive: the run's lock) and the reads.

Decisions come from the planner (``worlds.apply``); statements from ``worlds._sql`` and its
siblings.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ...errors import CorruptDataError, LeaseLostError, WorkflowRunNotFoundError
from .. import _listing_sql, _queue_sql, _sql, _write_sql
from .._rows import (
    event_from_row,
    hook_from_row,
    logs_from_rows,
    open_step_from_row,
    run_from_row,
    run_status,
    step_from_row,
    step_status,
    wait_from_row,
    worker_from_row,
)
from .._takeovers import log_takeovers
from ..apply import (
    Family,
    Lookups,
    Presumed,
    RunState,
    StepCandidate,
    check_owner,
    lookups,
    plan_append,
    plan_claim_step,
    plan_create_run,
    plan_finish_step,
    presume_rows,
)
from ..limits import AGING_SECONDS, offer_size, pick, window_start
from ..records import (
    AppendAfter,
    Event,
    HookRecord,
    Lease,
    NewEvent,
    OpenWork,
    QueueLimits,
    QueueUsage,
    RunChange,
    RunOptions,
    RunQuery,
    RunRecord,
    StepClaim,
    StepRecord,
    WaitRecord,
    WorkerInfo,
    WorkerRecord,
)
from ._writer import Changed


def _moment(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


DIALECT = _sql.Dialect(
    placeholder="?",
    # Unix seconds as they come: the World's clock (``SQLiteWorld.now``) and datetimes
    # are whole microseconds, so a time read back compares equal to the stored one.
    time=float,
    stamp=datetime.timestamp,
    moment=_moment,
    in_list="IN (SELECT value FROM json_each(?))",
    list_param=lambda values: json.dumps(list(values)),
    elapsed="(? - {})",
    queue_rank=f"(r.wake_at - r.priority * {AGING_SECONDS:g})",  # as migration 0009
    unindexed="+{}",
    indexed_by=" INDEXED BY {}",
)
_ACTIVE = "('pending', 'running')"
_SELECT_WAITS = _sql.select_waits(DIALECT)
_SELECT_HOOKS = _sql.select_hooks(DIALECT)


# -- the event log -------------------------------------------------------------------------


def create_run(
    conn: sqlite3.Connection,
    run_id: str,
    workflow_name: str,
    input: bytes,
    attrs: Mapping[str, Any],
    options: RunOptions,
    start_at: float | None,
    now: float,
    lease: Lease | None = None,
) -> Changed:
    existing = get_run(conn, run_id)  # the single writer is the id's lock
    plan = plan_create_run(
        run_id, workflow_name, input, attrs, options, start_at, now, existing, lease
    )
    if plan.event is None or plan.change is None:
        return Changed(plan.result)
    _execute(conn, plan.writes, [plan.event])
    return Changed(plan.result, [plan.change])


class PresumptionMissed(Exception):
    """A write planned on presumed step or wait rows (``apply.presume_rows``) did not find
    its row as presumed: the append is to be planned again, from the rows read, in a transaction
    without this attempt's writes (``SQLiteWorld.append`` does)."""


def append(
    conn: sqlite3.Connection,
    run_id: str,
    events: Sequence[NewEvent],
    owner: str | None,
    now: float,
    after: AppendAfter | None = None,
    *,
    presume: bool = False,
) -> Changed:
    """``presume``: plan on the step and wait rows the events expect rather than read them
    (the hot path: a step's result or a wake-up, the next step's creation and start), and
    raise ``PresumptionMissed`` if a write finds its row otherwise; this transaction must
    then be rolled back. Saves reading each row before writing it."""
    presumed = presume_rows(events) if presume else None
    if presumed is None:
        found = read_state(conn, run_id, lookups(events))
    else:
        found = _read_head(conn, run_id, presumed)
    state = check_owner(run_id, found, owner)
    plan = plan_append(run_id, state, events, owner, now, after)
    _execute(conn, plan.writes, plan.result.events, presumed=presumed is not None)
    if not plan.follow_ups:
        return Changed(plan.result, [plan.change])
    family = Family({run_id: state}, now)
    family.add([plan])
    changes = [plan.change]
    while True:
        done = len(family.plans)
        family.decide()
        for later in family.plans[done:]:
            _execute(conn, later.writes, later.result.events)
            changes.append(later.change)
        runs, children = family.wanted()
        if not runs and not children:
            return Changed(family.with_cancelled(run_id, plan.result), changes)
        family.supply(_linked_states(conn, runs), _runs(conn, children))


def _linked_states(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, RunState]:
    links = Lookups([], [], [], [], links=True)
    found = {run_id: read_state(conn, run_id, links) for run_id in run_ids}
    return {run_id: state for run_id, state in found.items() if state is not None}


def _runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, RunRecord]:
    found = {run_id: get_run(conn, run_id) for run_id in run_ids}
    return {run_id: record for run_id, record in found.items() if record is not None}


def read_state(conn: sqlite3.Connection, run_id: str, needs: Lookups) -> RunState | None:
    """The run as the planner needs it (``needs``: ``apply.lookups``), None if it is gone.

    On every step's path: the run's row and a few steps come as one row of one statement.
    """
    few = len(needs.steps) <= _FEW_STEPS
    sql = _head(len(needs.steps) if few else 0)
    row = conn.execute(sql, (run_id, *needs.steps) if few else (run_id,)).fetchone()
    if row is None:
        return None
    status, owner, last_seq, parent, *found = row
    state = RunState(run_status(status), owner, int(last_seq or 0), parent=parent)
    if not few:
        params = (run_id, DIALECT.list_param(needs.steps))
        statuses = dict(conn.execute(_SELECT_STEPS, params).fetchall())
        found = [statuses.get(step_id) for step_id in needs.steps]
    for step_id, text in zip(needs.steps, found, strict=True):
        if text is not None:
            state.steps[step_id] = step_status(text)
    if needs.links:
        state.children = [row[0] for row in conn.execute(_sql.ACTIVE_CHILDREN, (run_id,))]
    if needs.waits or needs.hooks or needs.tokens:
        ids = DIALECT.list_param
        waits = conn.execute(_SELECT_WAITS, (run_id, ids(needs.waits))) if needs.waits else ()
        hooks = (
            conn.execute(_SELECT_HOOKS, (ids(needs.hooks), ids(needs.tokens)))
            if needs.hooks or needs.tokens
            else ()
        )
        _sql.fill_state(state, needs, (), waits, hooks)
    return state


def _read_head(conn: sqlite3.Connection, run_id: str, presumed: Presumed) -> RunState | None:
    """The run's row read, its steps' and waits' rows as presumed."""
    row = conn.execute(_HEAD, (run_id,)).fetchone()
    if row is None:
        return None
    status, owner, last_seq, parent = row
    steps, waits = presumed
    return RunState(run_status(status), owner, int(last_seq or 0), steps, waits, parent=parent)


# Up to this many steps are read in the run's row, each by a point lookup of its own (an
# ``IN`` list of two or more builds a temporary b-tree, a zeroed page, on every call); more
# (a ``gather`` of many steps) are read by a second statement.
_FEW_STEPS = 8
_SELECT_STEPS = _sql.select_steps(DIALECT)


@functools.cache
def _head(steps: int) -> str:
    found = "".join(
        f", (SELECT status FROM steps WHERE run_id = ?1 AND step_id = ?{number})"
        for number in range(2, steps + 2)
    )
    return (
        "SELECT status, owner, (SELECT max(seq) FROM events WHERE run_id = ?1), "
        f"parent_run_id{found} FROM runs WHERE run_id = ?1"
    )


_HEAD = _head(0)


def _execute(
    conn: sqlite3.Connection,
    writes: Sequence[Any],
    events: Sequence[Event],
    *,
    presumed: bool = False,
) -> None:
    # ``DIALECT.render`` without its placeholder rewrite: "?" is SQLite's, as written.
    render, time = _write_sql.RENDER, DIALECT.time
    for write in writes:
        sql, params, checked = render[type(write)](write, time)
        try:
            missed = conn.execute(sql, params).rowcount != 1 and checked
        except sqlite3.IntegrityError:  # an inserted step or wait row exists
            if not presumed:
                raise
            missed = True
        if missed:
            if presumed:
                raise PresumptionMissed(f"{type(write).__name__}: {write}")
            # Decided from rows read in this very transaction: something is badly wrong.
            raise CorruptDataError(f"{type(write).__name__} did not find its row: {write}")
    if events:
        stamp = DIALECT.stamp
        conn.executemany(
            _write_sql.INSERT_EVENT, [_write_sql.event_params(e, stamp) for e in events]
        )


# -- scheduling ------------------------------------------------------------------------------


# Due runs of the named workflows not in a queue, and runs past their deadline, earliest
# wake_at first. Each part reads its own index in order and stops at ``limit``: runs in no
# queue, and runs of each queue no worker registered (which start as if in no queue),
# ``runs_due_queue``; runs past their deadline ``runs_deadline``. As one query with an OR,
# SQLite gathered every due run and sorted them for each claim (100,000 runs waking at
# once: ~0.4 s a claim); reading ``runs_due`` and skipping the runs of registered queues,
# it read every run waiting in a queue. ``+``: no index on status or workflow_name is used
# instead (``_sql.Dialect.unindexed``).
_UNHELD = "AND (r.owner IS NULL OR r.lease_until < ?) "
_ROWS = "SELECT r.run_id, r.owner, r.workflow_name, r.wake_at FROM runs r"
_DUE = f"AND r.wake_at <= ? AND r.diverged IS NULL AND +r.workflow_name {DIALECT.in_list} "
_CLAIM_DUE = (
    f"{_queue_sql.unregistered(DIALECT)}SELECT run_id, owner, workflow_name FROM (SELECT * FROM "
    f"({_ROWS} INDEXED BY runs_due_queue WHERE r.queue IS NULL AND +r.status IN {_ACTIVE} "
    f"{_UNHELD}{_DUE}ORDER BY r.wake_at LIMIT ?) UNION SELECT * FROM "
    f"({_ROWS} INDEXED BY runs_due_queue WHERE r.queue IN (SELECT queue FROM unregistered) "
    f"AND +r.status IN {_ACTIVE} {_UNHELD}{_DUE}ORDER BY r.wake_at LIMIT ?) UNION SELECT * "
    f"FROM ({_ROWS} WHERE +r.status IN {_ACTIVE} {_UNHELD}AND r.deadline <= ? "
    "ORDER BY r.wake_at LIMIT ?)) ORDER BY wake_at LIMIT ?"
)


def claim_runs(
    conn: sqlite3.Connection,
    worker: WorkerInfo,
    names: str,
    limit: int,
    lease_seconds: float,
    now: float,
) -> list[RunRecord]:
    """Due runs of the named workflows: those in no registered queue first, then, within
    each queue's limits, those in one (``worlds.limits``); and runs past their deadline,
    of any workflow, for the worker to fail. The single writer makes the reads and the
    claim one transaction no other claim interleaves with."""
    rows = conn.execute(
        _CLAIM_DUE, (now, now, names, limit, now, now, names, limit, now, now, limit, limit)
    ).fetchall()
    run_ids = [row[0] for row in rows]
    log_takeovers(worker.worker_id, rows)
    lease_until = now + lease_seconds
    conn.executemany(
        "UPDATE runs SET owner = ?, lease_until = ?, wake_at = ? WHERE run_id = ?",
        [(worker.worker_id, lease_until, now, run_id) for run_id in run_ids],
    )
    room = limit - len(run_ids)
    queues = conn.execute(_queue_sql.due_queues(DIALECT), (now, now, names)).fetchall()
    for row in queues:
        if room <= 0:
            break
        limits = _queue_sql.limits_from_row(row)
        chosen, found = _pick_queued(conn, worker.worker_id, limits, names, room, now)
        if chosen:
            params = (worker.worker_id, lease_until, now, now, json.dumps(chosen), now)
            taken = [r[0] for r in conn.execute(_queue_sql.claim(DIALECT), params).fetchall()]
            log_takeovers(worker.worker_id, _queue_sql.holders(found, taken))
            run_ids += taken
            room -= len(taken)
    return [record for record in map(functools.partial(get_run, conn), run_ids) if record]


def queue_usage(conn: sqlite3.Connection, name: str, now: float) -> QueueUsage | None:
    row = conn.execute(_queue_sql.SELECT_QUEUE, (name,)).fetchone()
    return None if row is None else _usage(conn, "", _queue_sql.limits_from_row(row), now)


def _usage(conn: sqlite3.Connection, worker_id: str, limits: QueueLimits, now: float) -> QueueUsage:
    places = conn.execute(
        _queue_sql.places(DIALECT, limits.hold_while_waiting), (worker_id, limits.name, now)
    ).fetchall()
    since = window_start(limits, now)
    starts = []
    if since is not None:
        found = conn.execute(_queue_sql.recent_starts(DIALECT), (limits.name, since))
        starts = [float(r[0]) for r in found]
    return _queue_sql.usage(limits, places, starts)


def _pick_queued(
    conn: sqlite3.Connection,
    worker_id: str,
    limits: QueueLimits,
    names: str,
    room: int,
    now: float,
) -> tuple[list[str], list[Any]]:
    """The runs of the queue to claim now, and the candidate rows they were picked from."""
    usage = _usage(conn, worker_id, limits, now)
    wanted = offer_size(usage, room)
    if not wanted:
        return [], []
    found = conn.execute(
        _queue_sql.candidates(DIALECT), (limits.name, now, now, names, wanted)
    ).fetchall()
    offered = [_queue_sql.candidate(r, limits) for r in found]
    return pick(usage, offered, room), found


def release_run(
    conn: sqlite3.Connection,
    run_id: str,
    owner: str,
    wake_at: float | None,
    known_seq: int | None,
    now: float,
) -> None:
    head = conn.execute(_sql.SELECT_HEAD, (run_id,)).fetchone()
    if head is None or head[1] != owner:
        return
    if known_seq is not None and int(head[2] or 0) > known_seq:
        wake_at = now  # something arrived after the worker last looked
    conn.execute(
        "UPDATE runs SET owner = NULL, lease_until = NULL, wake_at = ? WHERE run_id = ?",
        (wake_at, run_id),
    )


# -- the step queue --------------------------------------------------------------------------


def queue_steps(
    conn: sqlite3.Connection, run_id: str, step_ids: Sequence[str], owner: str, when: float
) -> Changed:
    head = conn.execute(_sql.SELECT_HEAD, (run_id,)).fetchone()
    if head is None:
        raise WorkflowRunNotFoundError(run_id)
    if head[1] != owner:
        raise LeaseLostError(run_id, owner)
    conn.execute(
        # Pending, or left running by a worker that died: not claimed by a worker.
        "UPDATE steps SET queued_at = ? WHERE run_id = ? AND step_id "
        f"{DIALECT.in_list} AND status IN ('pending', 'running') AND claimed_by IS NULL",
        (when, run_id, json.dumps(list(step_ids))),
    )
    conn.execute("UPDATE runs SET updated_at = ? WHERE run_id = ?", (when, run_id))
    change = RunChange(run_id, int(head[2] or 0), run_status(head[0]), owner, True)
    return Changed(None, [change])


def claim_steps(
    conn: sqlite3.Connection,
    worker: WorkerInfo,
    names: str,
    limit: int,
    lease_seconds: float,
    now: float,
) -> Changed:
    rows = conn.execute(
        "SELECT s.run_id, s.step_id, s.step_name, s.attempt, r.workflow_name, "
        "coalesce(r.started_at, r.created_at), "
        "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq) "
        # ``+``: from the queued and claimed steps' indexes, not from every active run.
        f"FROM steps s JOIN runs r ON r.run_id = s.run_id WHERE +r.status IN {_ACTIVE} "
        f"AND s.step_name {DIALECT.in_list} "
        "AND (s.queued_at <= ? OR (s.claimed_by IS NOT NULL AND s.status = 'running' "
        "AND s.lease_until < ?)) "
        "ORDER BY coalesce(s.queued_at, s.lease_until) LIMIT ?",
        (names, now, now, limit),
    ).fetchall()
    claims: list[StepClaim] = []
    changes: list[RunChange] = []
    for run_id, step_id, name, attempt, workflow, started, payload in rows:
        candidate = StepCandidate(
            run_id, step_id, name, attempt, workflow, _moment(started), bytes(payload or b"")
        )
        state = read_state(conn, run_id, Lookups([step_id], [], [], []))
        if state is None:
            continue
        plan, claim = plan_claim_step(candidate, state, worker.worker_id, lease_seconds, now)
        _execute(conn, plan.writes, plan.result.events)
        if claim is not None:
            claims.append(claim)
            changes.append(plan.change)
    return Changed(claims, changes)


def finish_step(
    conn: sqlite3.Connection,
    run_id: str,
    outcome: NewEvent,
    claimer: str,
    retry_after: float | None,
    now: float,
) -> Changed:
    row = conn.execute(
        "SELECT claimed_by FROM steps WHERE run_id = ? AND step_id = ?",
        (run_id, outcome.correlation_id),
    ).fetchone()
    state = read_state(conn, run_id, lookups([outcome]))
    if row is None or state is None:
        return Changed(False)
    plan = plan_finish_step(run_id, state, row[0], outcome, claimer, retry_after, now)
    if plan is None:
        return Changed(False)
    _execute(conn, plan.writes, plan.result.events)
    return Changed(True, [plan.change])


# -- reads -----------------------------------------------------------------------------------


def get_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    row = conn.execute(_sql.SELECT_RUN, (run_id,)).fetchone()
    return None if row is None else run_from_row(row, _moment)


_PREFIX_PROBE = _listing_sql.prefix_probe(DIALECT)


def list_runs(conn: sqlite3.Connection, query: RunQuery) -> list[RunRecord]:
    few = True
    probe = _listing_sql.prefix_range(query.id_prefix)
    if probe is not None:
        few = conn.execute(_PREFIX_PROBE, probe).fetchone()[0] < _listing_sql.FEW_PREFIXED
    sql, params = _listing_sql.list_runs(DIALECT, query, few_prefixed=few)
    return [run_from_row(row, _moment) for row in conn.execute(sql, params)]


def get_events(conn: sqlite3.Connection, run_id: str, after_seq: int) -> list[Event]:
    cache: dict[str, Any] = {}
    rows = conn.execute(_sql.SELECT_EVENTS, (run_id, after_seq))
    return [event_from_row(row, _moment, cache) for row in rows]


_SELECT_LOGS = _sql.select_logs(DIALECT)


def get_logs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> dict[str, list[Event]]:
    return logs_from_rows(conn.execute(_SELECT_LOGS, (DIALECT.list_param(run_ids),)), _moment)


def list_steps(conn: sqlite3.Connection, run_id: str) -> list[StepRecord]:
    return [step_from_row(row, _moment) for row in conn.execute(_sql.SELECT_STEPS, (run_id,))]


def list_waits(conn: sqlite3.Connection, run_id: str) -> list[WaitRecord]:
    return [wait_from_row(row, _moment) for row in conn.execute(_sql.SELECT_WAITS, (run_id,))]


_OPEN_WAITS = _sql.open_waits(DIALECT)
_OPEN_HOOKS = _sql.open_hooks(DIALECT)
_OPEN_STEPS = _sql.open_steps(DIALECT)


def open_work(conn: sqlite3.Connection, run_ids: Sequence[str]) -> OpenWork:
    ids = (DIALECT.list_param(run_ids),)
    return OpenWork(
        tuple(wait_from_row(row, _moment) for row in conn.execute(_OPEN_WAITS, ids)),
        tuple(hook_from_row(row, _moment) for row in conn.execute(_OPEN_HOOKS, ids)),
        tuple(open_step_from_row(row, _moment) for row in conn.execute(_OPEN_STEPS, ids)),
    )


def list_hooks(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[HookRecord]:
    rows = conn.execute(_sql.SELECT_HOOKS.format(where=where), params)
    return [hook_from_row(row, _moment) for row in rows]


def list_workers(conn: sqlite3.Connection) -> list[WorkerRecord]:
    return [worker_from_row(row, _moment) for row in conn.execute(_sql.SELECT_WORKERS)]


def hand_back(conn: sqlite3.Connection, worker_id: str, now: float) -> None:
    """What a worker holds goes back, due at once: its runs, and the steps it claimed to the
    step queue; it is forgotten."""
    conn.execute("UPDATE runs SET owner = NULL, lease_until = NULL WHERE owner = ?", (worker_id,))
    conn.execute(
        "UPDATE steps SET claimed_by = NULL, lease_until = NULL, queued_at = ? "
        "WHERE claimed_by = ?",
        (now, worker_id),
    )
    conn.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
