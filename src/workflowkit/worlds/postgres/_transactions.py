"""Transactions on the PostgreSQL World's pool: what is retried, and what a lost commit means.

A lost connection (or a serialisation failure / deadlock) before ``COMMIT`` was sent is
retried with backoff: nothing committed. A connection lost *during* ``COMMIT`` is ambiguous,
and such a write is never retried blindly: its ``recover`` function looks up whether it
landed (an append checks for its first event, whose id it chose before writing) and returns
the outcome it computed if so. Idempotent writes (lease renewal, release, registration) are
simply retried. When the database stays unreachable past ``retry_for`` seconds, a call
raises ``WorldUnavailableError``, and ``AmbiguousCommitError`` if a write's outcome could
not be established. Every error here is about the database, not the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from ...errors import (
    AmbiguousCommitError,
    CorruptDataError,
    WorldClosedError,
    WorldUnavailableError,
)
from .._listeners import Listeners
from ..records import RunChange, StreamChange

T = TypeVar("T")
Conn = AsyncConnection[tuple[Any, ...]]
log = logging.getLogger("workflowkit.postgres")

_IDLE_TIMEOUT = "25P03"  # idle_in_transaction_session_timeout ended the session


@dataclass(slots=True)
class Outcome:
    """A transaction body's value, the changes to announce once it committed, and the
    writes to send in one pipeline with the COMMIT (``writes`` queues them)."""

    value: Any
    changes: Sequence[RunChange] = ()
    stream_changes: Sequence[StreamChange] = ()
    writes: Callable[[Conn], Awaitable[None]] | None = None
    # Decided on rows presumed rather than read: a write that misses its row means the
    # presumption was wrong (``PresumptionMissed``), not that the data is.
    presumed: bool = False


class PresumptionMissed(Exception):
    """A transaction decided on presumed rows found them otherwise and wrote nothing: it is
    to be decided again from the rows read."""


Body = Callable[[Conn, bool], Awaitable[Outcome]]
Recover = Callable[[Conn, Outcome], Awaitable[Outcome | None]]


def is_transient(exc: BaseException) -> bool:
    """A failure that says nothing about the data: the connection, not the statement."""
    if isinstance(exc, PoolClosed):
        return False
    if isinstance(exc, PoolTimeout):
        return True
    if getattr(exc, "sqlstate", None) == _IDLE_TIMEOUT:
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return isinstance(exc, psycopg.InterfaceError)
    state = exc.sqlstate
    return state is None or state.startswith(("08", "40", "57P"))


def _rolled_back(exc: BaseException) -> bool:
    """The server said it rolled the transaction back (serialisation failure, deadlock, or
    it ended a session that sat idle inside a transaction)."""
    return getattr(exc, "sqlstate", None) in {"40001", "40P01", _IDLE_TIMEOUT}


def _raise_if_closed(exc: Exception, what: str) -> None:
    """The pool was closed under a call (one waiting out a lost connection when the World
    closed): the caller gets the World's error, not psycopg's."""
    if isinstance(exc, PoolClosed):
        raise WorldClosedError(f"this World was closed while {what} was running") from exc


async def _commit(conn: Conn, outcome: Outcome) -> None:
    """Send the outcome's writes and COMMIT in one round trip. Nothing else follows the
    pipeline inside the transaction: after one, the server no longer times a session idle
    in its transaction, so a client frozen then would hold its locks forever."""
    if outcome.writes is None:
        await conn.execute("COMMIT")
        return
    try:
        async with conn.pipeline():
            await outcome.writes(conn)
            await conn.execute("COMMIT")
    except (psycopg.errors.DivisionByZero, psycopg.errors.UniqueViolation) as exc:
        # A write that must hit its row (or find none) did not.
        if outcome.presumed:
            await conn.execute("ROLLBACK")  # the connection goes back to the pool clean
            raise PresumptionMissed(str(exc)) from exc
        if isinstance(exc, psycopg.errors.UniqueViolation):
            raise
        raise CorruptDataError(
            "steps or waits changed without their run's lock; nothing was written"
        ) from exc


class Database:
    """The pool, and running work on it with the retry rules above (on the World's loop)."""

    def __init__(
        self, pool: AsyncConnectionPool[Conn], listeners: Listeners, retry_for: float
    ) -> None:
        self.pool = pool
        self._listeners = listeners
        self.retry_for = retry_for
        self.closed = False

    async def transaction(
        self,
        body: Body,
        *,
        what: str,
        idempotent: bool = False,
        recover: Recover | None = None,
        begins: bool = False,
    ) -> Any:
        """Run ``body`` in a transaction, retrying what surely did not commit; the value.

        With ``begins``, the body sends BEGIN itself, in the pipeline of its first statements:
        a round trip less.
        """
        delay, started, retry = 0.05, time.monotonic(), False
        while True:
            committing = False
            outcome: Outcome | None = None
            try:
                async with self.pool.connection() as conn:
                    if not begins:
                        await conn.execute("BEGIN")
                    try:
                        outcome = await body(conn, retry)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK")
                        raise
                    committing = True
                    await _commit(conn, outcome)
            except Exception as exc:
                _raise_if_closed(exc, what)
                if not is_transient(exc):
                    raise
                retry = True
                if committing and not _rolled_back(exc) and not idempotent:
                    assert outcome is not None
                    resolved = await self._resolve(outcome, recover, what, exc)
                    if resolved is not None:
                        outcome = resolved
                        break
                delay = await self._backoff(delay, started, what, exc)
                continue
            break
        self._listeners.runs.notify(outcome.changes)
        self._listeners.streams.notify(outcome.stream_changes)
        return outcome.value

    async def write(self, what: str, fn: Callable[[Conn], Awaitable[Any]]) -> None:
        """An idempotent write: safe to repeat whether or not an earlier attempt committed."""

        async def body(conn: Conn, retry: bool) -> Outcome:
            await fn(conn)
            return Outcome(None)

        await self.transaction(body, what=what, idempotent=True)

    async def read(self, fn: Callable[[Conn], Awaitable[T]], what: str) -> T:
        delay, started = 0.05, time.monotonic()
        while True:
            try:
                async with self.pool.connection() as conn:
                    return await fn(conn)
            except Exception as exc:
                _raise_if_closed(exc, what)
                if not is_transient(exc):
                    raise
                delay = await self._backoff(delay, started, what, exc)

    async def _resolve(
        self, outcome: Outcome, recover: Recover | None, what: str, exc: BaseException
    ) -> Outcome | None:
        """After a lost COMMIT: the outcome if it committed, None if it surely did not."""
        if recover is None:
            raise AmbiguousCommitError(
                f"PostgreSQL World: the connection was lost while committing {what}; "
                "it may or may not have been applied"
            ) from exc
        delay, started = 0.05, time.monotonic()
        while True:
            try:
                async with self.pool.connection() as conn:
                    return await recover(conn, outcome)
            except Exception as again:
                if not is_transient(again):
                    raise
                if time.monotonic() - started > self.retry_for:
                    raise AmbiguousCommitError(
                        f"PostgreSQL World: the connection was lost while committing {what} "
                        "and the database stayed unreachable; it may or may not have been applied"
                    ) from again
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _backoff(self, delay: float, started: float, what: str, exc: BaseException) -> float:
        if self.closed:
            raise WorldClosedError(f"this World was closed while {what} was retried") from exc
        if time.monotonic() - started > self.retry_for:
            raise WorldUnavailableError(
                f"PostgreSQL World: {what} failed for {self.retry_for:.0f} s: {exc}"
            ) from exc
        log.warning("PostgreSQL World: %s failed (%s); retrying in %.2f s", what, exc, delay)
        await asyncio.sleep(delay)
        return min(delay * 2, 2.0)
