"""Group commit for the PostgreSQL World's hot path: appends made only of step and wait events.

A worker records each step of each run it holds with one append (the step's result, the next
step's creation and its start). When many runs are ready at the same moment (a few hundred
sleeps coming due together), one transaction per append means as many BEGINs, pipelines,
COMMITs and fsyncs, all competing for the pool while the later runs wait their turn. So the
World sends these appends through an ``AppendQueue``: an append that finds no other in flight
goes straight through on its own, exactly as before; those that arrive meanwhile wait for it,
and are then decided and written together in one transaction by ``append_many``. Each gets
the verdicts, rows, events and notifications it would have had alone; one that fails (its run
is gone, or no longer held by the appending worker) fails alone.

Also here: the rules for row events that both paths share (``rows_touched``, ``decide``,
``plan_rows``, ``send_writes``), so a batch cannot drift from a lone append.

Deadlocks: a batch locks its runs rows in ``run_id`` order, as lease renewal does, so two
batches (from this World or another process) or a batch and a renewal never wait on each
other in a cycle.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection, AsyncCursor

from ..errors import CorruptDataError, LeaseLostError, WorkflowRunNotFoundError, WorldClosedError
from ..ids import new_ids
from .records import (
    DELIVERY_EVENTS,
    STEP_TARGET,
    STEP_TRANSITIONS,
    AppendResult,
    Event,
    EventType,
    NewEvent,
    Rejected,
    RunChange,
    RunStatus,
    StepStatus,
)
from .rows import event_row, run_status

Conn = AsyncConnection[tuple[Any, ...]]

# Big enough that a burst of a few hundred wake-ups takes a handful of transactions, small
# enough that one batch's statements stay a short pipeline and its locks are held briefly.
BATCH_LIMIT = 128

# Events whose whole effect is one write to one row of steps or waits, decided by that row's
# current state alone.
_ROW_EVENTS = frozenset(
    {EventType.STEP_CREATED, *STEP_TRANSITIONS, EventType.WAIT_CREATED, EventType.WAIT_COMPLETED}
)
_WAIT_EVENTS = (EventType.WAIT_CREATED, EventType.WAIT_COMPLETED)

_INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, attrs, "
    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


# -- the rules for row events ------------------------------------------------------------------


def rows_touched(events: Sequence[NewEvent]) -> tuple[list[str], list[str]] | None:
    """The step ids and wait ids of a batch made only of row events; None for any other."""
    steps: list[str] = []
    waits: list[str] = []
    for new in events:
        if new.type not in _ROW_EVENTS or new.correlation_id is None:
            return None
        (waits if new.type in _WAIT_EVENTS else steps).append(new.correlation_id)
    return steps, waits


def decide(new: NewEvent, states: dict[tuple[str, str], str]) -> NewEvent | str:
    """A row event's verdict from its row's state (the event, or why it is refused); updates
    ``states`` as if it were applied, so later events of the same append see it."""
    kind, cid = new.type, str(new.correlation_id)
    if kind is EventType.STEP_CREATED:
        if ("step", cid) in states:
            return f"step {cid} already exists"
        states["step", cid] = str(StepStatus.PENDING)
        return new
    if kind is EventType.WAIT_CREATED:
        if ("wait", cid) in states:
            return f"wait {cid} already exists"
        states["wait", cid] = "waiting"
        return new
    if kind is EventType.WAIT_COMPLETED:
        if states.get(("wait", cid)) != "waiting":
            return f"wait {cid} is not waiting"
        states["wait", cid] = "completed"
        return new
    current = states.get(("step", cid))
    if current is None:
        return f"step {cid} does not exist"
    if StepStatus(current) not in STEP_TRANSITIONS[kind]:
        return f"step {cid} is {current}, cannot apply {kind}"
    states["step", cid] = str(STEP_TARGET[kind])
    return new


def row_write(run_id: str, seq: int, new: NewEvent, at: datetime) -> tuple[str, tuple[Any, ...]]:
    """The statement recording row event ``new`` (the ``seq``-th of the run's log)."""
    kind, cid = new.type, new.correlation_id
    if kind is EventType.STEP_CREATED:
        return (
            "INSERT INTO steps (step_id, run_id, step_name, status, attempt, input_seq, "
            "created_at) VALUES (%s, %s, %s, 'pending', 0, %s, %s) ON CONFLICT DO NOTHING",
            (cid, run_id, str(new.attrs.get("name", "")), seq, at),
        )
    if kind is EventType.WAIT_CREATED:
        return (
            "INSERT INTO waits (wait_id, run_id, resume_at, created_at) "
            "VALUES (%s, %s, to_timestamp(%s::float8), %s) ON CONFLICT DO NOTHING",
            (cid, run_id, float(new.attrs["resume_at"]), at),
        )
    if kind is EventType.WAIT_COMPLETED:
        return (
            "UPDATE waits SET completed_at = %s WHERE run_id = %s AND wait_id = %s "
            "AND completed_at IS NULL",
            (at, run_id, cid),
        )
    allowed = ",".join(f"'{status}'" for status in STEP_TRANSITIONS[kind])
    target = str(STEP_TARGET[kind])
    where = f"WHERE run_id = %s AND step_id = %s AND status IN ({allowed})"
    if kind is EventType.STEP_STARTED:
        attempt = new.attrs.get("attempt")
        return (
            "UPDATE steps SET status = %s, attempt = coalesce(%s::integer, attempt + 1), "
            f"started_at = coalesce(started_at, %s), retry_at = NULL {where}",
            (target, None if attempt is None else int(attempt), at, run_id, cid),
        )
    if kind is EventType.STEP_RETRYING:
        retry_at = new.attrs.get("retry_at")
        return (
            "UPDATE steps SET status = %s, error_seq = %s, "
            f"retry_at = to_timestamp(%s::float8) {where}",
            (target, seq, None if retry_at is None else float(retry_at), run_id, cid),
        )
    column = "output_seq" if kind is EventType.STEP_COMPLETED else "error_seq"
    return (
        f"UPDATE steps SET status = %s, {column} = %s, completed_at = %s {where}",
        (target, seq, at, run_id, cid),
    )


class Write(NamedTuple):
    """One row write. ``layer`` counts the earlier writes of the same append to the same row:
    writes of one layer touch distinct rows, so each layer can go as a few ``executemany``."""

    layer: int
    query: str
    params: tuple[Any, ...]


def touch_run(
    run_id: str, accepted: Sequence[Event], owner: str | None, status: RunStatus
) -> Write:
    """The update that dates a change others must hear of (and makes the run due, if it
    delivered something without an owner to act on it)."""
    delivered = any(e.type in DELIVERY_EVENTS for e in accepted)
    wake = delivered and owner is None and not status.terminal
    query = (
        "UPDATE runs SET updated_at = clock_timestamp()"
        f"{', wake_at = clock_timestamp()' if wake else ''} WHERE run_id = %s"
    )
    return Write(0, query, (run_id,))


@dataclass(slots=True)
class RowPlan:
    """What an append of row events does to its run: the events, the writes, the refusals."""

    accepted: list[Event] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)


