"""A driven run's state, and its step attempts and timers: where each attempt runs, its
retry gate, sleeps' timers, and the virtual clock's skip-ahead."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .._lifecycle import RunSegment
from .._retry_policy import DEFAULT_RETRY, Retry
from ..registry import Workflow
from ..worlds.base import World
from ..worlds.records import Event, EventType, NewEvent, RunRecord
from .deadlines import watch
from .executor import RunExecutor, StepStart, Timer
from .steps import Attempt, run_attempt

STEP_OUTCOMES = frozenset(
    {EventType.STEP_COMPLETED, EventType.STEP_FAILED, EventType.STEP_RETRYING}
)
# Virtual clock: real seconds a run must have had nothing to do but wait on its running
# steps before they count as stuck, and time may jump past them (to their deadlines, too).
# A step that ends sooner never sees the clock move while it runs.
STUCK_AFTER = 0.5
# One of this worker's own events to append, with a future told whether the store took it
# (None: nobody waits to know).
Outgoing = tuple[NewEvent, asyncio.Future[bool] | None]


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """What every driver of one worker shares, fixed for the worker's life."""

    world: World
    worker_id: str
    step_pool: Executor  # the threads synchronous steps run on
    evict_after: float  # seconds a run with nothing to do stays in memory
    cache_runs: bool  # False: replay the run from its log after every event (a check)
    virtual_clock: bool  # tests: with only timers left, time jumps to the next one
    retry: Retry = DEFAULT_RETRY  # the policy of steps that name none


class StepSlots(Protocol):
    """The worker's step slots, as a driven run's steps see them (``RunHost`` adds the rest).

    Step slots are the worker's: its own runs' steps and steps it claimed share them. A slot
    is held while a step's body runs, not while its start is being recorded.
    """

    def has_room(self, placed: int) -> bool:
        """Whether a step can run here, after ``placed`` others just placed here."""
        ...

    def take_slot(self) -> bool: ...

    async def wait_for_slot(self) -> None:
        """Until a slot is this caller's (handed over in turn as steps end)."""
        ...

    def release_slot(self) -> None: ...

    def note_queued(self) -> None:
        """Steps went to the World's step queue for want of a slot here."""
        ...


def utc_at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def open_gate(gate: asyncio.Future[None]) -> None:
    if not gate.done():
        gate.set_result(None)


