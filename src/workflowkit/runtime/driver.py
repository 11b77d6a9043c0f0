"""Drives one run held in memory by a worker: delivers events, records them, runs steps.

Hot path: a finished step's event is delivered to the in-memory workflow code at once, and
the event together with whatever the code did next (new steps, and their ``step_started``)
is appended in one batch. Replay from the log happens only on a cold start, or when the log
turns out to hold something this driver did not expect (another writer got in between).

The driver reaches its run's code only through the executor's ``activate`` (events in,
effects out) and ``pending()``; it reaches its worker only through ``RunHost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from .. import _lifecycle
from ..errors import (
    AmbiguousCommitError,
    LeaseLostError,
    PayloadKeyMissingError,
    ReplayDivergenceError,
    WorkflowTimeoutError,
    WorldUnavailableError,
)
from ..registry import Workflow
from ..worlds.apply import ENDS_RUN
from ..worlds.records import (
    DELIVERY_EVENTS,
    AppendAfter,
    Divergence,
    Event,
    EventType,
    NewEvent,
    RunChange,
    RunRecord,
)
from ._driver_state import STEP_OUTCOMES, DriverConfig, DriverState, Outgoing, StepSlots, utc_at
from .executor import Effects, Pending, RunExecutor, StepStart, encode_error
from .versions import code_version

__all__ = ["DriverConfig", "Outgoing", "RunDriver", "RunHost", "timeout_failure"]

log = logging.getLogger("workflowkit.worker")
# The World stayed unreachable past its own retries: the driver keeps what its steps
# finished and tries again, rather than drop it and run those steps a second time.
_OUTAGES = (WorldUnavailableError, AmbiguousCommitError)
# Runs this process said it has no key for (said again only at DEBUG).
_SAID_NO_KEY: set[str] = set()
_OUTAGE_PAUSE = 1.0  # seconds between a failed try and the next (each retries on its own)


class RunHost(StepSlots, Protocol):
    """The worker holding a driver's run, as the driver sees it; ``Worker`` is the host."""

    @property
    def stopping(self) -> bool: ...

    def forget(self, driver: RunDriver) -> None:
        """The driver has stopped; its run is no longer in memory."""
        ...

    def crowded(self) -> bool:
        """Whether the worker holds as many runs as it may (idle runs then leave at once)."""
        ...


