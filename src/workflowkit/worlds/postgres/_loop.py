"""The PostgreSQL World's own event loop, on a thread of its own.

The World is called from any event loop (the runtime's background loop, user loops,
``asyncio.run`` in tests), but a psycopg async pool and its connections belong to the loop
that created them. So the World owns one loop, where its pool and LISTEN connection live,
and every call is bridged to it and awaited from the caller's loop. This buys one pool per
World whatever the number of caller loops, a synchronous constructor, and a ``close()`` that
works from any loop but its own. A caller that is cancelled does not cancel the database work it
started: a write runs to its commit or rollback.

Code that runs on the World's loop itself calls it with no bridge at all. A worker runs
there (``PostgresWorld.home_loop``): its calls cost no thread hand-off, and its loop and the
World's no longer take turns on the GIL.

The bridge is the hot path of every call, so it is kept to one wake-up per batch in each
direction: calls wait in an inbox that the World's loop drains in one go, and outcomes wait
in a mailbox per caller loop that it drains in one go. A burst of calls (a worker's runs
all appending at once) costs two self-pipe writes, not two per call, and no
``concurrent.futures.Future`` (with its lock) per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import weakref
from collections import deque
from collections.abc import Coroutine
from typing import Any, TypeVar

from ...errors import WorldClosedError

T = TypeVar("T")

_CLOSED = "this World was closed before the call finished"
# What a call's outcome is handed over as: its done task, or the error it never started for.
_Outcome = asyncio.Future[Any] | BaseException


class _Mailbox:
    """Outcomes of calls made from one caller loop, handed over with one wake-up per batch.

    ``armed`` is set by the World's thread when it schedules a delivery and cleared by the
    delivery *before* it drains, so an outcome put while a delivery runs is either drained
    by it or schedules the next one: never left behind.
    """

    __slots__ = ("__weakref__", "armed", "items", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: deque[tuple[asyncio.Future[Any], _Outcome]] = deque()
        self.armed = False

    def put(self, future: asyncio.Future[Any], outcome: _Outcome) -> None:
        """From the World's thread: ``outcome`` (a done task, or an error) for ``future``."""
        self.items.append((future, outcome))
        if not self.armed:
            self.armed = True
            with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
                self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        self.armed = False
        while self.items:
            future, outcome = self.items.popleft()
            if future.done():  # the caller was cancelled: the work went on without it
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            elif outcome.cancelled():
                # Only closing the World cancels its tasks.
                future.set_exception(WorldClosedError(_CLOSED))
            elif (error := outcome.exception()) is not None:
                future.set_exception(error)
            else:
                future.set_result(outcome.result())


_Call = tuple[Coroutine[Any, Any, Any], asyncio.Future[Any], _Mailbox]


class WorldLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
        self._inbox: deque[_Call] = deque()
        self._armed = False  # a drain of the inbox is scheduled (see ``_Mailbox``)
        self._mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
            weakref.WeakKeyDictionary()
        )
        self._mailbox_lock = threading.Lock()
        # The calls' tasks: an event loop holds its tasks only weakly, and a task waiting on
        # something only it refers to would be collected, its caller never answered.
        self._running: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(
            target=self._serve, name="workflowkit-postgres", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the World's loop from a thread that has no running loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the World's loop and await it from the caller's loop."""
        if self.closed:
            coro.close()
            raise WorldClosedError("this World is closed")
        caller = asyncio.get_running_loop()
        if caller is self.loop:
            # A caller living on this loop (a worker run here: see ``home_loop``) pays no
            # hand-off; the work is still a task of its own, so cancelling the caller does
            # not cut a write short.
            task = self.loop.create_task(coro)
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            return await asyncio.shield(task)
        future: asyncio.Future[T] = caller.create_future()
        self._inbox.append((coro, future, self._mailbox(caller)))
        if not self._armed:
            self._armed = True
            try:
                self.loop.call_soon_threadsafe(self._start_calls)
            except RuntimeError:  # the World's loop is closed
                self._fail_waiting()
        # Awaited directly: a cancelled caller cancels only its own future, never the task
        # doing the work on the World's loop.
        return await future

    def _mailbox(self, caller: asyncio.AbstractEventLoop) -> _Mailbox:
        mailbox = self._mailboxes.get(caller)
        if mailbox is None:
            with self._mailbox_lock:
                mailbox = self._mailboxes.setdefault(caller, _Mailbox(caller))
        return mailbox

    def _start_calls(self) -> None:
        """On the World's loop: start every call waiting in the inbox."""
        self._armed = False
        while self._inbox:
            coro, future, mailbox = self._inbox.popleft()
            if self.closed:
                coro.close()
                mailbox.put(future, WorldClosedError(_CLOSED))
                continue
            task = self.loop.create_task(coro)
            self._running.add(task)
            task.add_done_callback(functools.partial(self._hand_back, mailbox, future))

    def _hand_back(
        self, mailbox: _Mailbox, future: asyncio.Future[Any], done: asyncio.Task[Any]
    ) -> None:
        self._running.discard(done)
        mailbox.put(future, done)

    def _fail_waiting(self) -> None:
        """Calls that will never start (the World's loop stopped): they fail."""
        while self._inbox:
            coro, future, mailbox = self._inbox.popleft()
            coro.close()
            mailbox.put(future, WorldClosedError(_CLOSED))

    def call_soon(self, callback: Any) -> None:
        """Schedule ``callback`` on the World's loop, from any thread (not after ``stop``)."""
        if not self.closed:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(callback)

    async def shut_down(self, finish: Coroutine[Any, Any, None]) -> None:
        """Run ``finish`` on the World's loop, cancel whatever still runs there, stop it."""
        if asyncio.get_running_loop() is self.loop:
            finish.close()
            raise RuntimeError(
                "a PostgreSQL World cannot be closed from its own event loop (it stops that "
                "loop): close it from another thread or event loop"
            )
        self.closed = True
        if self.loop.is_running():
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(self._finish(finish), self.loop)
                )
        else:
            finish.close()
        await asyncio.to_thread(self.stop)

    async def _finish(self, finish: Coroutine[Any, Any, None]) -> None:
        await finish
        # Calls still retrying end now; their callers get WorldClosedError.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for other in others:
            other.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._fail_waiting()
            with contextlib.suppress(Exception):
                self.loop.close()
