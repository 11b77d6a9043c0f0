"""What each call of the PostgreSQL World does inside its transaction, and its reads.

Appends, one or a batch of many runs, cost two round trips, each a pipeline: BEGIN, lock the
runs' rows (``FOR UPDATE``, in ``run_id`` order) and read what the planner needs; then
every write, event and NOTIFY. The run's row lock is what makes the planner's reading true
until commit: everything that changes a run's steps, waits or hooks holds it. Creating a
hook also takes an advisory lock on its token (after the run locks, in token order), so two
runs claiming one token are decided one after the other. Decisions come from the planner
(``worlds.apply``), statements from ``worlds._sql`` and its siblings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncClientCursor

from ...errors import LeaseLostError, WorkflowRunNotFoundError
from .. import _listing_sql, _sql, _write_sql
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
)
from ..apply import (
    ENDS_RUN,
    AppendPlan,
    ClaimStep,
    CompleteWait,
    CreatePlan,
    DeleteHook,
    DeleteRunHooks,
    EndRun,
    EndRunSteps,
    EndStep,
    Family,
    InsertHook,
    InsertRun,
    InsertStep,
    InsertWait,
    Lookups,
    Presumed,
    RetryStep,
    RunState,
    StartRun,
    StartStep,
    TouchRun,
    UnclaimStep,
    Write,
    check_owner,
    plan_append,
    presume_rows,
)
from ..records import (
    AppendAfter,
    AppendResult,
    Event,
    HookRecord,
    NewEvent,
    OpenWork,
    RunChange,
    RunQuery,
    RunRecord,
    RunStatus,
    StepRecord,
    WaitRecord,
)
from . import _arrays
from ._dialect import DIALECT, moment
from ._feed import Feed
from ._transactions import Conn

# -- appends ---------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class AppendJob:
    """One caller's append."""

    run_id: str
    events: Sequence[NewEvent]
    owner: str | None
    needs: Lookups
    after: AppendAfter | None = None


def ends_its_run(job: AppendJob) -> bool:
    """Whether the append ends its run. No step waits for it to commit (a step waits for its
    ``step_started``, a run for its wake-up), only whoever awaits the run's result or its
    parent, so in a burst it may go one transaction after the others
    (``_batch.AppendQueue``)."""
    return any(event.type in ENDS_RUN for event in job.events)


@dataclass(slots=True)
class Verdict:
    """A job's outcome: its result or its own error, and what to tell listeners."""

    result: AppendResult | Exception
    change: RunChange | None = None


async def append_all(
    conn: Conn, jobs: Sequence[AppendJob], feed: Feed
) -> tuple[list[Verdict], list[AppendPlan], list[RunChange]]:
    """Decide ``jobs`` (each on a different run) in a transaction this begins; the verdicts,
    and the plans whose writes go with the COMMIT (``queue_writes``): the jobs' and those of
    what they do to other runs (``apply.Family``: children created, parents told, children
    cancelled), each read under its run's lock in one more round trip per generation.

    A job whose run is missing or not held by its owner gets its error and writes nothing;
    the others go on. Also every change to tell this process's listeners of.
    """
    states, now = await read_states(conn, jobs, feed.channel, begin=True)
    verdicts: list[Verdict] = []
    plans: list[AppendPlan] = []
    for job in jobs:
        try:
            state = check_owner(job.run_id, states.get(job.run_id), job.owner)
        except (WorkflowRunNotFoundError, LeaseLostError) as exc:
            verdicts.append(Verdict(exc))
            continue
        plan = plan_append(job.run_id, state, job.events, job.owner, now, job.after)
        verdicts.append(Verdict(plan.result, plan.change))
        plans.append(plan)
    changes = [v.change for v in verdicts if v.change is not None]
    if any(plan.follow_ups for plan in plans):
        family = await _follow_ups(conn, plans, states, now, feed.channel)
        plans += family.plans
        changes += [plan.change for plan in family.plans]
        verdicts = [_with_cancelled(family, job, v) for job, v in zip(jobs, verdicts, strict=True)]
    return verdicts, plans, changes


