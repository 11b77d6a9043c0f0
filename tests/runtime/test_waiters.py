"""``return_value()``'s wait: woken from the World's threads, never missing a wake-up."""

from __future__ import annotations

import asyncio
import threading
import time

from workflowkit.runtime.waiters import Nudge


async def test_a_nudge_from_another_thread_ends_the_wait() -> None:
    nudge = Nudge(asyncio.get_running_loop())
    threading.Timer(0.05, nudge.nudge).start()
    began = time.monotonic()
    await nudge.wait(10)
    assert time.monotonic() - began < 5


async def test_a_nudge_while_nobody_waits_ends_the_next_wait_at_once() -> None:
    # The run may end between the waiter's read and its wait: that wake-up must not be lost.
    nudge = Nudge(asyncio.get_running_loop())
    nudge.nudge()
    await asyncio.sleep(0.01)  # delivered to the loop, nobody waiting yet
    began = time.monotonic()
    await nudge.wait(10)
    assert time.monotonic() - began < 1
    began = time.monotonic()
    await nudge.wait(0.05)  # consumed: this one waits out its timeout
    assert time.monotonic() - began >= 0.04


async def test_a_cancelled_wait_leaves_the_nudge_usable() -> None:
    nudge = Nudge(asyncio.get_running_loop())
    waiting = asyncio.ensure_future(nudge.wait(10))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    nudge.nudge()
    await asyncio.wait_for(nudge.wait(10), 5)