def plan_rows(
    run_id: str,
    status: RunStatus,
    seq: int,
    now: datetime,
    events: Sequence[NewEvent],
    states: dict[tuple[str, str], str],
) -> RowPlan:
    """Decide row events from the state read under the run lock; ``seq`` is the log's head."""
    plan = RowPlan()
    layers: dict[tuple[str, str], int] = {}
    event_ids = new_ids("evnt", len(events))  # one draw; refused events leave theirs unused
    for new in events:
        at = new.created_at if new.created_at is not None else now
        verdict = f"run is {status}" if status.terminal else decide(new, states)
        if isinstance(verdict, str):
            plan.rejected.append(Rejected(new, verdict))
            continue
        seq += 1
        row = ("wait" if new.type in _WAIT_EVENTS else "step", str(new.correlation_id))
        layer = layers[row] = layers.get(row, -1) + 1
        plan.writes.append(Write(layer, *row_write(run_id, seq, new, at)))
        plan.accepted.append(
            Event(
                run_id,
                seq,
                event_ids[len(plan.accepted)],
                new.type,
                new.correlation_id,
                new.payload,
                new.attrs,
                at.astimezone(UTC),
            )
        )
    return plan


async def send_writes(conn: Conn, writes: Sequence[Write]) -> list[tuple[AsyncCursor[Any], int]]:
    """Queue ``writes`` on a pipeline, layer by layer; each cursor with the rows it must hit.

    The statements of one layer go as one ``executemany`` per query text: far fewer Python
    calls than a statement each once a batch holds a hundred appends."""
    groups: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
    for write in sorted(writes, key=lambda w: w.layer):
        groups.setdefault((write.layer, write.query), []).append(write.params)
    sent: list[tuple[AsyncCursor[Any], int]] = []
    for (_, query), rows in groups.items():
        cursor = conn.cursor()
        await cursor.executemany(query.encode(), rows)
        sent.append((cursor, len(rows)))
    return sent


