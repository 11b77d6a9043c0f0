"""The PostgreSQL World's own event loop, on a thread of its own.

The World is called from any event loop (the runtime's background loop, user loops,
``asyncio.run`` in tests), but a psycopg async pool and its connections belong to the loop
that created them. So the World owns one loop, where its pool and LISTEN connection live,
and every call is bridged to it and awaited from the caller's loop. This costs a thread hop
per call (as the SQLite World's writer thread does) and buys one pool per World whatever the
number of caller loops, a synchronous constructor, and a ``close()`` that works from any
loop. A caller that is cancelled does not cancel the database work it started: a write runs
to its commit or rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ...errors import WorldClosedError

T = TypeVar("T")


class WorldLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.closed = False
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
        if asyncio.get_running_loop() is self.loop:
            return await coro
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.closed and future.cancelled() and not (task and task.cancelling()):
                raise WorldClosedError("this World was closed before the call finished") from None
            raise

    def call_soon(self, callback: Any) -> None:
        """Schedule ``callback`` on the World's loop, from any thread (not after ``stop``)."""
        if not self.closed:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(callback)

    async def shut_down(self, finish: Coroutine[Any, Any, None]) -> None:
        """Run ``finish`` on the World's loop, cancel whatever still runs there, stop it."""
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
            with contextlib.suppress(Exception):
                self.loop.close()
