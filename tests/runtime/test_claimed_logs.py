"""Runs a worker claims together are read together: one read of their logs, not one per run
(the PostgreSQL World's throughput case spent about a tenth of a worker's time on them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflowkit import step, workflow
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime


@step(name="claimed_logs.add_one")
async def add_one(x: int) -> int:
    return x + 1


@workflow(name="claimed_logs.flow")
async def flow(x: int) -> int:
    return await add_one(x)


async def test_runs_claimed_together_have_their_logs_read_together(
    cached_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = cached_runtime.world
    whole_logs: list[str] = []  # runs whose whole log was read on its own
    batches: list[set[str]] = []
    get_events, get_logs = world.get_events, world.get_logs

    async def events(run_id: str, after_seq: int = 0) -> Any:
        if after_seq == 0:
            whole_logs.append(run_id)
        return await get_events(run_id, after_seq)

    async def logs(run_ids: list[str]) -> Any:
        batches.append(set(run_ids))
        return await get_logs(run_ids)

    monkeypatch.setattr(world, "get_events", events)
    monkeypatch.setattr(world, "get_logs", logs)
    # Due later, so not handed to the worker at their start: a claim takes them, together
    # (all are started well before they are due, even on a busy machine).
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    runs = [await start(flow.options(start_at=due), x) for x in range(10)]
    assert [await run.return_value(timeout=10) for run in runs] == list(range(1, 11))
    ids = {run.run_id for run in runs}
    assert ids.isdisjoint(whole_logs)
    claimed = [batch & ids for batch in batches if batch & ids]
    assert set().union(*claimed) == ids and len(claimed) < len(ids)
