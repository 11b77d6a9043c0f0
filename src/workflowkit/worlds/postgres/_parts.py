"""What the PostgreSQL World's groups of methods share: its database, loop, feed and clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .._listeners import Listeners
from ._feed import Clock, Feed
from ._loop import WorldLoop
from ._transactions import Conn, Database

T = TypeVar("T")


class WorldParts:
    """The state the World's groups of methods share (``PostgresWorld.__init__`` sets it),
    and how a call reaches the World's loop."""

    conninfo: str
    schema: str
    retry_for: float
    _listeners: Listeners
    _clock: Clock
    _feed: Feed
    _loop: WorldLoop
    _db: Database

    @property
    def channel(self) -> str:
        return self._feed.channel

    def now(self) -> float:
        """The database clock, estimated locally (within half a round trip)."""
        return self._clock.now()

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._loop.call(coro)

    async def _write(self, what: str, fn: Callable[[Conn], Awaitable[Any]]) -> None:
        """An idempotent write, on the World's loop: safe to repeat after a lost commit."""
        await self._db.write(what, fn)

    async def _read(self, fn: Callable[[Conn], Coroutine[Any, Any, T]], what: str) -> T:
        return await self._call(self._db.read(fn, what))
