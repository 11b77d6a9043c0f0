"""A worker's part in schedules: writing the code's schedules to the World, and firing ticks.

Firing is one World call (``fire_schedules``) that claims due ticks and creates their runs
in one transaction; this module decides only when to make it. It keeps no timer state that
matters: the next tick lives in the World's row, so a worker that dies loses nothing, and
any other worker of the workflow fires the tick. What it caches (when the next tick is due)
only saves a query; it is read again every poll interval, which is how a schedule another
process created is noticed.

On the virtual clock (tests) ``advance`` moves the schedules' time forward, firing each
tick on the way and letting its runs end before the next; they also fire as real time
passes, until it catches up with theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from .. import serde
from .._schedule_spec import StaticSchedule
from ..errors import SerializationError
from ..registry import Registry
from ..worlds import schedule_rules as rules
from ..worlds.base import World
from ..worlds.records import FiredTick, RunChange, ScheduleRecord, ScheduleSpec
from .executor import encode_input

log = logging.getLogger("workflowkit.schedules")
_NO_ARGS = encode_input((), {}, what="a schedule")


def tick_input(record: ScheduleRecord, tick: datetime) -> bytes:
    """A tick's run input: the tick's time in the schedule's zone, then the stored args."""
    try:
        args, kwargs = serde.decode(record.input)
        return encode_input(
            (tick.astimezone(ZoneInfo(record.timezone)), *args),
            kwargs,
            what=f"schedule {record.schedule_id}",
        )
    except (SerializationError, ValueError, TypeError):
        # Arguments this code cannot read (a class since removed): the run gets them as
        # stored and fails on decoding them, saying why, where the schedule's runs are shown.
        # Refusing here would stop every other schedule fired in the same transaction.
        log.exception("schedule %s: its arguments cannot be decoded", record.schedule_id)
        return record.input


def declared(registry: Registry) -> dict[str, ScheduleSpec]:
    """The schedules the registry's workflows declare, by id."""
    return {
        s.schedule_id: _spec(name, s)
        for name, wf in list(registry.workflows.items())
        for s in wf.schedules
    }


def _spec(workflow_name: str, schedule: StaticSchedule) -> ScheduleSpec:
    return ScheduleSpec(
        schedule.schedule_id,
        workflow_name,
        schedule.cron.expression,
        schedule.cron.timezone,
        schedule.catch_up,
        schedule.overlap,
        _NO_ARGS,
        static=True,
    )


class ScheduleFirer:
    """Fires the due ticks of the schedules of a worker's workflows."""

    def __init__(
        self, world: World, registry: Registry, poll_interval: float, virtual_clock: bool
    ) -> None:
        self.world = world
        self.registry = registry
        self.poll_interval = poll_interval
        self._names: tuple[str, ...] | None = None  # the workflows whose schedules were written
        self._due_at: float | None = None  # the earliest next tick, as last read
        self._buffered = False
        self._read_at = -math.inf  # when that was read (monotonic)
        # On the virtual clock, the time ticks are due by; None: the World's clock.
        self.virtual_now: float | None = world.now() if virtual_clock else None
        self._advancing = False  # ``advance`` fires alone: it waits for what it fired
        # A client call (``Runtime.declare_schedules``) may declare while the worker does.
        self._declaring = asyncio.Lock()

    def changed(self) -> None:
        """A schedule was written in this process: read when the next tick is due again."""
        self._read_at = -math.inf

    def now(self) -> float:
        real = self.world.now()
        return real if self.virtual_now is None else max(real, self.virtual_now)

    async def declare(self) -> None:
        """Write the code's schedules to the World if they changed since the last time, and
        delete those of this worker's workflows that the code no longer declares."""
        names = tuple(self.registry.workflows)
        if names == self._names:
            return  # the registry is as it was: so are its schedules
        async with self._declaring:
            if names != self._names:  # not written meanwhile by the other caller
                await self._declare(names)

    async def _declare(self, names: tuple[str, ...]) -> None:
        specs = declared(self.registry)
        for spec in specs.values():
            await self.world.change_schedule(spec.schedule_id, rules.declare(spec))
        mine = set(self.registry.workflows)
        for record in await self.world.list_schedules():
            gone = record.schedule_id not in specs and record.workflow_name in mine
            if record.static and gone:
                decision = rules.delete(record.schedule_id, static=True)
                await self.world.change_schedule(record.schedule_id, decision)
        self._names = names
        self.changed()

    async def fire(self) -> list[FiredTick]:
        """Fire what is due now; the ticks that started runs."""
        if self._advancing or not await self._due():
            return []
        fired = await self._fire_at(self.now())
        self.changed()  # the next tick moved
        return fired

    def wake_in(self) -> float | None:
        """Seconds until the next tick is due (by what was last read), for an idle worker."""
        if self._due_at is None or self.virtual_now is not None:
            return None
        return max(0.0, self._due_at - self.world.now())

    async def _due(self) -> bool:
        loop = asyncio.get_running_loop()
        if loop.time() - self._read_at >= self.poll_interval or self._due_now():
            due = await self.world.schedules_due(list(self.registry.workflows))
            self._due_at = None if due.next_tick is None else due.next_tick.timestamp()
            self._buffered, self._read_at = due.buffered, loop.time()
            return self._due_now() or self._buffered
        return False

    def _due_now(self) -> bool:
        return self._due_at is not None and self._due_at <= self.now()

    async def _fire_at(self, at: float) -> list[FiredTick]:
        names = list(self.registry.workflows)
        fired: list[FiredTick] = []
        while True:  # a page at a time, while pages come back full
            page = await self.world.fire_schedules(names, tick_input, now=at, limit=32)
            fired += page
            if len(page) < 32:
                return fired

    async def advance(self, seconds: float, run_timeout: float) -> list[FiredTick]:
        """Virtual clock: move the schedules' time ``seconds`` forward, firing every tick on
        the way and waiting (up to ``run_timeout`` seconds each) for its runs to end."""
        if self.virtual_now is None:
            raise RuntimeError("advance() needs the virtual clock (virtual_clock=True)")
        target = self.now() + seconds
        fired: list[FiredTick] = []
        self._advancing = True
        try:
            while True:
                due = await self.world.schedules_due(list(self.registry.workflows))
                if due.next_tick is None or due.next_tick.timestamp() > target:
                    break
                self.virtual_now = due.next_tick.timestamp()
                page = await self._fire_at(self.virtual_now)
                await _until_ended(self.world, [f.run_id for f in page], run_timeout)
                fired += page
            self.virtual_now = target
        finally:
            self._advancing = False
            self.changed()
        return fired


async def _until_ended(world: World, run_ids: list[str], timeout: float) -> None:
    """Wait for the runs to end, told by the World's change feed."""
    loop = asyncio.get_running_loop()
    waiting = set(run_ids)
    done = asyncio.Event()

    def ended(run_ids: list[str]) -> None:
        waiting.difference_update(run_ids)
        if not waiting:
            done.set()

    def listener(changes: Sequence[RunChange]) -> None:
        finished = [c.run_id for c in changes if c.status.terminal]
        if finished:
            with contextlib.suppress(RuntimeError):  # the loop is gone
                loop.call_soon_threadsafe(ended, finished)

    unsubscribe = world.subscribe(listener)
    try:
        for run_id in run_ids:  # those that ended before the listener was there
            record = await world.get_run(run_id)
            if record is None or record.status.terminal:
                ended([run_id])
        if waiting:
            await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        raise TimeoutError(
            f"scheduled runs {sorted(waiting)} did not end within {timeout} s"
        ) from None
    finally:
        unsubscribe()
