"""Who hears of a World's changes: the listeners of ``subscribe`` and ``subscribe_streams``.

Listeners are called from a backend thread, right after a commit (or when another process's
commit is noticed); one that raises is logged and the others still hear of the change.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .base import ChangeListener, StreamListener
from .records import RunChange, StreamChange

log = logging.getLogger("workflowkit.worlds")
C = TypeVar("C")


class _Listeners(Generic[C]):
    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Sequence[C]], None]] = []

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def add(self, listener: Callable[[Sequence[C]], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return remove

    def notify(self, changes: Sequence[C]) -> None:
        if not changes:
            return
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(changes)
            except Exception:
                log.exception("%s listener failed", self._what)


class Listeners:
    """The run and stream listeners of one World."""

    def __init__(self) -> None:
        self.runs: _Listeners[RunChange] = _Listeners("change")
        self.streams: _Listeners[StreamChange] = _Listeners("stream")

    def __bool__(self) -> bool:
        return bool(self.runs) or bool(self.streams)

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        return self.runs.add(listener)

    def subscribe_streams(self, listener: StreamListener) -> Callable[[], None]:
        return self.streams.add(listener)
