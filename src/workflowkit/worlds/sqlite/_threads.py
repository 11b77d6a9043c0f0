"""A thread that owns one database connection and runs jobs for any event loop.

The writer variant drains every queued job into one transaction (group commit): concurrent
runs share a commit, and a job that raises is rolled back alone through a savepoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ...errors import WorldClosedError

T = TypeVar("T")
C = TypeVar("C")
log = logging.getLogger("workflowkit.db")


@dataclass(slots=True)
class Job(Generic[C]):
    fn: Callable[[C], Any]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | None


_IDLE: Any = object()  # stands for "no job came in time"


class InlineConnection(Generic[C]):
    """A connection for short reads on the calling thread: cheaper than the hand-off to a
    ``DbThread`` and back (about 100 µs, more when the GIL is contended), as long as no
    other thread is using it at that moment."""

    def __init__(self, conn: C) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._closed = False

    def try_run(self, fn: Callable[[C], T]) -> tuple[bool, T | None]:
        """``(True, fn(conn))``; ``(False, None)`` at once if another thread is using it."""
        if not self._lock.acquire(blocking=False):
            return False, None
        try:
            if self._closed:
                return False, None
            return True, fn(self._conn)
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            close = getattr(self._conn, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class DbThread(threading.Thread, Generic[C]):
    """Runs jobs one at a time (or, with ``batch``, many per transaction) on its connection."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], C],
        *,
        transaction: Callable[[C, list[Job[C]]], list[tuple[Any, BaseException | None]]]
        | None = None,
        max_batch: int = 512,
        periodic: Callable[[C], None] | None = None,
        period: float = 0.02,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._connect = connect
        self._transaction = transaction
        self._max_batch = max_batch
        self._periodic = periodic
        self._period = period
        self._jobs: queue.SimpleQueue[Job[C] | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._closed = False

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    async def call(self, fn: Callable[[C], T]) -> T:
        if self._closed:
            raise WorldClosedError("this World is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(Job(fn, loop, future))
        return await future

    def stop(self) -> None:
        self._closed = True
        self._jobs.put(None)
        if self is not threading.current_thread():
            self.join(timeout=10)

    def run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        last_periodic = time.monotonic()
        try:
            while True:
                try:
                    first = self._jobs.get(timeout=self._period if self._periodic else None)
                except queue.Empty:
                    first = _IDLE
                if first is None:
                    return
                batch = [] if first is _IDLE else [first]
                stop = False
                while batch and len(batch) < self._max_batch:
                    try:
                        nxt = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                if batch:
                    self._run_batch(conn, batch)
                if self._periodic and time.monotonic() - last_periodic >= self._period:
                    last_periodic = time.monotonic()
                    try:
                        self._periodic(conn)
                    except Exception:
                        log.debug("periodic database task failed", exc_info=True)
                if stop:
                    return
        finally:
            self._closed = True
            self._fail_queued()
            close = getattr(conn, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _fail_queued(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.future is not None and job.loop is not None:
                error = WorldClosedError("this World was closed before the call ran")
                with contextlib.suppress(RuntimeError):
                    job.loop.call_soon_threadsafe(_resolve, job.future, None, error)

    def _run_batch(self, conn: C, batch: list[Job[C]]) -> None:
        if self._transaction is not None:
            outcomes = self._transaction(conn, batch)
        else:
            outcomes = []
            for job in batch:
                try:
                    outcomes.append((job.fn(conn), None))
                except BaseException as exc:
                    outcomes.append((None, exc))
        for job, (result, error) in zip(batch, outcomes, strict=True):
            if job.future is not None and job.loop is not None:
                with contextlib.suppress(RuntimeError):  # the caller's loop is closed
                    job.loop.call_soon_threadsafe(_resolve, job.future, result, error)


def retry_busy(action: Callable[[], T], *, what: str) -> T:
    """Run ``action`` until SQLite stops answering busy/locked; other errors propagate."""
    delay, started = 0.001, time.monotonic()
    while True:
        try:
            return action()
        except Exception as exc:
            message = str(exc).lower()
            if "locked" not in message and "busy" not in message:
                raise
            if time.monotonic() - started > 30:
                log.warning("%s still waiting for the database lock after 30 s", what)
                started = time.monotonic()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
