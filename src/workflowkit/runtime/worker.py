"""The worker: claims due runs from the World, keeps them in memory, renews their leases.

It also runs steps of other workers' runs: a run's driver with no free step slot queues new
steps in the World's step queue, and any worker with a free slot claims them under a lease
(it is then the step's claimer).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import os
import random
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .. import _lifecycle, _retention, _settings
from .._retry_policy import DEFAULT_RETRY, Retry
from ..context import WorkflowMetadata
from ..errors import LeaseLostError, StepOptionsError
from ..ids import new_id
from ..queues import defined_queues
from ..registry import REGISTRY, Registry, Workflow
from ..urls import base_url
from ..worlds.base import World
from ..worlds.records import (
    CreatedRun,
    Event,
    Lease,
    QueueLimits,
    RunChange,
    RunOptions,
    RunRecord,
    StepClaim,
    WorkerInfo,
)
from ._driver_state import utc_at
from .determinism import install as install_determinism
from .driver import DriverConfig, RunDriver, timeout_failure
from .schedules import ScheduleFirer
from .steps import Attempt, run_attempt
from .versions import code_version

log = logging.getLogger("workflowkit.worker")
# A claimed run's log is read with the others claimed at once unless it is longer than this:
# one read for a claim of many short runs, and at most 256 x 50 events decoded in one go
# (the worker's loop does nothing else meanwhile).
_BATCHED_LOG = 50


class Worker:
    """Executes runs. Many may share one World; leases keep each run on one worker at a time."""

    def __init__(
        self,
        world: World,
        *,
        registry: Registry = REGISTRY,
        max_runs: int | None = None,
        lease_seconds: float | None = None,
        evict_after: float = 5.0,
        poll_interval: float = 1.0,
        step_threads: int = 32,
        step_slots: int | None = None,
        cache_runs: bool | None = None,
        virtual_clock: bool = False,
        retention: float | None = None,
        collect_every: float | None = None,
        retry: Retry | None = None,
    ) -> None:
        install_determinism()
        if retry is not None and not isinstance(retry, Retry):
            raise StepOptionsError(f"Worker(retry=...) takes a workflowkit.Retry, not {retry!r}")
        # The policy of steps that name none (``@step`` without retry= or max_retries=).
        self.retry = retry or _settings.default_retry() or DEFAULT_RETRY
        self.world = world
        self.registry = registry
        self.worker_id = new_id("wrkr")
        # Runs held in memory at once: what bounds a worker's memory when runs come due
        # faster than it can put them to sleep.
        self.max_runs = max_runs or _settings.max_runs()
        self.lease_seconds = lease_seconds or _settings.lease_seconds()
        # What the World knows of this worker: the workflows it can execute, which is what
        # ``inspect`` and ``start`` read to say a run waits for a worker that has one.
        self.info = WorkerInfo(
            self.worker_id,
            socket.gethostname(),
            os.getpid(),
            tuple(registry.workflows),
            self.lease_seconds,
        )
        self.poll_interval = poll_interval
        # Ended runs older than this are deleted now and then (None: kept forever).
        self.retention = _settings.retention() if retention is None else retention
        self.collect_every = collect_every
        self.step_pool = ThreadPoolExecutor(step_threads, thread_name_prefix="workflowkit-step")
        # Without the run cache every event replays the run from the log: slow, but a
        # thorough check that workflow code is deterministic.
        if cache_runs is None:
            cache_runs = _settings.run_cache()
        self.driver_config = DriverConfig(
            world,
            self.worker_id,
            self.step_pool,
            evict_after,
            cache_runs,
            virtual_clock,
            self.retry,
        )
        # Steps this worker runs at once (its runs' and claimed ones); beyond that a run's new
        # steps go to the World's step queue for any worker with a free slot.
        self.step_slots = step_slots or _settings.step_slots()
        self.running_steps = 0
        # Steps whose starts are recorded, waiting for a slot to run in (oldest first).
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.claimed: dict[str, asyncio.Task[None]] = {}  # step id -> the task running it
        self._steps_wanted = True  # the step queue may hold work for us
        self._queued_steps = False  # this worker queued steps it did not run itself
        self.drivers: dict[str, RunDriver] = {}
        self._crowded = False  # the last claim found no room (see ``crowded``)
        self._running: asyncio.Task[Any] | None = None  # the task in run()
        self._queues: list[QueueLimits] = []  # the queue limits this worker registered
        # The last claim left due runs behind (queue limits): a run ending anywhere may free
        # a place, so changes are worth a new claim.
        self._held_back = False
        self._look_for_parked_at = 0.0  # time.monotonic() of the next look for parked runs
        # Fires the ticks of the schedules of this worker's workflows (in the World).
        self.schedules = ScheduleFirer(world, registry, poll_interval, virtual_clock)
        self.stopping = False
        self._adopting = False  # whether lease_for may hand out leases (run() is listening)
        self._releases: set[asyncio.Task[Any]] = set()  # hand-backs of runs adopted too late
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and execute runs until ``stop()``."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._running = asyncio.current_task()
        if not await self._register():
            return
        unsubscribe = self.world.subscribe(self._listener)
        self._adopting = True  # from now on, an adopted run hears of its changes
        renewer = self._loop.create_task(self._renew_forever())
        collector = gauge = None
        if self.retention is not None:
            collector = self._loop.create_task(self._collect_forever(self.retention))
        counting = _lifecycle.runs_gauge(self.world)
        if counting is not None:
            gauge = self._loop.create_task(counting)
        try:
            failures = 0
            while not self.stopping:
                try:
                    await self.schedules.declare()
                    await self.schedules.fire()
                    # A claim that got fewer than it asked for took everything due: the
                    # next is worth making only when told of a change (or at the poll).
                    more = await self._claim()
                    more = await self._claim_steps() or more
                    if more and not self.crowded():
                        continue
                    await self._idle()
                    failures = 0
                except Exception:
                    # The store is unreachable or failing: keep the worker alive and retry.
                    failures += 1
                    await self._cannot_reach(failures)
        finally:
            self._adopting = False
            unsubscribe()
            for task in (renewer, collector, gauge):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _register(self) -> bool:
        """Tell the World of this worker, its queues and its code; whether it could before
        ``stop()``. A World unreachable at start is waited out as in the loop: a worker
        started during an outage (or a process whose first writes meet one) starts once it
        ends, rather than stopping there and leaving every run of the process pending."""
        failures = 0
        while not self.stopping:
            try:
                await self.world.register_worker(self.info)
                await self._register_queues()
                await self._resume_diverged(self.info.workflows)
                return True
            except Exception:
                failures += 1
                await self._cannot_reach(failures)
        return False

    async def _cannot_reach(self, failures: int) -> None:
        log.exception("worker %s cannot reach the World; retrying", self.worker_id)
        await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _claim(self) -> bool:
        """Claim due runs; whether there may be more (the claim got all it asked for)."""
        room = self.max_runs - len(self.drivers)
        if room <= 0:
            if not self._crowded:  # just filled up: the runs idle now make room
                self._crowded = True
                for driver in self.drivers.values():
                    if driver.idle_since is not None:
                        driver.poke()
            return False
        self._crowded = False
        workflows = tuple(self.registry.workflows)
        if workflows != self.info.workflows:  # a module registered more since the last claim
            added = [name for name in workflows if name not in self.info.workflows]
            self.info = dataclasses.replace(self.info, workflows=workflows)
            await self.world.register_worker(self.info)
            await self._resume_diverged(added)
        await self._register_queues()
        if time.monotonic() >= self._look_for_parked_at:
            # Runs another worker's code parked since: one write per workflow, so once per
            # poll, not on every claim.
            self._look_for_parked_at = time.monotonic() + self.poll_interval
            await self._resume_diverged(self.info.workflows)
        limit = min(room, 256)
        records = await self.world.claim_runs(
            self.info,
            list(workflows),  # only runs this worker can execute
            limit=limit,
            lease_seconds=self.lease_seconds,
        )
        logs = await self._logs_of(records)
        for record in records:
            if record.run_id not in self.drivers and not self.stopping:
                await self._drive(record, logs.get(record.run_id))
        return len(records) == limit

    async def _logs_of(self, records: Sequence[RunRecord]) -> dict[str, list[Event]]:
        """The logs of the runs a claim took, in one read rather than one per driver
        (a worker's start-up, a burst of runs started elsewhere): those of this worker's
        workflows, unless longer than ``_BATCHED_LOG`` events. A read that fails leaves
        each driver to read its own (and to wait out an outage as it does)."""
        wanted = [
            r.run_id
            for r in records
            if r.last_seq <= _BATCHED_LOG
            and r.run_id not in self.drivers
            and r.workflow_name in self.registry.workflows
        ]
        if len(wanted) < 2:
            return {}
        try:
            return await self.world.get_logs(wanted)
        except Exception as exc:
            log.debug("reading %d claimed runs' logs at once failed: %s", len(wanted), exc)
            return {}

    async def _resume_diverged(self, names: Sequence[str]) -> None:
        """Runs parked by other code may replay with this code: make them due again."""
        workflows = self.registry.workflows
        versions = {name: code_version(workflows[name]) for name in names if name in workflows}
        if not versions:
            return
        resumed = await self.world.resume_diverged(versions)
        if resumed:
            log.info("retrying %d parked run(s) with this code", len(resumed))

    async def _register_queues(self) -> None:
        """Write the limits of queues defined since the last look (the World enforces them)."""
        queues = [q.limits for q in defined_queues().values()]
        if queues != self._queues:
            await self.world.register_queues(queues)
            self._queues = queues

    async def _drive(self, record: RunRecord, events: list[Event] | None = None) -> None:
        workflow = self.registry.workflow(record.workflow_name)
        if workflow is None:
            await self._not_mine(record)
            return
        self._start_driver(record, workflow, events)

    def _start_driver(
        self, record: RunRecord, workflow: Workflow[Any, Any], log: list[Event] | None = None
    ) -> None:
        driver = RunDriver(self, self.driver_config, record, workflow, log)
        self.drivers[record.run_id] = driver
        driver.start()

    # -- runs this process starts ----------------------------------------------------------------

    def lease_for(
        self, workflow_name: str, options: RunOptions, start_at: float | None
    ) -> Lease | None:
        """A lease to create a run with, if this worker executes it at once (thread-safe).

        Only a run a claim would hand it now anyway: due at once, in no queue (whose limits
        only a claim applies), of a workflow it has, with room. Starts racing on other
        threads may take a few runs past ``max_runs``; it bounds memory, not correctness.
        """
        if (
            start_at is not None
            or options.queue is not None
            or self.stopping
            or not self._adopting
            or self.crowded()
            or self.registry.workflow(workflow_name) is None
        ):
            return None
        return Lease(self.worker_id, self.lease_seconds)

    def adopt(self, created: CreatedRun) -> None:
        """Execute a run just created with a lease from ``lease_for`` (thread-safe). If the
        loop is gone, the lease runs out and any worker claims the run then."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._adopt, created)

    def _adopt(self, created: CreatedRun) -> None:
        record = created.record
        workflow = self.registry.workflow(record.workflow_name)
        if self.stopping or workflow is None:
            # Stopping meanwhile: hand it back for any worker, now rather than at lease end.
            release = self.world.release_run(
                record.run_id, self.worker_id, utc_at(self.world.now())
            )
            task = asyncio.get_running_loop().create_task(release)
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
            return
        # Its log is the one event just written: the driver need not read it back.
        self._start_driver(record, workflow, None if created.event is None else [created.event])

    async def _not_mine(self, record: RunRecord) -> None:
        """A claimed run of a workflow this worker does not have. Claims take those only
        once past their deadline: failing them needs no code. Otherwise the registry changed
        meanwhile: hand the run back for a worker that has it, never fail it."""
        now = self.world.now()
        deadline = record.options.deadline
        if deadline is not None and deadline.timestamp() <= now:
            failure = timeout_failure(record.run_id, deadline.timestamp(), now)
            with contextlib.suppress(LeaseLostError):
                result = await self.world.append(record.run_id, [failure], owner=self.worker_id)
                _lifecycle.ended_undriven(record.run_id, record.workflow_name, result.events)
                children = result.cancelled_children
                await _lifecycle.children_cancelled(self.world, record.run_id, children)
            return
        await self.world.release_run(record.run_id, self.worker_id, utc_at(now))

    async def _idle(self) -> None:
        assert self._wake is not None
        timeout = self.poll_interval
        # Runs just claimed read their logs first: this look-up would queue ahead of them.
        await asyncio.sleep(0)
        wake_at = await self.world.next_wake_at(list(self.registry.workflows))
        self._held_back = False
        if wake_at is not None:
            due_in = wake_at.timestamp() - self.world.now()
            # Due, yet the claim just made left it: held back by its queue's limits (or
            # taken meanwhile). Wait for a place to free up, or for the next poll.
            self._held_back = due_in <= 0
            if not self._held_back:
                timeout = min(timeout, due_in)
        tick_in = self.schedules.wake_in()
        if tick_in is not None:
            timeout = min(timeout, tick_in)
        if timeout > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                # The fallback poll also finds delayed retries and steps whose claimer died.
                self._steps_wanted = True
        self._wake.clear()

    # -- step slots and the step queue ----------------------------------------------------------

    def _free_slots(self) -> int:
        return self.step_slots - self.running_steps - len(self._slot_waiters)

    def crowded(self) -> bool:
        """Whether this worker holds as many runs as it may: then a run with nothing to do
        leaves memory at once rather than after ``evict_after``, to make room for runs that
        are due (the least recently busy go first, as from a cache)."""
        return len(self.drivers) >= self.max_runs

    def has_room(self, placed: int) -> bool:
        return self._free_slots() > placed

    def take_slot(self) -> bool:
        if self.running_steps >= self.step_slots or self._slot_waiters:
            return False
        self.running_steps += 1
        return True

    async def wait_for_slot(self) -> None:
        assert self._loop is not None
        turn: asyncio.Future[None] = self._loop.create_future()
        self._slot_waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release_slot()  # handed over as this waiter was cancelled: pass it on
            else:
                self._slot_waiters.remove(turn)
            raise

    def release_slot(self) -> None:
        while self._slot_waiters:  # the slot goes to the step that waited longest
            turn = self._slot_waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running_steps -= 1
        if self._queued_steps:  # this worker queued steps: now it has a slot for one itself
            self._steps_wanted = True
        if self._steps_wanted:
            self.notify()

    def note_queued(self) -> None:
        self._queued_steps = True
        if self.running_steps < self.step_slots:
            # Slots came free while the steps were being queued (their releases found no
            # queued work yet): claim them now rather than at the next poll.
            self._steps_wanted = True
            self.notify()

    async def _claim_steps(self) -> bool:
        """Claim queued steps when told there are some; whether there may be more."""
        room = self._free_slots()
        if not self._steps_wanted or room <= 0 or self.stopping:
            return False
        self._steps_wanted = False
        claims = await self.world.claim_steps(
            self.info,
            list(self.registry.steps),
            limit=min(room, 64),
            lease_seconds=self.lease_seconds,
        )
        loop = asyncio.get_running_loop()
        for claim in claims:
            self.running_steps += 1
            self.claimed[claim.step_id] = loop.create_task(self._run_claim(claim))
        if len(claims) == min(room, 64):
            self._steps_wanted = True  # there may be more
            return True
        self._queued_steps = False  # the queue holds nothing more for us
        return False

    async def _run_claim(self, claim: StepClaim) -> None:
        try:
            step = self.registry.steps[claim.step_name]
            workflow = WorkflowMetadata(
                claim.run_id, claim.workflow_name, claim.run_started_at, base_url()
            )
            parent = await _lifecycle.claimed_parent(self.world, claim.run_id)
            attempt = Attempt(
                step, claim.step_id, claim.input, claim.attempt, workflow, self.world, parent
            )
            outcome = await run_attempt(attempt, self.step_pool, self.world.now, self.retry)
            recorded = await self.world.finish_step(
                claim.run_id, outcome.event, claimer=self.worker_id, retry_after=outcome.retry_after
            )
            if not recorded:
                log.info(
                    "step %s of run %s: result dropped (the run ended, or the lease was lost)",
                    claim.step_id,
                    claim.run_id,
                    extra={
                        "run_id": claim.run_id,
                        "step_id": claim.step_id,
                        "workflow": claim.workflow_name,
                    },
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and another worker (or this one) runs the step again.
            log.exception("step %s of run %s could not be recorded", claim.step_id, claim.run_id)
        finally:
            self.claimed.pop(claim.step_id, None)
            self.release_slot()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                # Only what this worker is working on: a run it lost track of (its driver
                # failed while the World was away) must not stay held by it forever.
                await self.world.renew_leases(
                    self.worker_id, list(self.drivers), list(self.claimed), self.lease_seconds
                )
            except Exception:
                log.exception("could not renew leases")

    async def _collect_forever(self, retention: float) -> None:
        """Delete ended runs older than ``retention`` now and then, in small batches paced to
        a tenth of the time, so the runs this worker drives do not wait on it. Every worker
        may do it; two at once only find less to delete."""
        every = self.collect_every or min(max(retention / 10, 60.0), 3600.0)
        await asyncio.sleep(random.uniform(0, min(every, 60.0)))  # workers started together
        while True:
            try:
                done = await _retention.collect(self.world, retention, share=0.1)
                if done.runs:
                    log.info("deleted %d run(s) that ended before %s", done.runs, done.cutoff)
            except Exception:
                log.exception("could not delete old runs; trying again later")
            await asyncio.sleep(every)

    # -- notifications -------------------------------------------------------------------------

    def _listener(self, changes: Sequence[RunChange]) -> None:
        # Our own appends come back through their results; skip them here (hot path).
        changes = [c for c in changes if c.writer != self.worker_id]
        loop = self._loop
        if not changes or loop is None or loop.is_closed():
            return
        if asyncio._get_running_loop() is loop:  # told on our own loop (the World's): no wake-up
            loop.call_soon(self._on_changes, changes)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_changes, changes)

    def _on_changes(self, changes: Sequence[RunChange]) -> None:
        claim = False
        for change in changes:
            if change.steps_queued:
                self._steps_wanted = claim = True
            driver = self.drivers.get(change.run_id)
            if driver is not None:
                driver.on_change(change)
            elif not change.status.terminal and change.writer is None:
                # A change its owner wrote leaves the run owned: nothing to claim. Others
                # (a new run, a hook payload, a wake-up, a step result) may make it due.
                claim = True
            elif change.status.terminal and self._held_back:
                claim = True  # it may have freed a place in a queue
        if claim:
            self.notify()

    def notify(self) -> None:
        """Look for due runs now (thread-safe)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def forget(self, driver: RunDriver) -> None:
        if self.drivers.get(driver.run_id) is driver:
            full = self.crowded()
            del self.drivers[driver.run_id]
            # Room for a run the last claim had to leave (no room, or its queue's limits).
            if (full or self._held_back) and self._wake is not None and not self.stopping:
                self._wake.set()

    # -- stopping --------------------------------------------------------------------------------

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give running steps ``grace`` seconds; hand the rest back."""
        self.stopping = True
        if self._wake is not None:
            self._wake.set()
        deadline = time.monotonic() + grace
        # A claim in flight may take runs after the hand-back below: let the loop finish
        # first, so that unregistering (which releases whatever this worker still holds) is
        # the last word.
        running = self._running
        if running is not None and running is not asyncio.current_task():
            await asyncio.wait({running}, timeout=grace)
        while (
            any(d.busy for d in self.drivers.values()) or self.claimed
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for driver in list(self.drivers.values()):
            await driver.hand_back()
        self.drivers.clear()
        for task in list(self.claimed.values()):
            task.cancel()  # unregistering below queues these steps again at once
        with contextlib.suppress(Exception):
            await self.world.unregister_worker(self.worker_id)
        self.step_pool.shutdown(wait=False, cancel_futures=True)
