"""Group commit for the PostgreSQL World's appends.

A worker records each step of each run it holds with one append (the step's result, the next
step's creation and its start). When many runs are ready at the same moment (a few hundred
sleeps coming due together), one transaction per append means as many BEGINs, pipelines,
COMMITs and fsyncs, all competing for the pool while the later runs wait their turn. So the
World sends appends through an ``AppendQueue``: an append that finds no other in flight goes
straight through on its own; those that arrive meanwhile wait for it, and are then decided
and written together in one transaction (``_jobs.append_all``). Each gets the verdicts,
rows, events and notifications it would have had alone; one that fails (its run is gone, or
no longer held by the appending worker) fails alone.

Some appends hold work up and others do not: a step starts only once its ``step_started``
is committed, while no step waits for the append that ends a run (``step_completed`` +
``run_completed``). When a burst mixes the two (sleeps coming due while the runs that
already woke end), the queue commits the others first, and the run endings once no other
append waits, or once the oldest of them has waited ``DEFER_LIMIT`` (``AppendQueue``'s
``deferrable``). A worker is busiest in such a burst: taking turns, each wake-up waited for
the endings of the runs woken before it, and its latency grew with the burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from psycopg_pool import PoolClosed

from ...errors import AmbiguousCommitError, WorldClosedError, WorldUnavailableError
from ..records import AppendResult

log = logging.getLogger("workflowkit.postgres")

# Big enough that a burst of a few hundred wake-ups takes a handful of transactions, small
# enough that one batch's statements stay a short pipeline and its locks are held briefly.
BATCH_LIMIT = 128
# How long an append that holds no work up may be passed over while others keep arriving:
# a run's ending (its result, for whoever awaits it) waits at most about this long behind
# the wake-ups and step starts of a burst.
DEFER_LIMIT = 0.25
# At most this many of them in one transaction: a batch of a hundred run endings took some
# 30 ms, which every wake-up arriving meanwhile waited out.
DEFERRED_BATCH_LIMIT = 32


# -- the queue -------------------------------------------------------------------------------


class Job(Protocol):
    @property
    def run_id(self) -> str: ...


J = TypeVar("J", bound=Job)
R = TypeVar("R")
Outcome = AppendResult | BaseException
AllAtOnce = Callable[[list[J]], Awaitable[Sequence[R | BaseException]]]


async def alone(all_at_once: AllAtOnce[J, R], job: J) -> R:
    """One job in a transaction of its own."""
    (outcome,) = await all_at_once([job])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def together(
    all_at_once: AllAtOnce[J, R], jobs: list[J], what: str
) -> Sequence[R | BaseException]:
    """Jobs in one transaction (group commit). If it fails as a whole for a reason that is
    not the database or the World being away (a statement one job's data makes fail), each
    job is done on its own instead, so only the job at fault fails."""
    try:
        return await all_at_once(jobs)
    except (WorldUnavailableError, AmbiguousCommitError, WorldClosedError, PoolClosed):
        raise  # about the database or the World, not one job: every job shares it
    except Exception as exc:
        log.warning(
            "PostgreSQL World: a batch of %d %s failed (%s); doing each alone", len(jobs), what, exc
        )
    return await asyncio.gather(*(alone(all_at_once, job) for job in jobs), return_exceptions=True)


class AppendQueue(Generic[J, R]):
    """Hot-path writes of one World (appends; the same for run creations), on the World's
    loop: alone while nothing else is in flight, otherwise queued and then committed
    together.

    At most one such transaction is in flight at a time: that is what makes the others
    queue, and a burst costs a few commits instead of one each. A lone append pays nothing
    for this (no task, no wait). Each batch holds at most one job per run, so a run's
    appends keep their order; the next one waits for the next batch.

    ``deferrable`` tells the jobs that hold no work up (see the module's docstring). While
    both kinds wait, a batch takes only the others, until the oldest deferrable job has
    waited ``defer_limit`` seconds; then a batch takes everything in arrival order, so a
    deferrable job is not held back for longer however many others keep arriving. A job of
    a run whose earlier job was passed over waits too.
    """

    def __init__(
        self,
        alone: Callable[[J], Awaitable[R]],
        together: Callable[[list[J]], Awaitable[Sequence[R | BaseException]]],
        *,
        limit: int = BATCH_LIMIT,
        deferrable: Callable[[J], bool] | None = None,
        defer_limit: float = DEFER_LIMIT,
    ) -> None:
        self._alone = alone
        self._together = together
        self._limit = limit
        self._deferrable = deferrable
        self._defer_limit = defer_limit
        self._waiting: deque[tuple[J, asyncio.Future[R]]] = deque()
        self._since: dict[int, float] = {}  # id of a waiting deferrable job -> when it came
        self._busy = False
        self._closed = False
        # Held so the draining task is not garbage collected: the loop keeps weak references.
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, job: J) -> R:
        if self._closed:
            raise WorldClosedError("this World is closed")
        if not self._busy:
            self._busy = True
            try:
                return await self._alone(job)
            finally:
                self._hand_over()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._deferrable is not None and self._deferrable(job):
            self._since[id(job)] = loop.time()
        self._waiting.append((job, future))
        return await future

    def close(self) -> None:
        """Fail what still waits; later submissions fail at once."""
        self._closed = True
        self._since.clear()
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

    def _take(self) -> list[tuple[J, asyncio.Future[R]]]:
        batch = self._collect(self._pass_over())
        if not batch:  # every job not deferrable waits behind an earlier one of its run
            batch = self._collect(False)
        for job, _ in batch:
            self._since.pop(id(job), None)
        return batch

    def _collect(self, pass_over: bool) -> list[tuple[J, asyncio.Future[R]]]:
        """Take the next batch out of the waiting jobs: one job per run, in arrival order,
        without the deferrable ones if ``pass_over`` (else ``DEFERRED_BATCH_LIMIT`` of
        them at most)."""
        deferrable = self._deferrable
        room = 0 if pass_over else DEFERRED_BATCH_LIMIT  # for deferrable jobs
        batch: list[tuple[J, asyncio.Future[R]]] = []
        later: deque[tuple[J, asyncio.Future[R]]] = deque()
        runs: set[str] = set()  # taken, or passed over: the run's later jobs wait
        while self._waiting and len(batch) < self._limit:
            item = self._waiting.popleft()
            run_id = item[0].run_id
            deferred = deferrable is not None and deferrable(item[0])
            if run_id in runs or (deferred and room == 0):
                later.append(item)
            else:
                batch.append(item)
                room -= deferred
            runs.add(run_id)
        later.extend(self._waiting)
        self._waiting = later
        return batch

    def _pass_over(self) -> bool:
        """Whether the next batch leaves the deferrable jobs for later: others wait too, and
        no deferrable one has waited ``defer_limit`` yet."""
        since = self._since
        if not since or len(since) == len(self._waiting):
            return False
        oldest = next(iter(since.values()))  # in arrival order
        return asyncio.get_running_loop().time() - oldest < self._defer_limit

    async def _settle(self, batch: list[tuple[J, asyncio.Future[R]]]) -> None:
        jobs = [job for job, _ in batch]
        outcomes: Sequence[R | BaseException]
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


def _resolve(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, asyncio.CancelledError):
        future.cancel()
    elif isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
