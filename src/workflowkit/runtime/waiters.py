"""Callers waiting for runs to end, woken by the World's change notifications.

One World listener serves every waiter of the process, dispatching by run id, so a thousand
``return_value()`` calls cost a dictionary lookup per change, not a thousand scans.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ..worlds.base import World
from ..worlds.records import RunChange


class TerminalWaiters:
    def __init__(self, world: World) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Callable[[], None]]] = {}
        self.unsubscribe = world.subscribe(self._on_changes)

    def add(self, run_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from a World thread) when the run may have ended."""
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
                callback
                for change in changes
                if change.status.terminal
                for callback in self._waiters.get(change.run_id, ())
            ]
        for callback in due:
            callback()
