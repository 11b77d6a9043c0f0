"""What the PostgreSQL World's scheduling calls do in their transactions: workers, run
leases (``Leases``) and the step queue (``StepQueue``).

Claims take rows ``FOR UPDATE SKIP LOCKED``, so workers never wait for each other's claims.
A worker's runs are locked in ``run_id`` order, the order appends lock them in (``_jobs``):
a plain ``UPDATE ... WHERE owner = $1`` locks them in whatever order the scan finds them,
so it could deadlock with the worker's own batch of appends (and a deadlock costs both
sides deadlock_timeout, 1 s). Times come from the database clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from psycopg import AsyncClientCursor

from ...errors import LeaseLostError, WorkflowRunNotFoundError
from .. import _queue_sql, _sql
from .._rows import worker_from_row
from .._takeovers import log_takeovers
from ..apply import AppendPlan, Lookups, StepCandidate, plan_claim_step, plan_finish_step
from ..records import (
    NewEvent,
    RunChange,
    RunRecord,
    RunStatus,
    StepClaim,
    WorkerInfo,
    WorkerRecord,
)
from . import _queues
from ._dialect import ACTIVE, DIALECT, moment
from ._feed import Feed
from ._jobs import AppendJob, get_runs, read_states
from ._transactions import Conn

# Writes queued on the pipeline that ends with COMMIT.
Writes = Callable[[Conn], Awaitable[None]]

_HELD_IN_ORDER = (
    "held AS MATERIALIZED (SELECT run_id FROM runs WHERE owner = %s {also} "
    "ORDER BY run_id FOR UPDATE)"
)


async def register_worker(conn: Conn, info: WorkerInfo, now: float) -> None:
    gone = DIALECT.time(now - _sql.GONE_AFTER)
    await conn.execute(DIALECT.sql(_sql.FORGET_GONE_WORKERS), (gone,))
    await conn.execute(DIALECT.sql(_sql.UPSERT_WORKER), _sql.worker_params(info, DIALECT.time(now)))


async def list_workers(conn: Conn) -> list[WorkerRecord]:
    cur = await conn.execute(_sql.SELECT_WORKERS)
    return [worker_from_row(row, moment) for row in await cur.fetchall()]


_WAKE_RUN = DIALECT.sql(_sql.wake_run("clock_timestamp()"))


async def wake_run(conn: Conn, run_id: str, feed: Feed) -> RunChange | None:
    """Make the run due by the database's clock (a claim right after compares with it)."""
    cur = await conn.execute(_WAKE_RUN, (run_id,))
    if not cur.rowcount:
        return None
    change = RunChange(run_id, await max_seq(conn, run_id), RunStatus.PENDING)
    await feed.send(conn, [change])
    return change


async def unregister_worker(conn: Conn, worker_id: str) -> None:
    await conn.execute(
        f"WITH {_HELD_IN_ORDER.format(also='')} UPDATE runs r SET owner = NULL, "
        "lease_until = NULL FROM held WHERE r.run_id = held.run_id",
        (worker_id,),
    )
    await conn.execute(
        "UPDATE steps SET claimed_by = NULL, lease_until = NULL, "
        "queued_at = clock_timestamp() WHERE claimed_by = %s",
        (worker_id,),
    )
    await conn.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,))


# Due runs of the named workflows in no queue, and runs past their deadline: each part
# reads its own index in order and stops at the limit: runs in no queue, and those of each
# queue no worker registered (they start as if in no queue), ``runs_due_queue``; runs past
# their deadline ``runs_deadline``. As one query with an OR, PostgreSQL read and sorted
# every due run for each claim (100,000 due at once: ~350 ms a claim, now ~11 ms); reading
# ``runs_due`` and skipping the runs of registered queues, it read every run waiting in a
# queue (100,000 waiting: ~65 ms a claim).
_CLAIMABLE = (
    f"SELECT run_id, owner AS previous, wake_at FROM runs r WHERE status IN {ACTIVE} "
    "AND (owner IS NULL OR lease_until < clock_timestamp()) "
)
_DUE = "AND wake_at <= clock_timestamp() AND diverged IS NULL AND workflow_name = ANY(%s) "
_CLAIM_DUE = (
    f"{_queue_sql.unregistered(DIALECT)}, "
    f"due_free AS ({_CLAIMABLE}AND queue IS NULL {_DUE}"
    "ORDER BY wake_at LIMIT %s FOR UPDATE SKIP LOCKED), "
    "due_unregistered AS (SELECT d.* FROM unregistered u CROSS JOIN LATERAL "
    f"({_CLAIMABLE}AND r.queue = u.queue {_DUE}ORDER BY wake_at LIMIT %s "
    "FOR UPDATE SKIP LOCKED) d), "
    f"overdue AS ({_CLAIMABLE}AND deadline <= clock_timestamp() ORDER BY deadline LIMIT %s "
    "FOR UPDATE SKIP LOCKED), "
    "due AS (SELECT run_id, previous FROM (SELECT * FROM due_free UNION "
    "SELECT * FROM due_unregistered UNION SELECT * FROM overdue) d ORDER BY wake_at LIMIT %s) "
    "UPDATE runs r SET owner = %s, lease_until = clock_timestamp() + %s * interval '1 second', "
    "wake_at = clock_timestamp() FROM due WHERE r.run_id = due.run_id "
    "RETURNING r.run_id, due.previous, r.workflow_name"
)