def check_writes(sent: Sequence[tuple[AsyncCursor[Any], int]], what: str) -> None:
    """Every write was decided from state read under the run lock, so each must hit its row;
    one that did not means something changed steps or waits without that lock: roll back
    rather than record a lie."""
    if any(cursor.rowcount != expected for cursor, expected in sent):
        raise CorruptDataError(f"{what}: steps or waits changed without the run lock")


async def insert_events(conn: Conn, events: Sequence[Event]) -> None:
    async with conn.cursor() as cursor:
        await cursor.executemany(
            _INSERT_EVENT,
            [event_row(e, e.created_at) for e in events],
        )


# -- many appends, one transaction -----------------------------------------------------------


@dataclass(slots=True, eq=False)
class AppendJob:
    """One caller's append of row events (``rows_touched`` gave ``steps`` and ``waits``)."""

    run_id: str
    events: Sequence[NewEvent]
    owner: str | None
    steps: list[str]
    waits: list[str]


@dataclass(slots=True)
class Verdict:
    """A job's outcome in a batch: its result or its own error, and what to tell listeners."""

    result: AppendResult | Exception
    change: RunChange | None = None
    announce: bool = False


@dataclass(slots=True)
class _Heads:
    """What the first round trip of a batch read, by run id."""

    locks: dict[str, tuple[str, str | None]]
    logs: dict[str, tuple[int, datetime]]
    states: dict[str, dict[tuple[str, str], str]]


async def append_many(
    conn: Conn, jobs: Sequence[AppendJob], channel: str, payload: Callable[[RunChange], str]
) -> list[Verdict]:
    """Decide and write ``jobs`` (each on a different run) in a transaction this begins.

    Two round trips whatever the number of jobs, as for one: BEGIN, lock every run and read
    what the jobs touch, then send every write, event and NOTIFY. A job whose run is missing or not
    held by its owner gets its error and writes nothing; the others go on.
    """
    heads = await _read_heads(conn, jobs)
    verdicts: list[Verdict] = []
    writes: list[Write] = []
    events: list[Event] = []
    for job in jobs:
        verdict, plan = _judge(job, heads)
        verdicts.append(verdict)
        if plan is not None:
            writes.extend(plan.writes)
            events.extend(plan.accepted)
    if not events:
        return verdicts
    notices = [payload(v.change) for v in verdicts if v.announce and v.change is not None]
    async with conn.pipeline():
        sent = await send_writes(conn, writes)
        await insert_events(conn, events)
        if notices:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "SELECT pg_notify(%s, %s)", [(channel, notice) for notice in notices]
                )
    check_writes(sent, f"a batch of {len(jobs)} appends")
    return verdicts


async def _read_heads(conn: Conn, jobs: Sequence[AppendJob]) -> _Heads:
    run_ids = [job.run_id for job in jobs]
    steps = sorted({(job.run_id, step) for job in jobs for step in job.steps})
    waits = sorted({(job.run_id, wait) for job in jobs for wait in job.waits})
    # The locks are taken in run_id order (ORDER BY runs below the row locking), the order
    # lease renewal uses too: no two such transactions wait on each other in a cycle. The
    # log and rows are read by statements after the lock: one that waited for the lock
    # still had the old snapshot.
    async with conn.pipeline():
        await conn.execute("BEGIN")
        lock = await conn.execute(
            "SELECT run_id, status, owner FROM runs WHERE run_id = ANY(%s) "
            "ORDER BY run_id FOR UPDATE",
            (run_ids,),
        )
        head = await conn.execute(
            "SELECT r.id, (SELECT max(seq) FROM events e WHERE e.run_id = r.id), "
            "clock_timestamp() FROM unnest(%s::text[]) AS r(id)",
            (run_ids,),
        )
        touched = await conn.execute(
            "SELECT s.run_id, 'step', s.step_id, s.status FROM steps s "
            "JOIN unnest(%s::text[], %s::text[]) AS t(run_id, id) "
            "ON s.run_id = t.run_id AND s.step_id = t.id "
            "UNION ALL SELECT w.run_id, 'wait', w.wait_id, CASE WHEN w.completed_at IS NULL "
            "THEN 'waiting' ELSE 'completed' END FROM waits w "
            "JOIN unnest(%s::text[], %s::text[]) AS t(run_id, id) "
            "ON w.run_id = t.run_id AND w.wait_id = t.id",
            (*_columns(steps), *_columns(waits)),
        )
    states: dict[str, dict[tuple[str, str], str]] = {run_id: {} for run_id in run_ids}
    for run_id, kind, cid, state in await touched.fetchall():
        states[run_id][kind, cid] = state
    return _Heads(
        {r[0]: (r[1], r[2]) for r in await lock.fetchall()},
        {r[0]: (int(r[1] or 0), r[2]) for r in await head.fetchall()},
        states,
    )


