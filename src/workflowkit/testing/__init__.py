"""Testing workflows: wait for a run to reach a hook or a sleep, check recorded runs
against changed code (``replay_runs``), and a pytest plugin.

The plugin (registered automatically when workflowkit is installed) provides the
``workflow_runtime`` fixture: a fresh World and embedded worker per test. Mark a test with
``@pytest.mark.workflowkit(virtual_clock=True)`` to let sleeps skip ahead in time; on that
clock, ``advance_schedules`` moves schedules through days of ticks at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from .._replay import REPLAYED, Replayed, ReplayReport
from .._replay import replay_runs as _replay_runs
from ..api import HookInfo, Run, get_hook_by_token
from ..durations import Duration, parse_duration
from ..runtime.runtime import get_runtime
from ..worlds import open_world
from ..worlds.records import RunStatus

__all__ = [
    "ReplayReport",
    "Replayed",
    "advance_schedules",
    "replay_runs",
    "wait_for_hook",
    "wait_for_sleep",
]


async def replay_runs(
    world: str | None = None,
    *,
    workflow: str | None = None,
    statuses: Sequence[RunStatus] = REPLAYED,
    limit: int = 200,
) -> ReplayReport:
    """Replay recorded runs of the World at ``world`` (a URL; default: the usual one)
    against the workflows this process imported, writing nothing; ``report.ok`` is False
    and ``report.diverged`` names the runs if any no longer replays. A gate for CI::

        report = await replay_runs("postgresql://.../prod_copy", workflow="orders.place")
        assert report.ok, [(r.run_id, str(r.divergence)) for r in report.diverged]
    """
    opened = open_world(world)
    try:
        return await _replay_runs(opened, workflow=workflow, statuses=statuses, limit=limit)
    finally:
        await opened.close()


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


async def advance_schedules(duration: Duration, *, run_timeout: float = 10) -> list[Run[Any]]:
    """On the virtual clock, move schedules' time ``duration`` forward: every tick due on the
    way fires, in order, and each tick's runs end (within ``run_timeout`` seconds, else
    ``TimeoutError``) before the next tick fires, as they would have in real time. The runs
    started, oldest first. Without ``virtual_clock=True`` schedules keep real time, and
    this raises ``RuntimeError``.
    """
    runtime = get_runtime()
    if runtime.worker is None:
        raise RuntimeError("advance_schedules() needs the embedded worker")
    advance = runtime.worker.schedules.advance(parse_duration(duration), run_timeout)
    fired = await runtime.on_loop(advance)
    return [Run(f.run_id) for f in fired]