def _with_cancelled(family: Family, job: AppendJob, verdict: Verdict) -> Verdict:
    if not isinstance(verdict.result, AppendResult):
        return verdict
    return Verdict(family.with_cancelled(job.run_id, verdict.result), verdict.change)


async def _follow_ups(
    conn: Conn, plans: Sequence[AppendPlan], states: dict[str, RunState], now: float, channel: str
) -> Family:
    family = Family(states, now)
    family.add(plans)
    while True:
        family.decide()
        runs, children = family.wanted()
        if not runs and not children:
            return family
        links = Lookups([], [], [], [], links=True)
        linked = [AppendJob(run_id, (), None, links) for run_id in runs]
        found, _ = await read_states(conn, linked, channel, begin=False, lock_ids=children)
        family.supply(found, {r.run_id: r for r in await get_runs(conn, children)})


def presumable(jobs: Sequence[AppendJob]) -> list[Presumed] | None:
    """The step and wait rows to presume for each job, if every one is an owner's append of
    step and wait events alone (a step's result or a wake-up, the next step's creation and
    start: the hot path); else None.

    Such appends are decided without reading (``presumed_plans``): on each run as its owner
    knows it (running, its log ending at ``after.seq``) and the rows as the events expect
    them (``apply.presume_rows``). ``queue_presumed`` checks all of that under the runs'
    locks, in the pipeline with the writes and the COMMIT: one round trip, not two."""
    found: list[Presumed] = []
    for job in jobs:
        presumed = presume_rows(job.events) if job.owner and job.after else None
        if presumed is None:
            return None
        found.append(presumed)
    return found


def presumed_plans(
    jobs: Sequence[AppendJob], presumed: Sequence[Presumed], now: float
) -> list[AppendPlan]:
    plans = []
    for job, (steps, waits) in zip(jobs, presumed, strict=True):
        assert job.after is not None
        state = RunState(RunStatus.RUNNING, job.owner, job.after.seq, dict(steps), dict(waits))
        plans.append(plan_append(job.run_id, state, job.events, job.owner, now, job.after))
    return plans


# Locks the runs' rows (in ``run_id`` order, as ``read_states`` does) and fails (division by
# zero) unless every one is as presumed.
_PRESUMED_HEADS = (
    "WITH r AS (SELECT run_id, status, owner FROM runs WHERE run_id = ANY(%s) "
    "ORDER BY run_id FOR UPDATE) "
    "SELECT 1 / (count(*) = %s)::int FROM r "
    "JOIN unnest(%s::text[], %s::text[], %s::int[]) AS t(run_id, owner, seq) USING (run_id) "
    "WHERE r.status = 'running' AND r.owner = t.owner "
    "AND (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id) = t.seq"
)


async def queue_presumed(
    conn: Conn, jobs: Sequence[AppendJob], plans: Sequence[AppendPlan], feed: Feed
) -> None:
    """Queue, on the pipeline that ends with COMMIT, BEGIN, the check of what
    ``presumed_plans`` presumed of the runs, and the plans' writes."""
    ids = [job.run_id for job in jobs]
    owners = [job.owner for job in jobs]
    seqs = [job.after.seq if job.after else 0 for job in jobs]
    await conn.execute("BEGIN")
    await conn.execute(_PRESUMED_HEADS, (ids, len(jobs), ids, owners, seqs))
    await queue_writes(conn, plans, feed)


async def queue_writes(conn: Conn, plans: Sequence[AppendPlan], feed: Feed) -> None:
    """Queue, on the pipeline that ends with COMMIT, every plan's writes, its events, and
    the NOTIFY of those that announce."""
    await send_writes(conn, [w for plan in plans for w in plan.writes])
    await insert_events(conn, [e for plan in plans for e in plan.result.events])
    await feed.send(conn, [plan.change for plan in plans if plan.announce])


_INSERT_EVENT = DIALECT.sql(_write_sql.INSERT_EVENT)