class DriverState:
    """A driven run's state, and how its step attempts and timers run; ``RunDriver`` adds
    the pump: events in, appends out, leaving memory."""

    # A worker holds thousands of these: slots take a fifth of the memory of an instance
    # dict this size.
    __slots__ = (
        "_waiter",
        "_woken",
        "config",
        "conflicts",
        "deadline",
        "deadline_timer",
        "done",
        "executor",
        "host",
        "idle_check",
        "idle_since",
        "known_seq",
        "loop",
        "needs_load",
        "now",
        "outbox",
        "pump_task",
        "queued",
        "retry_gates",
        "run_id",
        "segment",
        "step_deadlines",
        "steps",
        "timed_out",
        "timers",
        "told",
        "virtual_floor",
        "workflow",
        "world",
        "world_seq",
    )

    def __init__(
        self, host: StepSlots, config: DriverConfig, record: RunRecord, workflow: Workflow[Any, Any]
    ) -> None:
        self.host = host
        self.config = config
        self.world = config.world
        # Every timestamp and due time comes from the World's clock, never the local one: on
        # PostgreSQL the database clock, which all workers share whatever their own clocks say.
        self.now = config.world.now
        self.run_id = record.run_id
        self.workflow = workflow
        self.segment = RunSegment(record.run_id, workflow.name)  # its logs, spans, metrics
        self.known_seq = 0  # the end of the log as this driver knows it
        self.world_seq = record.last_seq  # the end of the log as the World last told
        # Events past ``known_seq`` that came with the World's changes (by seq): delivered
        # without a read of the log when they run on from ``known_seq`` to ``world_seq``.
        self.told: dict[int, Event] = {}
        self.executor: RunExecutor | None = None
        self.outbox: list[Outgoing] = []
        # Hook conflicts the store recorded for this driver's appends: code yet to learn them.
        self.conflicts: list[Event] = []
        self.steps: dict[str, asyncio.Task[None]] = {}  # steps running (or due) here
        self.queued: set[str] = set()  # steps in the World's step queue, or claimed from it
        self.timers: dict[str, asyncio.TimerHandle] = {}
        # Steps waiting out a retry delay: when the next attempt is due, and what wakes it.
        # Nothing of theirs runs yet: a worker stopping need not wait for them (whoever takes
        # the run over starts them when due).
        self.retry_gates: dict[str, tuple[float, asyncio.Future[None]]] = {}
        # What the pump waits on when idle: a bare future (an asyncio.Event looks the running
        # loop up, a system call, on every wait; the pump does that once per step).
        self.loop = asyncio.get_running_loop()
        self._woken = False
        self._waiter: asyncio.Future[None] | None = None
        self.needs_load = True
        self.done = False
        self.pump_task: asyncio.Task[None] | None = None
        self.idle_since: float | None = None  # when the run last had nothing to do
        self.idle_check: asyncio.TimerHandle | None = None
        # Virtual clock only: the latest time it jumped to, and the virtual deadlines of
        # the step attempts running here (``_stuck_steps``).
        self.virtual_floor = 0.0
        self.step_deadlines: dict[asyncio.Task[None], float] = {}
        # The run's deadline (``timeout`` at start), and its timer while the run is here.
        deadline = record.options.deadline
        self.deadline = None if deadline is None else deadline.timestamp()
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.timed_out = False

    def poke(self) -> None:
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _deadline_due(self) -> None:
        self.deadline_timer = None
        self.timed_out = True
        self.poke()

    # -- placing steps ---------------------------------------------------------------------

    def _place(
        self, starts: Sequence[StepStart], outgoing: Sequence[Outgoing], now: float
    ) -> tuple[list[StepStart], list[StepStart], dict[float, list[str]]]:
        """Where each step attempt runs: here now, here later (a retry), or, with no room
        here, in the World's step queue (step ids by delay).

        Room counts the steps running or waiting for a slot here and those this call places
        here, not the steps of other runs whose starts are being recorded: those take a slot
        only once recorded (a step waits for one if need be). Counting them sent steps to the
        World's queue (three more transactions each, and a read of the log) whenever many
        runs appended at once, though their bodies were not running yet."""
        here: list[StepStart] = []
        later: list[StepStart] = []
        to_queue: dict[float, list[str]] = {}
        for start in starts:
            step_id = start.step_id
            if step_id in self.queued or (
                step_id in self.steps and not reported(step_id, outgoing)
            ):
                continue  # already running here, or queued
            delay = max(0.0, start.due_at - now)
            if not self.host.has_room(len(here) + len(later)):
                to_queue.setdefault(delay, []).append(step_id)
            else:
                (later if delay else here).append(start)
        return here, later, to_queue

    async def _queue_steps(self, by_delay: dict[float, list[str]]) -> None:
        """Queue steps this worker has no slot for, for whichever worker has one."""
        for delay, step_ids in by_delay.items():
            await self.world.queue_steps(
                self.run_id, step_ids, owner=self.config.worker_id, delay=delay
            )
            self.queued.update(step_ids)
            self.host.note_queued()

    # -- steps and timers --------------------------------------------------------------------

    def _launch(self, start: StepStart, delay: float = 0.0) -> None:
        assert self.executor is not None
        metadata = self.executor.metadata
        step, step_id, attempt = start.step, start.step_id, start.attempt
        job = Attempt(step, step_id, start.input, attempt, metadata, self.world, self.segment)
        task = self.loop.create_task(self._run_step(job, delay))
        self.steps[start.step_id] = task

    async def _run_step(self, job: Attempt, delay: float) -> None:
        reported = False  # its outcome waits in the outbox; _flush forgets the task
        slot = False
        try:
            if delay > 0 and not await self._start_when_due(job, delay):
                return
            slot = self.host.take_slot()
            if not slot:
                await self.host.wait_for_slot()
                slot = True
            outcome = await run_attempt(job, self.config.step_pool, self.now, self.config.retry)
            self.outbox.append((outcome.event, None))
            reported = True
            self.poke()
        finally:
            task = asyncio.current_task()
            if not reported and self.steps.get(job.step_id) is task:
                del self.steps[job.step_id]
                self.poke()
            # Give the slot back here rather than in a done callback: that callback would be
            # one more turn of the loop per step, and would keep the next append from
            # committing at once (see the SQLite World's inline writes, worlds/sqlite/_writer.py).
            if slot:
                self.host.release_slot()

    async def _start_when_due(self, job: Attempt, delay: float) -> bool:
        """Wait until the attempt is due, then record its start; whether the store took it."""
        await self._retry_gate(job.step_id, delay)
        started = NewEvent(EventType.STEP_STARTED, job.step_id, None, {"attempt": job.attempt})
        return await self._record(started)

    async def _retry_gate(self, step_id: str, delay: float) -> None:
        """Wait out a retry delay; on the virtual clock, until the run has nothing else to do."""
        gate: asyncio.Future[None] = self.loop.create_future()
        handle = None
        if self.config.virtual_clock:
            self.retry_gates[step_id] = (self._virtual_now() + delay, gate)
            self.poke()  # the run may now be idle but for timers: let the pump skip ahead
        else:
            self.retry_gates[step_id] = (self.now() + delay, gate)
            handle = self.loop.call_later(delay, open_gate, gate)
        try:
            await gate
        finally:
            self.retry_gates.pop(step_id, None)
            if handle is not None:
                handle.cancel()

    def _virtual_now(self) -> float:
        executor_now = self.executor.now() if self.executor is not None else 0.0
        return max(self.now(), executor_now, self.virtual_floor)

    async def _record(self, event: NewEvent) -> bool:
        future: asyncio.Future[bool] = self.loop.create_future()
        self.outbox.append((event, future))
        self.poke()
        return await future

    def _arm(self, timer: Timer) -> None:
        if timer.wait_id in self.timers or self.config.virtual_clock:
            return
        delay = max(0.0, timer.resume_at - self.now())
        # Stamped no earlier than due: the loop's clock and the World's (the database's,
        # estimated) may disagree by a moment.
        handle = self.loop.call_later(delay, self._fire, timer.wait_id, timer.resume_at)
        self.timers[timer.wait_id] = handle

    def _fire(self, wait_id: str, at: float | None = None) -> None:
        self.timers.pop(wait_id, None)
        when = utc_at(self.now() if at is None else max(at, self.now()))
        self.outbox.append((NewEvent(EventType.WAIT_COMPLETED, wait_id, created_at=when), None))
        self.poke()

    def _cancel_timer(self, correlation_id: str | None) -> None:
        handle = self.timers.pop(correlation_id or "", None)
        if handle is not None:
            handle.cancel()

    # -- the virtual clock -------------------------------------------------------------------

    def _skip_ahead(self, executor: RunExecutor) -> bool:
        """Virtual clock: with nothing left but timers, fire the earliest; whether one fired.

        Timers are sleeps, retry delays, the run's deadline, and the deadlines of running
        step attempts that look stuck (``_stuck_steps``). Never while a child run, a queued
        step, or a running step without a timeout is pending.
        """
        gated = self.retry_gates
        pending = executor.pending()
        if pending.children:
            return False  # they take real time, like steps
        running = [task for step_id, task in self.steps.items() if step_id not in gated]
        if any(step_id not in gated and step_id not in self.steps for step_id in pending.steps):
            return False  # queued, or not started yet
        stuck = self._stuck_steps(running) if running else {}
        if stuck is None:
            return False
        first_wait = min(pending.timers, key=lambda timer: timer.resume_at, default=None)
        first_gate = min(gated, key=lambda step_id: gated[step_id][0], default=None)
        wait_due = first_wait.resume_at if first_wait is not None else math.inf
        gate_due = gated[first_gate][0] if first_gate is not None else math.inf
        step_due = min(stuck.values(), default=math.inf)
        if self.deadline is not None and self.deadline <= min(wait_due, gate_due, step_due):
            self._deadline_due()  # the deadline is one more timer, and it comes first
            return True
        if step_due < min(wait_due, gate_due):
            self._time_out_steps(stuck, step_due)
            return True
        if first_gate is not None and (first_wait is None or gate_due < wait_due):
            self.virtual_floor = max(self.virtual_floor, gate_due)
            open_gate(gated.pop(first_gate)[1])
            return True
        if first_wait is not None:
            self.virtual_floor = max(self.virtual_floor, wait_due)
            self._fire(first_wait.wait_id, at=wait_due)
            return True
        return False

    def _stuck_steps(
        self, running: Sequence[asyncio.Task[None]]
    ) -> dict[asyncio.Task[None], float] | None:
        """The virtual deadlines of the running step attempts, once they look stuck: each has
        a timeout, and the run has had nothing else to do for ``STUCK_AFTER`` of real time.
        Else None, and the pump looks again later.

        A step's deadline is placed on the virtual clock the first time it is seen running,
        before any jump (only this method's caller jumps): later jumps over sleeps or retry
        delays leave it where it is, so its elapsed time is measured on the virtual clock.
        """
        deadlines = watch(self.loop)
        known = self.step_deadlines
        for task in [task for task in known if task not in running]:
            del known[task]  # that attempt ended
        now = self.now()
        if self.idle_since is None:
            self.idle_since = now
        remaining = self.idle_since + STUCK_AFTER - now
        loop_now = self.loop.time()
        for task in running:
            at = deadlines.due(task)
            if at is None:  # no timeout (it holds the clock), not started yet, or timed out
                self._look_again_in(remaining if remaining > 0 else STUCK_AFTER)
                return None
            if task not in known:
                known[task] = self._virtual_now() + max(0.0, at - loop_now)
        if remaining > 0:
            self._look_again_in(remaining)
            return None
        return {task: known[task] for task in running}

    def _time_out_steps(self, stuck: dict[asyncio.Task[None], float], at: float) -> None:
        """The virtual clock reached ``at``: the steps due by then time out, as their real
        deadlines would have them (``StepTimeoutError``, then their retry policy)."""
        self.virtual_floor = max(self.virtual_floor, at)
        deadlines = watch(self.loop)
        for task, due in stuck.items():
            if due <= at:
                del self.step_deadlines[task]
                deadlines.expire(task)

    def _look_again_in(self, delay: float) -> None:
        """Poke the pump in ``delay`` seconds, unless it is already due to look by then."""
        at = self.loop.time() + delay
        check = self.idle_check
        if check is not None:
            if check.when() <= at:
                return
            check.cancel()
        self.idle_check = self.loop.call_at(at, self._idle_check_due)

    def _idle_check_due(self) -> None:
        self.idle_check = None
        self.poke()


def reported(step_id: str, outgoing: Sequence[Outgoing]) -> bool:
    """Whether the step's task, though still listed, has ended and reported its outcome
    (a retry's next attempt then starts like any other)."""
    return any(e.correlation_id == step_id and e.type in STEP_OUTCOMES for e, _ in outgoing)
