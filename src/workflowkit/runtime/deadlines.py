"""Step timeouts: one timer per event loop for every step attempt running on it.

``asyncio.timeout`` arms and cancels a timer handle per attempt (several microseconds,
and a heap of cancelled handles), which showed in the per-step overhead. Here an attempt
costs a dict entry; one timer, armed for the earliest deadline, cancels the tasks past
theirs and re-arms for the next. Deadlines of one step are all the same length, so the
earliest is usually far off and the timer rarely fires.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from typing import Any

# The loop may run a timer a hair before its time (its clock's resolution).
_SLACK = 0.001


class Deadlines:
    """The deadlines of the step attempts running on one loop (``watch(loop)``)."""

    __slots__ = ("__weakref__", "_due", "_expired", "_loop", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, task: asyncio.Task[object], timeout: float) -> None:
        """Cancel ``task`` once ``timeout`` seconds have passed, unless discarded first."""
        at = self._loop.time() + timeout
        self._due[task] = at
        if at < self._timer_at:
            self._arm(at)

    def took(self, task: asyncio.Task[object]) -> bool:
        """Whether ``task`` was cancelled for its deadline (the answer is given once)."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    def due(self, task: asyncio.Task[Any]) -> float | None:
        """When ``task``'s deadline falls on the loop's clock; None if it has none (left)."""
        return self._due.get(task)

    def expire(self, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` now, as its deadline would: the test plugin's virtual clock has
        reached that deadline, however little real time passed."""
        if self._due.pop(task, None) is not None:
            self._expired.add(task)
            task.cancel()

    def discard(self, task: asyncio.Task[object]) -> None:
        self._due.pop(task, None)
        self._expired.discard(task)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(at, self._fire)
        self._timer_at = at

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self._loop.time() + _SLACK
        for task, at in list(self._due.items()):
            if at <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        if self._due:
            self._arm(min(self._due.values()))


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def watch(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The deadlines of ``loop``'s step attempts."""
    found = _BY_LOOP.get(loop)
    if found is None:
        found = _BY_LOOP[loop] = Deadlines(loop)
    return found