async def insert_events(conn: Conn, events: Sequence[Event]) -> None:
    """Queue the insert of ``events`` on the pipeline that ends with COMMIT."""
    if events:
        rows = [_write_sql.event_params(e, DIALECT.stamp) for e in events]
        await _arrays.write_rows(conn, _INSERT_EVENT, rows, must_hit=False)


async def read_states(
    conn: Conn,
    jobs: Sequence[AppendJob],
    channel: str,
    *,
    begin: bool,
    lock_ids: Sequence[str] = (),
) -> tuple[dict[str, RunState], float]:
    """Lock the runs in ``run_id`` order (the order lease renewal locks them in, so two such
    transactions never wait on each other in a cycle), then read what the planner needs;
    with ``begin``, BEGIN first. Also the database's time now.

    One round trip: the statements go as one simple query (parameters bound here), not a
    pipeline. After a pipeline, psycopg sends a Flush request, and the server stops timing
    a session idle in a transaction once a Flush arrives: a client frozen right after this
    read would keep the runs locked forever. After a simple query, the timer runs.

    ``lock_ids``: run ids to lock as ``create_run`` does (children about to be created).
    """
    run_ids = [job.run_id for job in jobs]
    linked = [job.run_id for job in jobs if job.needs.links]
    step_pairs = _pairs((job.run_id, s) for job in jobs for s in job.needs.steps)
    wait_pairs = _pairs((job.run_id, w) for job in jobs for w in job.needs.waits)
    hooks = sorted({h for job in jobs for h in job.needs.hooks})
    tokens = sorted({t for job in jobs for t in job.needs.tokens})
    queries = ["BEGIN"] if begin else []
    params: list[Any] = []
    for run_id in sorted(lock_ids):
        queries.append("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))")
        params.extend((channel, run_id))
    queries.append(
        "SELECT run_id, status, owner, parent_run_id FROM runs WHERE run_id = ANY(%s) "
        "ORDER BY run_id FOR UPDATE"
    )
    params.append(run_ids)
    queries.append(
        "SELECT r.id, (SELECT max(seq) FROM events e WHERE e.run_id = r.id), "
        "clock_timestamp() FROM unnest(%s::text[]) AS r(id)"
    )
    params.append(run_ids)
    if linked:
        queries.append(
            "SELECT parent_run_id, run_id FROM runs WHERE parent_run_id = ANY(%s) "
            "AND status IN ('pending', 'running') AND NOT detached ORDER BY run_id"
        )
        params.append(linked)
    if step_pairs[0] or wait_pairs[0]:
        queries.append(
            "SELECT s.run_id, 'step', s.step_id, s.status FROM steps s "
            "JOIN unnest(%s::text[], %s::text[]) AS t(run_id, id) "
            "ON s.run_id = t.run_id AND s.step_id = t.id "
            "UNION ALL SELECT w.run_id, 'wait', w.wait_id, "
            "CASE WHEN w.completed_at IS NULL THEN '' ELSE 'x' END FROM waits w "
            "JOIN unnest(%s::text[], %s::text[]) AS t(run_id, id) "
            "ON w.run_id = t.run_id AND w.wait_id = t.id"
        )
        params.extend((*step_pairs, *wait_pairs))
    if hooks or tokens:
        for token in tokens:  # after the run locks, in token order
            queries.append("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))")
            params.extend((channel, token))
        queries.append(
            "SELECT hook_id, run_id, token FROM hooks WHERE hook_id = ANY(%s) OR token = ANY(%s)"
        )
        params.extend((hooks, tokens))
    cur = AsyncClientCursor(conn)
    await cur.execute("; ".join(queries), params)
    results = []
    while True:
        results.append(await cur.fetchall() if cur.description else [])
        if not cur.nextset():
            break
    results = results[(1 if begin else 0) + len(lock_ids) :]
    locked, heads, rest = results[0], results[1], results[2:]
    by_run = {r[0]: (int(r[1] or 0), r[2]) for r in heads}
    states = {
        run_id: RunState(run_status(status), owner, by_run[run_id][0], parent=parent)
        for run_id, status, owner, parent in locked
    }
    if linked:
        children: dict[str, list[str]] = {run_id: [] for run_id in linked}
        for parent, child in rest[0]:
            children[parent].append(child)
        for run_id, found in children.items():
            if run_id in states:
                states[run_id].children = found
        rest = rest[1:]
    # The clock comes with a run's head; with none asked for (only ids locked), no clock.
    now = next(iter(by_run.values()))[1].timestamp() if by_run else math.nan
    if step_pairs[0] or wait_pairs[0]:
        for run_id, kind, cid, value in rest[0]:
            state = states.get(run_id)
            if state is not None and kind == "step":
                state.steps[cid] = step_status(value)
            elif state is not None:
                state.waits[cid] = bool(value)
    if hooks or tokens:
        hook_rows = rest[-1]
        for job in jobs:
            state = states.get(job.run_id)
            if state is not None:
                _sql.fill_state(state, job.needs, (), (), hook_rows)
    return states, now


