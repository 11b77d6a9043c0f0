"""Workflow-only primitives that are not steps: durable ``sleep``, and ``patched`` for
changing workflow code under runs that are still going."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from .context import WorkflowExecutor, current_executor
from .durations import Duration, parse_duration
from .errors import NotInWorkflowError


async def sleep(duration: Duration | datetime) -> None:
    """Suspend the workflow durably: ``"1 day"``, ``timedelta``, seconds, or an aware datetime.

    Duration strings chain parts (``"1h 30m"``) in ``ms``, ``s``, ``m``, ``h``, ``d``,
    ``w``, ``mo`` (a twelfth of a year) and ``y``, or their words (``"2 weeks"``).

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


def patched(change_id: str) -> bool:
    """Whether to take the new branch of a change made to workflow code under live runs.

    True for runs started after the change (it records a marker in the run's log) and for
    replays of runs that recorded it; False while replaying a run recorded before the
    change, so it keeps taking the old branch. Within a run the answer never changes::

        if patched("send-sms"):
            await send_sms(order_id)      # new code
        else:
            await send_email(order_id)    # what runs started earlier did
    """
    return _executor("patched").patched(_change_id(change_id))


def deprecate_patch(change_id: str) -> None:
    """Mark that no run taking the old branch of ``change_id`` remains: the ``if``/``else``
    around it can go, leaving the new code only. Runs that recorded its marker still
    replay (markers never need matching code), so this records nothing; it documents the
    change in the code and checks it is called in workflow code."""
    _executor("deprecate_patch")
    _change_id(change_id)


def _executor(call: str) -> WorkflowExecutor:
    executor = current_executor()
    if executor is None:
        raise NotInWorkflowError(f"workflowkit.{call}() works only in workflow code")
    return executor


def _change_id(change_id: object) -> str:
    if not isinstance(change_id, str) or not change_id or len(change_id) > 200:
        raise ValueError("a patch's change id must be a non-empty str of at most 200 chars")
    return change_id
