"""Drives one run held in memory by a worker: delivers events, records them, runs steps.

Hot path: a finished step's event is delivered to the in-memory workflow code at once, and
the event together with whatever the code did next (new steps, and their ``step_started``)
is appended in one batch. Replay from the log happens only on a cold start, or when the log
turns out to hold something this driver did not expect (another writer got in between).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..errors import LeaseLostError
from ..worlds.records import DELIVERY_EVENTS, EventType, NewEvent, RunRecord
from .executor import Effects, Op, RunExecutor
from .steps import Attempt, run_attempt

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("workflowkit.worker")
_TERMINAL_EVENTS = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)
_FINAL_STEP_EVENTS = frozenset({EventType.STEP_COMPLETED, EventType.STEP_FAILED})


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _open(gate: asyncio.Future[None]) -> None:
    if not gate.done():
        gate.set_result(None)


class RunDriver:
    def __init__(self, worker: Worker, record: RunRecord) -> None:
        self.worker = worker
        self.world = worker.world
        # Every timestamp and due time comes from the World's clock, never the local one: on
        # PostgreSQL the database clock, which all workers share whatever their own clocks say.
        self.now = worker.world.now
        self.run_id = record.run_id
        self.workflow_name = record.workflow_name
        self.known_seq = 0
        self.remote_seq = record.last_seq
        self.executor: RunExecutor | None = None
        self.outbox: list[tuple[NewEvent, asyncio.Future[bool] | None]] = []
        self.steps: dict[str, asyncio.Task[None]] = {}
        self.remote: set[str] = set()  # steps queued for, or running on, other workers
        self.timers: dict[str, asyncio.TimerHandle] = {}
        # Steps waiting out a retry delay: when the next attempt is due, and what wakes it.
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

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.pump_task = self.loop.create_task(self._pump(), name=f"workflowkit-run-{self.run_id}")

    def poke(self) -> None:
        self._woken = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep_until_poked(self) -> None:
        if not self._woken:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._woken = False

    def on_change(self, last_seq: int) -> None:
        if last_seq > self.remote_seq:
            self.remote_seq = last_seq
            self.poke()

    @property
    def busy(self) -> bool:
        return bool(self.steps or self.outbox)

    async def _pump(self) -> None:
        try:
            while not self.done:
                if self.needs_load or self.remote_seq > self.known_seq or self.outbox:
                    self.idle_since = None
                if self.needs_load:
                    await self._load()
                elif self.remote_seq > self.known_seq:
                    await self._catch_up()
                elif self.outbox:
                    await self._flush()
                elif self.executor is not None and self.executor.has_effects():
                    await self._commit(self.executor.take_effects(), [])
                elif await self._release_if_idle():
                    return
                else:
                    await self._sleep_until_poked()
        except LeaseLostError:
            log.warning("run %s: lease lost to another worker; dropping it", self.run_id)
            self._drop()
        except asyncio.CancelledError:
            self._drop()
            raise
        except Exception:
            log.exception("run %s: driver failed; it will be picked up again", self.run_id)
            self._drop()
            retry_at = _at(self.now() + 1.0)
            with contextlib.suppress(Exception):
                await self.world.release_run(self.run_id, self.worker.worker_id, retry_at)
        finally:
            self.worker.forget(self)

    # -- the three ways events come in -----------------------------------------------------

    async def _load(self) -> None:
        """Cold start: replay the whole log, then carry on from where it ends."""
        self.needs_load = False
        self._reset_executor()
        events = await self.world.get_events(self.run_id)
        self.known_seq = events[-1].seq if events else 0
        self.remote_seq = max(self.remote_seq, self.known_seq)
        if any(e.type in _TERMINAL_EVENTS for e in events):
            self._drop()
            return
        workflow = self.worker.registry.workflow(self.workflow_name)
        if workflow is None:
            # Claims ask only for registered workflows, so this is a registry that changed
            # meanwhile: hand the run back for a worker that has it, never fail it.
            self._drop()
            await self.world.release_run(self.run_id, self.worker.worker_id, _at(self.now()))
            return
        executor = RunExecutor(self.run_id, workflow, events[0].payload or b"")
        self.executor = executor
        executor.replay(events, self.now())
        await self._find_remote_steps(executor)
        await self._commit(executor.take_effects(), [])

    async def _find_remote_steps(self, executor: RunExecutor) -> None:
        """Pending steps not running here may be queued or running elsewhere: ask the World.

        Only steps the log already holds can be; one the replay has just created cannot.
        """
        self.remote = set()
        unknown = [
            op.correlation_id
            for op in executor.pending()
            if op.kind == "step" and op.logged is not None and op.correlation_id not in self.steps
        ]
        if unknown:
            steps = await self.world.list_steps(self.run_id)
            self.remote = {s.step_id for s in steps if s.in_step_queue and s.step_id in unknown}

    async def _catch_up(self) -> None:
        """Deliver events someone else appended (a hook payload, a wake-up, a cancel)."""
        events = await self.world.get_events(self.run_id, after_seq=self.known_seq)
        executor = self.executor
        for event in events:
            self.known_seq = event.seq
            if event.type in _TERMINAL_EVENTS:
                self._drop()
                return
            if event.type in DELIVERY_EVENTS and executor is not None:
                self._cancel_timer(event.correlation_id)
                self.remote.discard(event.correlation_id or "")
                executor.deliver(event.type, event.correlation_id, event.payload, event.created_at)
            elif event.type is EventType.STEP_STARTED and executor is not None:
                executor.step_attempts[event.correlation_id or ""] = int(
                    event.attrs.get("attempt", 1)
                )
        self.remote_seq = max(self.remote_seq, self.known_seq)
        if executor is not None:
            await self._commit(executor.take_effects(), [])

    async def _flush(self) -> None:
        """Deliver this worker's own outcomes (steps, timers) and record them with what follows."""
        items, self.outbox = self.outbox, []
        executor = self.executor
        assert executor is not None
        for event, _ in items:
            if event.type in DELIVERY_EVENTS:
                executor.deliver(event.type, event.correlation_id, event.payload, event.created_at)
        await self._commit(executor.take_effects(), items)
        for event, _ in items:
            if event.type in _FINAL_STEP_EVENTS:
                task = self.steps.get(event.correlation_id or "")
                if task is not None and task.done():
                    del self.steps[event.correlation_id or ""]
        if not self.worker.cache_runs and not self.done:
            self.needs_load = True  # determinism check mode: rebuild from the log every time

    # -- recording ---------------------------------------------------------------------------

    async def _commit(
        self, effects: Effects, items: Sequence[tuple[NewEvent, asyncio.Future[bool] | None]]
    ) -> None:
        executor = self.executor
        assert executor is not None
        now = self.now()
        immediate: list[tuple[Op, int]] = []
        delayed: list[tuple[Op, int]] = []
        spilled: dict[float, list[str]] = {}  # no free slot here: for other workers, by delay
        for op in effects.steps:
            cid = op.correlation_id
            if op.done or cid in self.steps or cid in self.remote:
                continue
            attempt = executor.step_attempts.get(cid, 0) + 1
            delay = max(0.0, executor.step_retry_at.get(cid, 0.0) - now)
            if not self.worker.take_slot():
                spilled.setdefault(delay, []).append(cid)
                continue
            (delayed if delay else immediate).append((op, attempt))
        start_events = [
            NewEvent(EventType.STEP_STARTED, op.correlation_id, None, {"attempt": attempt})
            for op, attempt in immediate
        ]
        try:
            refused = await self._append([e for e, _ in items] + effects.events + start_events)
        except BaseException:
            for _ in [*immediate, *delayed]:
                self.worker.release_slot()
            raise
        for event, future in items:
            if future is not None and not future.done():
                future.set_result(id(event) not in refused)
        if self.done:
            for _ in [*immediate, *delayed]:
                self.worker.release_slot()
            return
        await self._offer(spilled)
        for (op, attempt), event in zip(immediate, start_events, strict=True):
            if not refused or id(event) not in refused:
                self._launch(op, attempt)
            else:
                self.worker.release_slot()
        for op, attempt in delayed:
            self._launch(op, attempt, delay=executor.step_retry_at[op.correlation_id] - now)
        if self.needs_load:
            return
        for op in effects.waits:
            if not op.done and not op.cancelled:
                self._arm(op)

    async def _offer(self, spilled: dict[float, list[str]]) -> None:
        """Queue steps this worker has no room for, for whichever worker has."""
        for delay, step_ids in spilled.items():
            await self.world.queue_steps(
                self.run_id, step_ids, owner=self.worker.worker_id, delay=delay
            )
            self.remote.update(step_ids)
            self.worker.note_spilled()

    async def _append(self, events: list[NewEvent]) -> set[int]:
        """Append, and check the log holds exactly what this driver believes; else reload.

        Returns the ``id()`` of each event the store refused (usually none).
        """
        if not events:
            return set()
        result = await self.world.append(self.run_id, events, owner=self.worker.worker_id)
        refused = {id(r.event) for r in result.rejected}
        expected = self.known_seq + 1
        contiguous = not result.events or result.events[0].seq == expected
        if result.events:
            self.known_seq = max(self.known_seq, result.events[-1].seq)
        if result.run_status.terminal:
            self._drop()
            return refused
        for stored_event in result.events:
            if stored_event.type is EventType.HOOK_CONFLICT and self.executor is not None:
                # The store refused the token; workflow code learns it like any delivery.
                holder = stored_event.attrs.get("holder_run_id")
                self.executor.record_conflict(
                    str(stored_event.correlation_id), str(holder) if holder else None
                )
        if result.rejected or not contiguous:
            log.debug("run %s: log moved under us (%s); replaying", self.run_id, result.rejected)
            self.needs_load = True
        return refused

    # -- steps and timers --------------------------------------------------------------------

    def _launch(self, op: Op, attempt: int, delay: float = 0.0) -> None:
        assert op.step is not None and op.input is not None and self.executor is not None
        job = Attempt(
            op.step, op.correlation_id, op.input, attempt, self.executor.metadata, self.world
        )
        task = self.loop.create_task(self._run_step(job, delay))
        # Also a done callback: a task cancelled before it ran never enters its finally.
        task.add_done_callback(self._step_done)
        self.steps[op.correlation_id] = task

    async def _run_step(self, job: Attempt, delay: float) -> None:
        queued = False  # a final outcome waits in the outbox; _flush forgets the task
        try:
            while True:
                if delay > 0:
                    await self._retry_gate(job.step_id, delay)
                    started = NewEvent(
                        EventType.STEP_STARTED, job.step_id, None, {"attempt": job.attempt}
                    )
                    if not await self._record(started):
                        return
                event, retry = await run_attempt(job, self.worker.pool, self.now)
                event = NewEvent(
                    event.type, event.correlation_id, event.payload, event.attrs, _at(self.now())
                )
                if retry is None:  # a final outcome: nothing to wait for
                    self.outbox.append((event, None))
                    queued = True
                    self.poke()
                    return
                if not await self._record(event):
                    return
                job = Attempt(
                    job.step, job.step_id, job.input, job.attempt + 1, job.workflow, job.world
                )
                delay = max(retry, 0.000001)
        finally:
            task = asyncio.current_task()
            if not queued and self.steps.get(job.step_id) is task:
                del self.steps[job.step_id]
                self.poke()
            # Give the slot back here rather than in a done callback: that callback would be
            # one more turn of the loop per step, and would keep the next append from
            # committing at once (see SQLiteWorld._write).
            if task is not None and task.remove_done_callback(self._step_done):
                self.worker.release_slot()

    async def _retry_gate(self, step_id: str, delay: float) -> None:
        """Wait out a retry delay; on the virtual clock, until the run has nothing else to do."""
        gate: asyncio.Future[None] = self.loop.create_future()
        handle = None
        if self.worker.virtual_clock:
            self.retry_gates[step_id] = (self._virtual_now() + delay, gate)
            self.poke()  # the run may now be idle but for timers: let the pump skip ahead
        else:
            handle = self.loop.call_later(delay, _open, gate)
        try:
            await gate
        finally:
            self.retry_gates.pop(step_id, None)
            if handle is not None:
                handle.cancel()

    def _virtual_now(self) -> float:
        executor_now = self.executor.now() if self.executor is not None else 0.0
        return max(self.now(), executor_now)

    def _step_done(self, task: asyncio.Task[None]) -> None:
        self.worker.release_slot()

    async def _record(self, event: NewEvent) -> bool:
        future: asyncio.Future[bool] = self.loop.create_future()
        self.outbox.append((event, future))
        self.poke()
        return await future

    def _arm(self, op: Op) -> None:
        if op.correlation_id in self.timers or self.worker.virtual_clock:
            return
        delay = max(0.0, op.resume_at - self.now())
        handle = self.loop.call_later(delay, self._fire, op.correlation_id)
        self.timers[op.correlation_id] = handle

    def _fire(self, wait_id: str, at: float | None = None) -> None:
        self.timers.pop(wait_id, None)
        when = _at(self.now() if at is None else max(at, self.now()))
        self.outbox.append((NewEvent(EventType.WAIT_COMPLETED, wait_id, created_at=when), None))
        self.poke()

    def _cancel_timer(self, correlation_id: str | None) -> None:
        handle = self.timers.pop(correlation_id or "", None)
        if handle is not None:
            handle.cancel()

    # -- leaving memory ----------------------------------------------------------------------

    async def _release_if_idle(self) -> bool:
        """Leave memory once idle for ``evict_after`` seconds with no timer due by then."""
        executor = self.executor
        if executor is None or self.outbox or self.worker.stopping:
            return False
        if self.worker.virtual_clock and self._skip_ahead(executor):
            return False
        if self.steps:
            return False
        pending = list(executor.pending())
        if any(op.kind == "step" for op in pending):
            return False
        waits = [op.resume_at for op in pending if op.kind == "wait" and not op.cancelled]
        earliest = min(waits) if waits else None
        now, evict_after = self.now(), self.worker.evict_after
        if earliest is not None and earliest - now <= evict_after:
            return False
        if self.idle_since is None:
            self.idle_since = now
        remaining = self.idle_since + evict_after - now
        if remaining > 0:
            if self.idle_check is None:
                loop = asyncio.get_running_loop()
                self.idle_check = loop.call_later(remaining, self._idle_check_due)
            return False
        wake_at = None if earliest is None else _at(earliest)
        self._drop()
        await self.world.release_run(self.run_id, self.worker.worker_id, wake_at, self.known_seq)
        return True

    def _skip_ahead(self, executor: RunExecutor) -> bool:
        """Virtual clock: with nothing left but timers, fire the earliest; whether one fired.

        Timers are sleeps and retry delays. Never while a step runs, here or elsewhere.
        """
        gated = self.retry_gates
        if len(self.steps) > len(gated):
            return False
        pending = list(executor.pending())
        if any(op.kind == "step" and op.correlation_id not in gated for op in pending):
            return False
        waits = [op for op in pending if op.kind == "wait" and not op.cancelled]
        first_wait = min(waits, key=lambda op: op.resume_at, default=None)
        first_gate = min(gated, key=lambda step_id: gated[step_id][0], default=None)
        if first_gate is not None and (
            first_wait is None or gated[first_gate][0] < first_wait.resume_at
        ):
            _open(gated.pop(first_gate)[1])
            return True
        if first_wait is not None:
            self._fire(first_wait.correlation_id, at=first_wait.resume_at)
            return True
        return False

    def _idle_check_due(self) -> None:
        self.idle_check = None
        self.poke()

    def _drop(self) -> None:
        self.done = True
        if self.idle_check is not None:
            self.idle_check.cancel()
            self.idle_check = None
        for task in self.steps.values():
            task.cancel()
        self.steps.clear()
        self.remote.clear()
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        for _, future in self.outbox:
            if future is not None and not future.done():
                future.set_result(False)
        self.outbox.clear()
        self._reset_executor()

    def _reset_executor(self) -> None:
        if self.executor is not None:
            self.executor.discard()
            self.executor = None
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
            await self.world.release_run(self.run_id, self.worker.worker_id, _at(self.now()))