def _pairs(pairs: Any) -> tuple[list[str], list[str]]:
    unique = sorted(set(pairs))
    return [run_id for run_id, _ in unique], [cid for _, cid in unique]


def _row(write: Write) -> tuple[Any, ...]:
    """The row a write changes: writes to one row must keep their order."""
    if isinstance(write, InsertStep | StartStep | RetryStep | EndStep | ClaimStep | UnclaimStep):
        return ("step", write.run_id, write.step_id)
    if isinstance(write, InsertWait | CompleteWait):
        return ("wait", write.run_id, write.wait_id)
    if isinstance(write, InsertHook | DeleteHook | DeleteRunHooks):
        return ("hooks", write.run_id)  # a run's hooks: DeleteRunHooks touches them all
    assert isinstance(write, InsertRun | StartRun | EndRun | TouchRun)
    return ("run", write.run_id)


async def send_writes(conn: Conn, writes: Sequence[Write]) -> None:
    """Queue ``writes`` on the pipeline that ends with COMMIT.

    A write's layer counts the earlier writes to its row, so one layer's writes touch
    distinct rows, and each layer goes as one statement per statement text
    (``_arrays.write_rows``): far fewer Python calls than one statement each once a batch
    holds a hundred appends. Each write
    was decided from rows read under the runs' locks, so each must hit its row; an update
    that does not (something changed the row without the lock) fails the transaction, here
    on the server, before the COMMIT that follows it.
    """
    seen: dict[tuple[Any, ...], int] = {}
    groups: dict[tuple[int, str, bool], list[tuple[Any, ...]]] = {}
    step_layers: dict[str, int] = {}  # per run: the last layer holding a write to its steps
    for write in writes:
        if isinstance(write, EndRunSteps):
            # Touches all the run's steps: after every earlier write to any of them.
            layer = step_layers.get(write.run_id, -1) + 1
        else:
            row = _row(write)
            layer = seen[row] = seen.get(row, -1) + 1
            if row[0] == "step":
                step_layers[write.run_id] = max(layer, step_layers.get(write.run_id, -1))
        sql, params, checked = DIALECT.render(write)
        groups.setdefault((layer, sql, checked), []).append(params)
    for (_, query, checked), rows in sorted(groups.items(), key=lambda g: g[0][0]):
        await _arrays.write_rows(conn, query, rows, must_hit=checked)


async def has_event(conn: Conn, run_id: str, seq: int, event_id: str) -> bool:
    """After a lost COMMIT: whether the event (whose id was chosen before writing) landed."""
    cur = await conn.execute(
        "SELECT event_id FROM events WHERE run_id = %s AND seq = %s", (run_id, seq)
    )
    row = await cur.fetchone()
    return row is not None and row[0] == event_id


async def queue_create_run(conn: Conn, plan: CreatePlan, feed: Feed) -> None:
    """Queue, on the pipeline that ends with COMMIT, what creates a run."""
    assert plan.event is not None and plan.change is not None
    await send_writes(conn, plan.writes)
    await insert_events(conn, [plan.event])
    await feed.send(conn, [plan.change])