def _columns(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[str]]:
    return [run_id for run_id, _ in pairs], [cid for _, cid in pairs]


def _judge(job: AppendJob, heads: _Heads) -> tuple[Verdict, RowPlan | None]:
    """One job's verdict, as ``_append`` would reach it alone, and its plan if it writes."""
    lock = heads.locks.get(job.run_id)
    if lock is None:
        return Verdict(WorkflowRunNotFoundError(job.run_id)), None
    if job.owner is not None and lock[1] != job.owner:
        return Verdict(LeaseLostError(job.run_id, job.owner)), None
    status = run_status(lock[0])
    seq, now = heads.logs[job.run_id]
    plan = plan_rows(job.run_id, status, seq, now, job.events, heads.states[job.run_id])
    last = plan.accepted[-1].seq if plan.accepted else seq
    change = RunChange(job.run_id, last, status, writer=job.owner)
    # Row events never change the run's status, so only ownerless writers announce.
    announce = bool(plan.accepted) and job.owner is None
    if announce:
        plan.writes.append(touch_run(job.run_id, plan.accepted, job.owner, status))
    result = AppendResult(plan.accepted, plan.rejected, status)
    return Verdict(result, change, announce), plan


# -- the queue -------------------------------------------------------------------------------

Outcome = AppendResult | BaseException
Alone = Callable[[AppendJob], Awaitable[AppendResult]]
Together = Callable[[list[AppendJob]], Awaitable[Sequence[Outcome]]]


class AppendQueue:
    """Hot-path appends of one World, on the World's loop: alone while nothing else is in
    flight, otherwise queued and then committed together.

    At most one such transaction is in flight at a time: that is what makes the others
    queue, and a burst costs a few commits instead of one each. A lone append pays nothing
    for this (no task, no wait). Each batch holds at most one append per run, so a run's
    appends keep their order; the next one waits for the next batch.
    """

    def __init__(self, alone: Alone, together: Together, *, limit: int = BATCH_LIMIT) -> None:
        self._alone = alone
        self._together = together
        self._limit = limit
        self._waiting: deque[tuple[AppendJob, asyncio.Future[AppendResult]]] = deque()
        self._busy = False
        self._closed = False
        # Held so the draining task is not garbage collected: the loop keeps weak references.
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, job: AppendJob) -> AppendResult:
        if self._closed:
            raise WorldClosedError("this World is closed")
        if not self._busy:
            self._busy = True
            try:
                return await self._alone(job)
            finally:
                self._hand_over()
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        return await future

    def close(self) -> None:
        """Fail what still waits; later submissions fail at once."""
        self._closed = True
        while self._waiting:
            _, future = self._waiting.popleft()
            if not future.done():
                future.set_exception(WorldClosedError("this World was closed"))

    def _hand_over(self) -> None:
        """The transaction in flight ended: whatever queued meanwhile goes next."""
        if self._waiting and not self._closed:
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._waiting and not self._closed:
                await self._settle(self._take())
        finally:
            self._busy = False
            self._drainer = None

    def _take(self) -> list[tuple[AppendJob, asyncio.Future[AppendResult]]]:
        batch: list[tuple[AppendJob, asyncio.Future[AppendResult]]] = []
        later: deque[tuple[AppendJob, asyncio.Future[AppendResult]]] = deque()
        runs: set[str] = set()
        while self._waiting and len(batch) < self._limit:
            item = self._waiting.popleft()
            if item[0].run_id in runs:
                later.append(item)
            else:
                runs.add(item[0].run_id)
                batch.append(item)
        later.extend(self._waiting)
        self._waiting = later
        return batch

    async def _settle(self, batch: list[tuple[AppendJob, asyncio.Future[AppendResult]]]) -> None:
        jobs = [job for job, _ in batch]
        outcomes: Sequence[Outcome]
        try:
            if len(jobs) == 1:
                outcomes = [await self._alone(jobs[0])]
            else:
                outcomes = await self._together(jobs)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # the transaction as a whole failed: so did every job
            outcomes = [exc] * len(jobs)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _resolve(future, outcome)


def _resolve(future: asyncio.Future[AppendResult], outcome: Outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
