"""Workflow-only primitives that are not steps: durable ``sleep``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from .context import current_executor
from .durations import Duration, parse_duration
from .errors import NotInWorkflowError


async def sleep(duration: Duration | datetime) -> None:
    """Suspend the workflow durably: ``"1 day"``, ``timedelta``, seconds, or an aware datetime.

    A sleeping run holds no memory or thread; it is woken from the store when due, or early
    by ``Run.wake_up()``. ``asyncio.sleep`` in workflow code is the same durable sleep.
    """
    if current_executor() is None:
        raise NotInWorkflowError(
            "workflowkit.sleep() works only in workflow code; in a step use asyncio.sleep"
        )
    loop = asyncio.get_running_loop()
    if isinstance(duration, datetime):
        if duration.tzinfo is None:
            raise ValueError("sleep() needs a timezone-aware datetime, e.g. with tz=timezone.utc")
        when = duration.astimezone(UTC).timestamp()
    else:
        when = loop.time() + parse_duration(duration)
    done = loop.create_future()
    handle = loop.call_at(when, _wake, done)
    try:
        await done
    finally:
        handle.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
