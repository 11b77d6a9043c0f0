"""Forgetting ended runs, on every World: whole, never a run still going, in batches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workflowkit import _retention
from workflowkit.worlds.base import World
from workflowkit.worlds.records import EventType, NewChunk, NewEvent, RunStatus

ENDED = list(_retention.ENDED)


def later(world: World, seconds: float = 60.0) -> datetime:
    return datetime.fromtimestamp(world.now() + seconds, UTC)


async def finished(world: World, run_id: str, end: EventType = EventType.RUN_COMPLETED) -> None:
    await world.create_run(run_id, "flow", b"in", {})
    events = [
        NewEvent(EventType.RUN_STARTED),
        NewEvent(EventType.STEP_CREATED, "s1", b"x", {"name": "st"}),
        NewEvent(EventType.STEP_STARTED, "s1", None, {"attempt": 1}),
        NewEvent(EventType.STEP_COMPLETED, "s1", b"y"),
        NewEvent(EventType.WAIT_CREATED, "w1", None, {"resume_at": 1.0}),
        NewEvent(EventType.HOOK_CREATED, "h1", None, {"token": f"tok-{run_id}"}),
    ]
    await world.append(run_id, events)
    await world.write_stream(run_id, "", [NewChunk("value", b"chunk")])
    await world.append(run_id, [NewEvent(end, payload=b"out")])


async def test_deleting_a_run_deletes_everything_recorded_for_it(world: World) -> None:
    await finished(world, "old-1")
    await world.create_run("going-1", "flow", b"", {})
    found = await world.expired_runs(later(world), ENDED, 10)
    assert found == ["old-1"]
    assert await world.delete_runs(["old-1", "going-1", "nobody"]) == ["old-1"]
    assert await world.get_run("old-1") is None
    assert await world.get_events("old-1") == []
    assert await world.list_steps("old-1") == [] and await world.list_waits("old-1") == []
    assert await world.list_streams("old-1") == []
    assert await world.get_hook_by_token("tok-old-1") is None
    assert await world.get_run("going-1") is not None


async def test_expired_runs_by_status_age_and_limit(world: World) -> None:
    for n in range(3):
        await finished(world, f"done-{n}")
    await finished(world, "failed-1", EventType.RUN_FAILED)
    assert await world.expired_runs(datetime.fromtimestamp(0, UTC), ENDED, 10) == []
    done = await world.expired_runs(later(world), [RunStatus.COMPLETED], 10)
    assert sorted(done) == ["done-0", "done-1", "done-2"]
    assert len(await world.expired_runs(later(world), ENDED, 2)) == 2


async def test_collect_in_batches(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        await finished(world, f"r{n}")
    await world.create_run("still-pending", "flow", b"", {})
    dry = await _retention.collect(world, -60, dry_run=True)
    assert dry.runs == 5
    # Each delete is one bounded transaction: the World's own method, its calls noted.
    batches: list[int] = []
    delete_runs = world.delete_runs

    async def noted(run_ids: list[str]) -> list[str]:
        batches.append(len(run_ids))
        return await delete_runs(run_ids)

    monkeypatch.setattr(world, "delete_runs", noted)
    done = await _retention.collect(world, -60, batch=2)
    assert done.runs == 5 and batches == [2, 2, 1]
    assert [r.run_id for r in await world.list_runs()] == ["still-pending"]


async def test_collect_refuses_a_pace_outside_0_to_1(world: World) -> None:
    for share in (0.0, 1.5):
        with pytest.raises(ValueError, match="share must be above 0 and at most 1"):
            await _retention.collect(world, 60, share=share)
