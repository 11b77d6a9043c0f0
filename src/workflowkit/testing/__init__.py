"""Testing workflows: wait for a run to reach a hook or a sleep, and a pytest plugin.

The plugin (registered automatically when workflowkit is installed) provides the
``workflow_runtime`` fixture: a fresh World and embedded worker per test. Mark a test with
``@pytest.mark.workflowkit(virtual_clock=True)`` to let sleeps skip ahead in time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..api import HookInfo, Run, get_hook_by_token
from ..runtime.runtime import get_runtime

__all__ = ["wait_for_hook", "wait_for_sleep"]


async def wait_for_hook(run: Run[Any], token: str | None = None, timeout: float = 10) -> HookInfo:
    """The hook ``run`` is waiting on (the one with ``token``, if given), once it exists."""
    world = get_runtime().world
    deadline = time.monotonic() + timeout
    while True:
        for hook in await world.list_hooks(run.run_id):
            if token is None or hook.token == token:
                return await get_hook_by_token(hook.token)
        if time.monotonic() > deadline:
            which = f"with token {token!r}" if token else "at all"
            raise TimeoutError(f"run {run.run_id} created no hook {which} within {timeout} s")
        await asyncio.sleep(0.005)


async def wait_for_sleep(run: Run[Any], timeout: float = 10) -> str:
    """The correlation id of a sleep ``run`` is waiting in, for ``run.wake_up([...])``."""
    world = get_runtime().world
    deadline = time.monotonic() + timeout
    while True:
        pending = [w for w in await world.list_waits(run.run_id) if w.completed_at is None]
        if pending:
            return min(pending, key=lambda w: w.resume_at).wait_id
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run.run_id} did not start a sleep within {timeout} s")
        await asyncio.sleep(0.005)