async def claim_runs(
    conn: Conn,
    worker: WorkerInfo,
    workflow_names: Sequence[str],
    limit: int,
    lease: float,
    now: float,
    channel: str,
) -> list[RunRecord]:
    """Due runs in no registered queue (one statement, ``SKIP LOCKED``), then runs of
    queues within their limits (``_queues.claim``), and runs past their deadline."""
    names = list(workflow_names)
    params = (names, limit, names, limit, limit, limit, worker.worker_id, float(lease))
    cur = await conn.execute(_CLAIM_DUE, params)
    rows = await cur.fetchall()
    log_takeovers(worker.worker_id, rows)
    run_ids = [row[0] for row in rows]
    if len(run_ids) < limit:
        room = limit - len(run_ids)
        run_ids += await _queues.claim(conn, worker, workflow_names, room, lease, now, channel)
    return await get_runs(conn, run_ids)


async def renew_leases(
    conn: Conn, worker_id: str, run_ids: Sequence[str], step_ids: Sequence[str], lease: float
) -> None:
    await conn.execute(
        f"WITH {_HELD_IN_ORDER.format(also='AND run_id = ANY(%s)')} UPDATE runs r "
        "SET lease_until = clock_timestamp() + %s * interval '1 second' "
        "FROM held WHERE r.run_id = held.run_id",
        (worker_id, list(run_ids), float(lease)),
    )
    await conn.execute(
        "UPDATE steps SET lease_until = clock_timestamp() + %s * interval '1 second' "
        "WHERE claimed_by = %s AND step_id = ANY(%s)",
        (float(lease), worker_id, list(step_ids)),
    )
    await conn.execute(
        "UPDATE workers SET heartbeat_at = clock_timestamp() WHERE worker_id = %s", (worker_id,)
    )


async def release_run(
    conn: Conn, run_id: str, owner: str, wake_at: datetime | None, known_seq: int | None
) -> None:
    cur = await conn.execute("SELECT owner FROM runs WHERE run_id = %s FOR UPDATE", (run_id,))
    row = await cur.fetchone()
    if row is None or row[0] != owner:
        return
    if known_seq is not None and await max_seq(conn, run_id) > known_seq:
        # Something arrived after the worker last looked: due at once.
        await conn.execute(
            "UPDATE runs SET owner = NULL, lease_until = NULL, wake_at = clock_timestamp() "
            "WHERE run_id = %s",
            (run_id,),
        )
        return
    await conn.execute(
        "UPDATE runs SET owner = NULL, lease_until = NULL, wake_at = %s WHERE run_id = %s",
        (wake_at, run_id),
    )


async def next_wake_at(conn: Conn, workflow_names: Sequence[str]) -> datetime | None:
    cur = await conn.execute(_sql.next_wake_at(DIALECT), (list(workflow_names),))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else moment(row[0])


async def max_seq(conn: Conn, run_id: str) -> int:
    cur = await conn.execute("SELECT max(seq) FROM events WHERE run_id = %s", (run_id,))
    row = await cur.fetchone()
    return int(row[0] or 0) if row else 0


# -- the step queue --------------------------------------------------------------------------


