"""Creating runs on PostgreSQL, one or a batch at once (group commit, as for appends).

A client that starts a thousand runs at once would otherwise pay a thousand transactions,
each two round trips and a commit, and compete with the workers' appends for every one of
them. ``create_run`` calls that arrive while another is in flight wait for it and are then
decided and written together: BEGIN, a lock on each id (advisory: the row may not exist yet;
in id order, so two batches never wait on each other in a cycle), the database's clock and
the runs that exist, in one round trip; then every run row, ``run_created`` event and
NOTIFY with the COMMIT in another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncClientCursor

from .. import _sql
from .._rows import run_from_row
from ..apply import CreatePlan, plan_create_run
from ..records import CreatedRun, Event, Lease, RunOptions, RunRecord
from ._dialect import moment
from ._feed import Feed
from ._jobs import has_event, insert_events, send_writes
from ._transactions import Conn


@dataclass(slots=True, eq=False)
class CreateJob:
    """One caller's ``create_run``."""

    run_id: str
    workflow_name: str
    input: bytes
    attrs: Mapping[str, Any]
    options: RunOptions
    start: float | None  # when the run is due (None: now)
    lease: Lease | None  # created claimed by this worker
    # The ``run_created`` each attempt chose (its id, before writing): after a lost COMMIT,
    # finding it tells that the attempt landed.
    attempts: list[Event] = field(default_factory=list)


async def decide(conn: Conn, jobs: Sequence[CreateJob], channel: str) -> list[CreatePlan]:
    """In a transaction this begins: each job's plan (its run, created or found)."""
    existing, now = await _lock_and_read(conn, [job.run_id for job in jobs], channel)
    plans = []
    for job in jobs:
        found = existing.get(job.run_id)
        # An earlier attempt of this call may have committed after all.
        earlier = job.attempts[-1].event_id if job.attempts else None
        if found is not None and earlier and await has_event(conn, job.run_id, 1, earlier):
            plans.append(CreatePlan(CreatedRun(found, True)))
            continue
        plan = plan_create_run(
            job.run_id,
            job.workflow_name,
            job.input,
            job.attrs,
            job.options,
            job.start,
            now,
            found,
            job.lease,
        )
        if plan.event is not None:
            job.attempts.append(plan.event)
        plans.append(plan)
    return plans


async def _lock_and_read(
    conn: Conn, run_ids: Sequence[str], channel: str
) -> tuple[dict[str, RunRecord], float]:
    """BEGIN; lock the ids; the runs that exist, and the database's time. One round trip,
    as one simple query (see ``_jobs.read_states`` for why not a pipeline)."""
    ids = sorted(run_ids)
    queries = ["BEGIN"]
    params: list[Any] = []
    for run_id in ids:
        queries.append("SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))")
        params.extend((channel, run_id))
    queries.append("SELECT clock_timestamp()")
    queries.append(f"SELECT {_sql.RUN_COLUMNS} FROM runs r WHERE r.run_id = ANY(%s)")
    params.append(ids)
    cur = AsyncClientCursor(conn)
    await cur.execute("; ".join(queries), params)
    for _ in range(1 + len(ids)):  # past BEGIN and the locks
        cur.nextset()
    clock = await cur.fetchone()
    assert clock is not None
    cur.nextset()
    runs = [run_from_row(row, moment) for row in await cur.fetchall()]
    return {run.run_id: run for run in runs}, clock[0].timestamp()


async def queue_creates(conn: Conn, plans: Sequence[CreatePlan], feed: Feed) -> None:
    """Queue, on the pipeline that ends with COMMIT, what creates the plans' runs."""
    created = [plan for plan in plans if plan.event is not None]
    await send_writes(conn, [write for plan in created for write in plan.writes])
    await insert_events(conn, [plan.event for plan in created if plan.event is not None])
    await feed.send(conn, [plan.change for plan in created if plan.change is not None])
