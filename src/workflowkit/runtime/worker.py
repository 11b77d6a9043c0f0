"""The worker: claims due runs from the World, keeps them in memory, renews their leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..ids import new_id
from ..registry import REGISTRY, Registry
from ..worlds.base import RunChange, WorkerInfo, World
from .determinism import install as install_determinism
from .driver import RunDriver

log = logging.getLogger("workflowkit.worker")


class Worker:
    """Executes runs. Many may share one World; leases keep each run on one worker at a time."""

    def __init__(
        self,
        world: World,
        *,
        registry: Registry = REGISTRY,
        max_runs: int = 10_000,
        lease_seconds: float | None = None,
        evict_after: float = 5.0,
        poll_interval: float = 1.0,
        step_threads: int = 32,
        cache_runs: bool | None = None,
        virtual_clock: bool = False,
    ) -> None:
        install_determinism()
        self.world = world
        self.registry = registry
        self.worker_id = new_id("wrkr")
        self.info = WorkerInfo(self.worker_id, socket.gethostname(), os.getpid())
        self.max_runs = max_runs
        self.lease_seconds = lease_seconds or float(
            os.environ.get("WORKFLOWKIT_LEASE_SECONDS", "30")
        )
        self.evict_after = evict_after
        self.poll_interval = poll_interval
        # Tests: when a run has nothing to do but wait for timers, time jumps to the next one.
        self.virtual_clock = virtual_clock
        # Without the run cache every event replays the run from the log: slow, but a
        # thorough check that workflow code is deterministic.
        self.cache_runs = (
            cache_runs
            if cache_runs is not None
            else os.environ.get("WORKFLOWKIT_RUN_CACHE", "1") not in {"0", "false", "no"}
        )
        self.pool = ThreadPoolExecutor(step_threads, thread_name_prefix="workflowkit-step")
        self.drivers: dict[str, RunDriver] = {}
        self.stopping = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: object = None

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim and execute runs until ``stop()``."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.world.attach_worker_loop(self._loop)
        await self.world.register_worker(self.info)
        unsubscribe = self.world.subscribe(self._listener)
        renewer = self._loop.create_task(self._renew_forever())
        try:
            failures = 0
            while not self.stopping:
                try:
                    claimed = await self._claim()
                    if claimed and len(self.drivers) < self.max_runs:
                        continue
                    await self._idle()
                    failures = 0
                except Exception:
                    # The store is unreachable or failing: keep the worker alive and retry.
                    failures += 1
                    log.exception("worker %s cannot reach the World; retrying", self.worker_id)
                    await asyncio.sleep(min(0.1 * 2**failures, 5.0))
        finally:
            unsubscribe()
            self.world.attach_worker_loop(None)
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _claim(self) -> int:
        room = self.max_runs - len(self.drivers)
        if room <= 0:
            return 0
        records = await self.world.claim_runs(
            self.info, limit=min(room, 256), lease_seconds=self.lease_seconds
        )
        for record in records:
            if record.run_id in self.drivers or self.stopping:
                continue
            driver = RunDriver(self, record)
            self.drivers[record.run_id] = driver
            driver.start()
        return len(records)

    async def _idle(self) -> None:
        assert self._wake is not None
        timeout = self.poll_interval
        wake_at = await self.world.next_wake_at()
        if wake_at is not None:
            timeout = min(timeout, max(0.0, wake_at.timestamp() - self.world.now()))
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.world.renew_leases(self.worker_id, self.lease_seconds)
            except Exception:
                log.exception("could not renew leases")

    # -- notifications -------------------------------------------------------------------------

    def _listener(self, changes: Sequence[RunChange]) -> None:
        # Our own appends come back through their results; skip them here (hot path).
        changes = [c for c in changes if c.writer != self.worker_id]
        loop = self._loop
        if changes and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_changes, changes)

    def _on_changes(self, changes: Sequence[RunChange]) -> None:
        claim = False
        for change in changes:
            driver = self.drivers.get(change.run_id)
            if driver is not None:
                driver.on_change(change.last_seq)
            elif not change.status.terminal:
                claim = True
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
            del self.drivers[driver.run_id]
            if self._wake is not None and not self.stopping:
                self._wake.set()

    # -- stopping --------------------------------------------------------------------------------

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give running steps ``grace`` seconds; hand the rest back."""
        self.stopping = True
        if self._wake is not None:
            self._wake.set()
        deadline = time.monotonic() + grace
        while any(d.busy for d in self.drivers.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for driver in list(self.drivers.values()):
            await driver.hand_back()
        self.drivers.clear()
        with contextlib.suppress(Exception):
            await self.world.unregister_worker(self.worker_id)
        self.pool.shutdown(wait=False, cancel_futures=True)