async def queue_steps(
    conn: Conn, run_id: str, step_ids: Sequence[str], owner: str, delay: float, feed: Feed
) -> tuple[RunChange, Writes]:
    """In a transaction this begins: check the run is ``owner``'s, under its lock, in one
    round trip; the change, and the writes that go with the COMMIT (``Writes``)."""
    cur = AsyncClientCursor(conn)
    await cur.execute(
        "BEGIN; SELECT owner, status FROM runs WHERE run_id = %s FOR UPDATE; "
        "SELECT max(seq) FROM events WHERE run_id = %s",
        (run_id, run_id),
    )
    cur.nextset()
    row = await cur.fetchone()
    cur.nextset()
    head = await cur.fetchone()
    if row is None:
        raise WorkflowRunNotFoundError(run_id)
    if row[0] != owner:
        raise LeaseLostError(run_id, owner)
    last_seq = int(head[0] or 0) if head else 0
    change = RunChange(run_id, last_seq, RunStatus(row[1]), owner, True)

    async def writes(conn: Conn) -> None:
        await conn.execute(
            "UPDATE steps SET queued_at = clock_timestamp() + %s * interval '1 second' "
            "WHERE run_id = %s AND step_id = ANY(%s) AND status IN ('pending', 'running') "
            "AND claimed_by IS NULL",
            (float(delay), run_id, list(step_ids)),
        )
        await conn.execute(
            "UPDATE runs SET updated_at = clock_timestamp() WHERE run_id = %s", (run_id,)
        )
        await feed.send(conn, [change])

    return change, writes


async def claims_held(conn: Conn, claims: Sequence[StepClaim], claimer: str) -> list[StepClaim]:
    """After a lost COMMIT: the claims that committed are those whose lease it holds now."""
    held = []
    for claim in claims:
        cur = await conn.execute(
            "SELECT claimed_by, attempt FROM steps WHERE run_id = %s AND step_id = %s",
            (claim.run_id, claim.step_id),
        )
        row = await cur.fetchone()
        if row is not None and (row[0], row[1]) == (claimer, claim.attempt):
            held.append(claim)
    return held


async def claim_steps(
    conn: Conn,
    worker: WorkerInfo,
    step_names: Sequence[str],
    limit: int,
    lease_seconds: float,
    feed: Feed,
) -> tuple[list[StepClaim], list[AppendPlan]]:
    """The steps this worker claims, and the plans whose writes go with the COMMIT."""
    cur = await conn.execute(
        "SELECT s.run_id, s.step_id, s.step_name, s.attempt, r.workflow_name, "
        "coalesce(r.started_at, r.created_at), "
        "(SELECT payload FROM events e WHERE e.run_id = s.run_id AND e.seq = s.input_seq) "
        "FROM steps s JOIN runs r ON r.run_id = s.run_id "
        f"WHERE r.status IN {ACTIVE} AND s.step_name = ANY(%s) "
        "AND (s.queued_at <= clock_timestamp() OR (s.claimed_by IS NOT NULL "
        "AND s.status = 'running' AND s.lease_until < clock_timestamp())) "
        "ORDER BY coalesce(s.queued_at, s.lease_until) LIMIT %s "
        "FOR UPDATE OF s SKIP LOCKED",
        (list(step_names), limit),
    )
    candidates = [
        StepCandidate(run_id, step_id, name, attempt, workflow, moment(started), bytes(data or b""))
        for run_id, step_id, name, attempt, workflow, started, data in await cur.fetchall()
    ]
    by_run: dict[str, list[str]] = {}
    for candidate in candidates:
        by_run.setdefault(candidate.run_id, []).append(candidate.step_id)
    if not by_run:
        return [], []
    jobs = [AppendJob(run, (), None, Lookups(steps, [], [], [])) for run, steps in by_run.items()]
    states, now = await read_states(conn, jobs, feed.channel, begin=False)
    claims: list[StepClaim] = []
    plans: list[AppendPlan] = []
    for candidate in candidates:
        state = states.get(candidate.run_id)
        if state is None:
            continue
        # Claims of one run share its state, so each sees the ones before it.
        plan, claim = plan_claim_step(candidate, state, worker.worker_id, lease_seconds, now)
        plans.append(plan)
        if claim is not None:
            claims.append(claim)
    return claims, plans


async def finish_step(
    conn: Conn,
    run_id: str,
    outcome: NewEvent,
    claimer: str,
    retry_after: float | None,
    feed: Feed,
) -> AppendPlan | None:
    """In a transaction this begins: the run's lock first and then the step's, the order
    appends take them in (an append holding the run's lock may be writing the step's row:
    the other order could deadlock with it, which costs both sides deadlock_timeout)."""
    job = AppendJob(run_id, (outcome,), None, Lookups([str(outcome.correlation_id)], [], [], []))
    states, now = await read_states(conn, [job], feed.channel, begin=True)
    cur = await conn.execute(
        "SELECT claimed_by FROM steps WHERE run_id = %s AND step_id = %s FOR UPDATE",
        (run_id, outcome.correlation_id),
    )
    row = await cur.fetchone()
    state = states.get(run_id)
    if row is None or state is None:
        return None
    return plan_finish_step(run_id, state, row[0], outcome, claimer, retry_after, now)