# -- reads -----------------------------------------------------------------------------------


async def get_run(conn: Conn, run_id: str) -> RunRecord | None:
    cur = await conn.execute(DIALECT.sql(_sql.SELECT_RUN), (run_id,))
    row = await cur.fetchone()
    return None if row is None else run_from_row(row, moment)


async def get_runs(conn: Conn, run_ids: Sequence[str]) -> list[RunRecord]:
    if not run_ids:
        return []
    cur = await conn.execute(
        f"SELECT {_sql.RUN_COLUMNS} FROM runs r WHERE r.run_id = ANY(%s) "
        "ORDER BY r.wake_at, r.run_id",
        (list(run_ids),),
    )
    return [run_from_row(row, moment) for row in await cur.fetchall()]


_PREFIX_PROBE = _listing_sql.prefix_probe(DIALECT).encode()


async def list_runs(conn: Conn, query: RunQuery) -> list[RunRecord]:
    few = True
    probe = _listing_sql.prefix_range(query.id_prefix)
    if probe is not None:
        found = await (await conn.execute(_PREFIX_PROBE, probe)).fetchone()
        few = found is None or found[0] < _listing_sql.FEW_PREFIXED
    sql, params = _listing_sql.list_runs(DIALECT, query, few_prefixed=few)
    cur = await conn.execute(sql.encode(), params)
    return [run_from_row(row, moment) for row in await cur.fetchall()]


async def get_events(conn: Conn, run_id: str, after_seq: int) -> list[Event]:
    cur = await conn.execute(DIALECT.sql(_sql.SELECT_EVENTS), (run_id, after_seq))
    cache: dict[str, Any] = {}
    return [event_from_row(row, moment, cache) for row in await cur.fetchall()]


_SELECT_LOGS = _sql.select_logs(DIALECT).encode()


async def get_logs(conn: Conn, run_ids: Sequence[str]) -> dict[str, list[Event]]:
    cur = await conn.execute(_SELECT_LOGS, (list(run_ids),))
    return logs_from_rows(await cur.fetchall(), moment)


async def list_steps(conn: Conn, run_id: str) -> list[StepRecord]:
    cur = await conn.execute(DIALECT.sql(_sql.SELECT_STEPS), (run_id,))
    return [step_from_row(row, moment) for row in await cur.fetchall()]


async def list_waits(conn: Conn, run_id: str) -> list[WaitRecord]:
    cur = await conn.execute(DIALECT.sql(_sql.SELECT_WAITS), (run_id,))
    return [wait_from_row(row, moment) for row in await cur.fetchall()]


_OPEN_WAITS = _sql.open_waits(DIALECT).encode()
_OPEN_HOOKS = _sql.open_hooks(DIALECT).encode()
_OPEN_STEPS = _sql.open_steps(DIALECT).encode()


async def open_work(conn: Conn, run_ids: Sequence[str]) -> OpenWork:
    ids = (list(run_ids),)
    waits = await (await conn.execute(_OPEN_WAITS, ids)).fetchall()
    hooks = await (await conn.execute(_OPEN_HOOKS, ids)).fetchall()
    steps = await (await conn.execute(_OPEN_STEPS, ids)).fetchall()
    return OpenWork(
        tuple(wait_from_row(row, moment) for row in waits),
        tuple(hook_from_row(row, moment) for row in hooks),
        tuple(open_step_from_row(row, moment) for row in steps),
    )


async def list_hooks(conn: Conn, where: str, params: tuple[Any, ...]) -> list[HookRecord]:
    cur = await conn.execute(DIALECT.sql(_sql.SELECT_HOOKS.format(where=where)).encode(), params)
    return [hook_from_row(row, moment) for row in await cur.fetchall()]


async def webhook_response(conn: Conn, reply_to: str) -> bytes | None:
    cur = await conn.execute(
        "SELECT payload FROM webhook_responses WHERE reply_to = %s", (reply_to,)
    )
    row = await cur.fetchone()
    return None if row is None else bytes(row[0])