class RunDriver(DriverState):
    """The pump of one run held in memory: events in, appends out, and leaving memory;
    ``DriverState`` holds the run's state and runs its steps and timers."""

    __slots__ = ("_known_log",)

    host: RunHost  # the worker: step slots (all ``DriverState`` uses), and the rest

    def __init__(
        self,
        host: RunHost,
        config: DriverConfig,
        record: RunRecord,
        workflow: Workflow[Any, Any],
        log: list[Event] | None = None,
    ) -> None:
        super().__init__(host, config, record, workflow)
        self._known_log = log  # the whole log, if the driver's creator has it already

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.pump_task = self.loop.create_task(self._pump(), name=f"workflowkit-run-{self.run_id}")

    async def _sleep_until_poked(self) -> None:
        if not self._woken:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._woken = False

    def on_change(self, change: RunChange) -> None:
        if change.last_seq > self.world_seq:
            self.world_seq = change.last_seq
            for event in change.events:
                if event.seq > self.known_seq:
                    self.told[event.seq] = event
            self.poke()

    @property
    def busy(self) -> bool:
        """Whether a step is running or an outcome is not yet recorded (a worker stopping
        waits for these, up to its grace)."""
        return bool(self.outbox) or any(step_id not in self.retry_gates for step_id in self.steps)

    async def _pump(self) -> None:
        try:
            while not self.done:
                try:
                    if not await self._step_pump():
                        return
                except _OUTAGES as exc:
                    await self._wait_out_outage(exc)
        except LeaseLostError:
            self.segment.lease_lost()
            self._drop()
        except asyncio.CancelledError:
            self._drop()
            raise
        except PayloadKeyMissingError as exc:
            # The same every time until the keys change: said once per run in one line, not
            # a traceback a second. The run stays due for a worker that has the key.
            level = logging.DEBUG if self.run_id in _SAID_NO_KEY else logging.ERROR
            if len(_SAID_NO_KEY) > 10_000:
                _SAID_NO_KEY.clear()
            _SAID_NO_KEY.add(self.run_id)
            log.log(level, "run %s: %s: %s; released", self.run_id, type(exc).__name__, exc)
            await self._release_after_failure(1.0)
        except Exception:
            log.exception("run %s: driver failed; it will be picked up again", self.run_id)
            await self._release_after_failure(1.0)
        finally:
            self.host.forget(self)

    async def _step_pump(self) -> bool:
        """Do the most urgent work, or wait for some; False once the run has left memory."""
        work = self._next_work()
        if work is not None:
            self.idle_since = None
            await work()
        elif await self._release_if_idle():
            return False
        else:
            await self._sleep_until_poked()
        return True

    async def _release_after_failure(self, pause: float) -> None:
        self._drop()
        with contextlib.suppress(Exception):
            await self.world.release_run(
                self.run_id, self.config.worker_id, utc_at(self.now() + pause)
            )

    async def _wait_out_outage(self, exc: Exception) -> None:
        """The World could not be reached (or could not say whether a write committed).

        Finished step outcomes stay in the outbox: the in-memory code may have moved past
        them, so it is rebuilt from the log, and they are delivered and appended again (an
        append that did commit refuses the repeat, which also ends in a reload). The outbox
        cannot grow past the steps that were running: no new step starts until an append
        succeeds. An outage costs latency, not a step run twice, unless another worker takes
        the run over once its lease has run out.
        """
        log.warning(
            "run %s: the World is unreachable (%s); keeping %d finished outcome(s) and "
            "trying again in %.0f s",
            self.run_id,
            exc,
            len(self.outbox),
            _OUTAGE_PAUSE,
        )
        self.needs_load = True
        await asyncio.sleep(_OUTAGE_PAUSE)

    def _next_work(self) -> Callable[[], Awaitable[None]] | None:
        """What to do next, most urgent first; None when there is nothing."""
        if self.timed_out:
            return self._time_out
        if self.needs_load:
            return self._load
        if self.world_seq > self.known_seq:
            return self._catch_up
        if self.outbox:
            return self._flush
        if self.conflicts:
            return self._deliver_conflicts
        return None

    # -- the ways events come in -----------------------------------------------------------

    async def _load(self) -> None:
        """Cold start: replay the whole log, then carry on from where it ends."""
        self.needs_load = False
        self.told = {}  # the log read below holds whatever they were
        self._reset_executor()
        events, self._known_log = self._known_log, None
        if events is None:
            events = await self.world.get_events(self.run_id)
        self.segment.loaded(events)
        self.known_seq = events[-1].seq if events else 0
        self.world_seq = max(self.world_seq, self.known_seq)
        if any(e.type in ENDS_RUN for e in events):
            self._drop()
            return
        now = self.now()
        if self.deadline is not None:
            if now >= self.deadline:
                await self._time_out()
                return
            if not self.config.virtual_clock and self.deadline_timer is None:
                self.deadline_timer = self.loop.call_later(self.deadline - now, self._deadline_due)
        version = code_version(self.workflow)
        self.executor = RunExecutor(self.run_id, self.workflow, events[0].payload or b"", version)
        effects = self.executor.activate(events, now)
        await self._find_queued_steps(effects.steps)
        await self._commit(effects, (), now)

    async def _time_out(self) -> None:
        """The run passed its deadline: it fails with ``WorkflowTimeoutError``; its steps'
        results are discarded (the World cancels its children)."""
        assert self.deadline is not None
        await self._append([timeout_failure(self.run_id, self.deadline, self.now())])
        self._drop()

    async def _diverged(
        self, error: ReplayDivergenceError, outgoing: Sequence[Outgoing], now: float
    ) -> None:
        """The code no longer replays the log. What this worker's steps finished is still
        recorded; what the code did after the mismatch is not. Then the run is parked for a
        worker with other code (or, by the workflow's policy, fails)."""
        done = [event for event, _ in outgoing]
        if self.workflow.on_divergence == "fail":
            done.append(NewEvent(EventType.RUN_FAILED, payload=encode_error(error)))
        if done:
            await self._append(done)
        if self.workflow.on_divergence == "park" and not self.done:
            version = code_version(self.workflow)
            divergence = Divergence(
                error.position, error.expected, error.actual, str(error), version, utc_at(now)
            )
            await self.world.park_run(self.run_id, self.config.worker_id, divergence)
            log.warning(
                "run %s parked: its code (version %s) no longer replays its log: %s",
                self.run_id,
                version,
                error,
            )
        self._drop()

    async def _find_queued_steps(self, starts: Sequence[StepStart]) -> None:
        """Steps the log already holds may be queued (waiting in the World's step queue, or
        claimed from it): ask the World. A step the replay has just created cannot be, so a
        new run asks nothing.
        """
        self.queued = set()
        logged = {s.step_id for s in starts if s.replayed and s.step_id not in self.steps}
        if logged:
            steps = await self.world.list_steps(self.run_id)
            self.queued = {s.step_id for s in steps if s.in_step_queue and s.step_id in logged}

    async def _catch_up(self) -> None:
        """Deliver events someone else appended (a hook payload, a wake-up, a step result):
        those the World's changes brought if they are the whole gap, else read from the log."""
        events = self._take_told()
        if events is None:
            events = await self.world.get_events(self.run_id, after_seq=self.known_seq)
        if any(e.type in ENDS_RUN for e in events):
            self._drop()
            return
        if events:
            self.known_seq = events[-1].seq
            self.segment.delivered(events)
        self.world_seq = max(self.world_seq, self.known_seq)
        for event in events:
            if event.type in DELIVERY_EVENTS:
                self._cancel_timer(event.correlation_id)
                self.queued.discard(event.correlation_id or "")
        await self._activate(events)

    def _take_told(self) -> list[Event] | None:
        """The events from ``known_seq`` to ``world_seq`` if changes brought every one."""
        told, self.told = self.told, {}
        wanted = range(self.known_seq + 1, self.world_seq + 1)
        if not wanted or any(seq not in told for seq in wanted):
            return None
        return [told[seq] for seq in wanted]

    async def _flush(self) -> None:
        """Deliver this worker's own outcomes (steps, timers) and record them with what follows."""
        items, self.outbox = self.outbox, []
        try:
            await self._activate([event for event, _ in items], items)
        except _OUTAGES:
            self.outbox[:0] = items  # not recorded: deliver them again after a reload
            raise
        for event, _ in items:
            if event.type in STEP_OUTCOMES:
                task = self.steps.get(event.correlation_id or "")
                if task is not None and task.done():  # not a retry's next attempt
                    del self.steps[event.correlation_id or ""]
        if not self.config.cache_runs and not self.done:
            self.needs_load = True  # determinism check mode: rebuild from the log every time

    async def _deliver_conflicts(self) -> None:
        events, self.conflicts = self.conflicts, []
        await self._activate(events)

    async def _activate(
        self, events: Sequence[Event | NewEvent], outgoing: Sequence[Outgoing] = ()
    ) -> None:
        assert self.executor is not None
        now = self.now()
        await self._commit(self.executor.activate(events, now), outgoing, now)

    # -- recording ---------------------------------------------------------------------------

    async def _commit(self, effects: Effects, outgoing: Sequence[Outgoing], now: float) -> None:
        """Append ``outgoing`` and the effects' events, then start steps and arm timers."""
        if self.executor is not None and self.executor.divergence is not None:
            await self._diverged(self.executor.divergence, outgoing, now)
            return
        here, later, to_queue = self._place(effects.steps, outgoing, now)
        starts = [
            NewEvent(EventType.STEP_STARTED, s.step_id, None, {"attempt": s.attempt}) for s in here
        ]
        events = [event for event, _ in outgoing]
        events += effects.events
        events += starts
        # Only if the log still ends where this driver read it: the effects were decided
        # from that log plus ``outgoing``; after newer events a replay decides again.
        refused = await self._append(events, AppendAfter(self.known_seq, len(outgoing)))
        for event, future in outgoing:
            if future is not None and not future.done():
                future.set_result(id(event) not in refused)
        if self.done:
            return
        if not self.needs_load:  # else the steps may not exist: the reload places them again
            await self._queue_steps(to_queue)
        for start, event in zip(here, starts, strict=True):
            if not (refused and id(event) in refused):
                self._launch(start)
        for start in later:
            self._launch(start, delay=start.due_at - now)
        if not self.needs_load:
            for timer in effects.timers:
                self._arm(timer)

    async def _append(self, events: list[NewEvent], after: AppendAfter | None = None) -> set[int]:
        """Append, and check the log holds exactly what this driver believes; else reload.

        Returns the ``id()`` of each event the store refused (usually none).
        """
        if not events:
            return set()
        owner = self.config.worker_id
        result = await self.world.append(self.run_id, events, owner=owner, after=after)
        refused = {id(r.event) for r in result.rejected}
        self.segment.appended(result.events)
        expected = self.known_seq + 1
        contiguous = not result.events or result.events[0].seq == expected
        if result.events:
            self.known_seq = max(self.known_seq, result.events[-1].seq)
        if result.run_status.terminal:
            self._drop()
            if result.cancelled_children:
                children = result.cancelled_children
                await _lifecycle.children_cancelled(self.world, self.run_id, children)
            return refused
        for stored in result.events:
            if stored.type is EventType.HOOK_CONFLICT:
                # The store refused the hook's token; the code learns it like any delivery.
                self.conflicts.append(stored)
        if result.rejected or not contiguous:
            log.debug("run %s: log moved under us (%s); replaying", self.run_id, result.rejected)
            self.needs_load = True
        return refused

    # -- leaving memory ----------------------------------------------------------------------

    async def _release_if_idle(self) -> bool:
        """Leave memory once idle for ``evict_after`` seconds with no timer due by then (at
        once if only a later timer can wake the run, or the worker is full)."""
        executor = self.executor
        if executor is None or self.outbox or self.host.stopping:
            return False
        if self.config.virtual_clock and self._skip_ahead(executor):
            return False
        if self.steps:
            return False
        pending = executor.pending()
        if pending.steps:
            return False
        wake_at = min((timer.resume_at for timer in pending.timers), default=None)
        if self.deadline is not None:  # the World wakes the run at its deadline itself
            wake_at = self.deadline if wake_at is None else min(wake_at, self.deadline)
        now = self.now()
        if wake_at is not None and wake_at - now <= self.config.evict_after:
            return False
        if not (
            self._waits_only_on_time(pending, wake_at, now)
            or self.host.crowded()
            or self._idle_long_enough(now)
        ):
            return False
        self._drop()
        await self.world.release_run(
            self.run_id,
            self.config.worker_id,
            None if wake_at is None else utc_at(wake_at),
            self.known_seq,
        )
        return True

    def _waits_only_on_time(self, pending: Pending, wake_at: float | None, now: float) -> bool:
        """Whether the run would leave memory at the end of its idle time anyway: nothing
        but its timers can wake it, and the first is due later than ``evict_after`` after
        that. Staying idle first holds its memory for nothing (with thousands of runs
        falling asleep at once, that is most of a worker's memory). A run waiting on a hook
        or a child stays, so that a quick answer finds it still in memory."""
        if pending.hooks or pending.children:
            return False
        idle_since = now if self.idle_since is None else self.idle_since
        return wake_at is None or wake_at - idle_since > 2 * self.config.evict_after

    def _idle_long_enough(self, now: float) -> bool:
        """Whether the run has had nothing to do for ``evict_after`` seconds (if not yet,
        the pump looks again when it will have)."""
        if self.idle_since is None:
            self.idle_since = now
        remaining = self.idle_since + self.config.evict_after - now
        if remaining > 0 and self.idle_check is None:
            self.idle_check = self.loop.call_later(remaining, self._idle_check_due)
        return remaining <= 0

    def _drop(self) -> None:
        self.done = True
        self.segment.ended()
        if self.idle_check is not None:
            self.idle_check.cancel()
            self.idle_check = None
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        for task in self.steps.values():
            task.cancel()
        self.steps.clear()
        self.queued.clear()
        for _, future in self.outbox:
            if future is not None and not future.done():
                future.set_result(False)
        self.outbox.clear()
        self._reset_executor()

    def _reset_executor(self) -> None:
        if self.executor is not None:
            self.executor.discard()
            self.executor = None
        self.conflicts.clear()
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()

    async def hand_back(self) -> None:
        """Worker shutdown: stop and let any worker take the run over at once."""
        if self.pump_task is not None:
            self.pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump_task
        with contextlib.suppress(Exception):
            await self.world.release_run(self.run_id, self.config.worker_id, utc_at(self.now()))


def timeout_failure(run_id: str, deadline: float, now: float) -> NewEvent:
    """The ``run_failed`` of a run past its deadline, dated when it was noticed (never
    before the deadline: on the virtual clock, time jumps to it)."""
    error = WorkflowTimeoutError(run_id, utc_at(deadline))
    return NewEvent(EventType.RUN_FAILED, None, encode_error(error), {}, utc_at(max(now, deadline)))
