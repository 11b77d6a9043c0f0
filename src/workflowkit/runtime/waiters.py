"""Callers waiting for runs to end, woken by the World's change notifications.

One World listener serves every waiter of the process, dispatching by run id, so a thousand
``return_value()`` calls cost a dictionary lookup per change, not a thousand scans.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..worlds.base import World
from ..worlds.records import RunChange


class TerminalWaiters:
    def __init__(self, world: World) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Callable[[RunChange], None]]] = {}
        self.unsubscribe = world.subscribe(self._on_changes)

    def add(self, run_id: str, callback: Callable[[RunChange], None]) -> Callable[[], None]:
        """Call ``callback`` (from a World thread) with the change that ended the run."""
        with self._lock:
            self._waiters.setdefault(run_id, []).append(callback)

        def remove() -> None:
            with self._lock:
                callbacks = self._waiters.get(run_id, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._waiters.pop(run_id, None)

        return remove

    def _on_changes(self, changes: Sequence[RunChange]) -> None:
        if not self._waiters:
            return
        with self._lock:
            due = [
                (callback, change)
                for change in changes
                if change.status.terminal
                for callback in self._waiters.get(change.run_id, ())
            ]
        for callback, change in due:
            callback(change)


class Nudge:
    """Wakes a coroutine of ``loop`` waiting in ``wait()``, from any thread; a nudge that
    comes while nobody waits ends the next wait at once. ``ended``: the change that ended
    the run, once one nudged.

    One future per wait, set straight from the nudge: an ``asyncio.Event`` waited on with
    ``wait_for`` takes three turns of the loop to resume its waiter (a task of its own,
    then its callbacks), about 100 µs of a short run's start → result."""

    __slots__ = ("_loop", "_nudged", "_waiter", "ended")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._nudged = False
        self.ended: RunChange | None = None

    def nudge(self, ended: RunChange | None = None) -> None:
        if ended is not None:
            self.ended = ended
        with contextlib.suppress(RuntimeError):  # the waiting loop is gone
            self._loop.call_soon_threadsafe(self._wake, True)

    def _wake(self, nudged: bool) -> None:
        self._nudged = self._nudged or nudged
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until nudged (since the last wait) or ``timeout`` seconds pass."""
        if not self._nudged:
            self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, self._wake, False)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        self._nudged = False


class EndWatch:
    """The end of a run this process's worker is about to execute, listened for from before
    the run exists: ``start()`` begins it just before the create, so ``return_value()`` on
    the same loop need not read the run before its first wait (a read that competed with
    the worker for the GIL while the run ran). It stops listening once the run has ended
    (then a wait reads first, as any other), or when its handle is dropped."""

    __slots__ = ("_dropped", "_remove", "loop", "nudge", "waiters")

    def __init__(self, waiters: TerminalWaiters, loop: asyncio.AbstractEventLoop) -> None:
        self.waiters = waiters
        self.loop = loop
        self.nudge = Nudge(loop)
        self._remove: Callable[[], None] | None = None
        self._dropped: weakref.finalize[Any, Any] | None = None

    def begin(self, run_id: str) -> None:
        self._remove = self.waiters.add(run_id, self._ended)

    def hold(self, handle: object) -> None:
        """Stop listening if ``handle`` (the run's) is garbage collected first."""
        self._dropped = weakref.finalize(handle, self.stop)

    def _ended(self, change: RunChange) -> None:
        self.nudge.nudge(change)
        self.stop()

    def stop(self) -> None:
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()
        dropped, self._dropped = self._dropped, None
        if dropped is not None:
            dropped.detach()

    @property
    def listening(self) -> bool:
        return self._remove is not None

    def serves(self, waiters: TerminalWaiters) -> bool:
        """Whether it still listens, through ``waiters``, for a caller on its loop."""
        running = asyncio._get_running_loop()
        return self.listening and waiters is self.waiters and running is self.loop
