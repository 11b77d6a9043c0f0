"""Queue limits in the World's claim, on every World: what a claim takes, in which order."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from workflowkit.worlds.base import World
from workflowkit.worlds.records import QueueLimits, RunOptions, RunStatus, WorkerInfo

ME = WorkerInfo("wrkr_me", "host", 1, ("flow",))
OTHER = WorkerInfo("wrkr_other", "host", 2, ("flow",))


def at(world: World, seconds_ago: float) -> datetime:
    return datetime.fromtimestamp(world.now() - seconds_ago, UTC)


async def add(world: World, run_id: str, options: RunOptions, due_ago: float = 0.0) -> None:
    await world.create_run(run_id, "flow", b"", {}, options, start_at=at(world, due_ago))


async def claim(world: World, worker: WorkerInfo = ME, limit: int = 10) -> list[str]:
    records = await world.claim_runs(worker, ["flow"], limit=limit, lease_seconds=30)
    return [r.run_id for r in records]


async def test_concurrency_counts_runs_held_by_any_worker(world: World) -> None:
    await world.register_queues([QueueLimits("q", concurrency=2)])
    for n in range(5):
        await add(world, f"r{n}", RunOptions(queue="q"), due_ago=10 - n)
    assert await claim(world, ME, limit=1) == ["r0"]
    assert await claim(world, OTHER) == ["r1"]
    assert await claim(world, ME) == []
    await world.release_run("r0", ME.worker_id, None)  # gives its place back
    assert await claim(world, OTHER) == ["r2"]


async def test_per_key_and_per_worker(world: World) -> None:
    await world.register_queues([QueueLimits("k", per_key=1, per_worker=2)])
    for n, key in enumerate(["a", "a", "b", "c"]):
        await add(world, f"r{n}", RunOptions(queue="k", key=key), due_ago=10 - n)
    assert await claim(world, ME) == ["r0", "r2"]  # one per key, two per worker
    assert await claim(world, OTHER) == ["r3"]


async def test_priority_first_and_age_lifts_a_waiting_run(world: World) -> None:
    await world.register_queues([QueueLimits("p", concurrency=1)])
    await add(world, "low-new", RunOptions(queue="p"), due_ago=1)
    await add(world, "high", RunOptions(queue="p", priority=5), due_ago=0)
    await add(world, "low-old", RunOptions(queue="p"), due_ago=600)  # aged 10 levels
    assert await claim(world) == ["low-old"]
    await world.release_run("low-old", ME.worker_id, None)
    assert await claim(world) == ["high"]


async def test_rate_limit_counts_first_starts_in_its_window(world: World) -> None:
    await world.register_queues([QueueLimits("r", rate_count=2, rate_period=3600)])
    for n in range(4):
        await add(world, f"r{n}", RunOptions(queue="r"), due_ago=10 - n)
    assert await claim(world) == ["r0", "r1"]
    assert await claim(world) == []
    await world.release_run("r0", ME.worker_id, at(world, 1))  # resumed later: not a new start
    assert await claim(world) == ["r0"]
    usage = await world.queue_usage("r")
    assert usage is not None and len(usage.recent_starts) == 2


async def test_hold_while_waiting_keeps_a_started_run_s_place(world: World) -> None:
    await world.register_queues([QueueLimits("h", concurrency=1, hold_while_waiting=True)])
    await add(world, "first", RunOptions(queue="h"), due_ago=2)
    await add(world, "second", RunOptions(queue="h"), due_ago=1)
    assert await claim(world) == ["first"]
    from workflowkit.worlds.records import EventType, NewEvent

    await world.append("first", [NewEvent(EventType.RUN_STARTED)], owner=ME.worker_id)
    await world.release_run("first", ME.worker_id, None)  # waits on a hook, unowned
    assert await claim(world) == []
    infos = {q.limits.name: q for q in await world.list_queues()}
    assert infos["h"].running == 1 and infos["h"].waiting == 1


async def test_runs_past_their_deadline_ignore_queue_limits(world: World) -> None:
    await world.register_queues([QueueLimits("d", concurrency=1)])
    await add(world, "holder", RunOptions(queue="d"), due_ago=5)
    assert await claim(world) == ["holder"]
    late = RunOptions(queue="d", deadline=at(world, 1))
    await add(world, "late", late, due_ago=3)
    assert await claim(world, OTHER) == ["late"]
    record = await world.get_run("late")
    assert record is not None and record.status is RunStatus.PENDING


async def test_a_queued_run_taken_over_is_logged_with_its_ids(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker that takes a queued run whose lease ran out says so, with the ids every
    record about a run carries (``workflowkit.worker``, INFO)."""
    await world.register_queues([QueueLimits("t", concurrency=1)])
    await add(world, "taken-1", RunOptions(queue="t"), due_ago=1)
    held = await world.claim_runs(ME, ["flow"], limit=1, lease_seconds=0.05)
    assert [r.run_id for r in held] == ["taken-1"]
    await asyncio.sleep(0.1)
    with caplog.at_level(logging.INFO, logger="workflowkit.worker"):
        assert await claim(world, OTHER) == ["taken-1"]
    [record] = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert record.levelno == logging.INFO and ME.worker_id in record.getMessage()
    extra = record.__dict__
    assert (extra["run_id"], extra["step_id"], extra["workflow"]) == ("taken-1", None, "flow")
    assert extra["previous_worker"] == ME.worker_id


async def test_a_waiting_run_says_which_limit_holds_it(world: World) -> None:
    """What ``inspect run``, ``inspect runs`` and the dashboard show for a run held back:
    the queue's limit, its key's, or the rate limit and when the next start is allowed."""
    from workflowkit.inspection import holdups, waiting_for

    await world.register_worker(ME)  # a live worker has the workflow: only queues hold runs
    await world.register_queues(
        [
            QueueLimits("full", concurrency=1),
            QueueLimits("keyed", per_key=1),
            QueueLimits("rated", rate_count=1, rate_period=3600),
        ]
    )
    await add(world, "full-1", RunOptions(queue="full"), due_ago=3)
    await add(world, "full-2", RunOptions(queue="full"), due_ago=2)
    await add(world, "keyed-1", RunOptions(queue="keyed", key="cust-7"), due_ago=3)
    await add(world, "keyed-2", RunOptions(queue="keyed", key="cust-7"), due_ago=2)
    await add(world, "rated-1", RunOptions(queue="rated"), due_ago=3)
    await add(world, "rated-2", RunOptions(queue="rated"), due_ago=2)
    assert sorted(await claim(world)) == ["full-1", "keyed-1", "rated-1"]

    async def reason(run_id: str) -> str | None:
        record = await world.get_run(run_id)
        assert record is not None and record.status is RunStatus.PENDING
        now = datetime.fromtimestamp(world.now(), UTC)
        return waiting_for(record, await holdups(world, [record]), now)

    assert await reason("full-2") == "queue `full` is at its limit of 1 running"
    assert await reason("keyed-2") == "key `cust-7` of queue `keyed` has 1 running (limit 1)"
    rated = await reason("rated-2")
    assert rated is not None and rated.startswith("rate limit of queue `rated`: next start in ")
    assert 3590 <= float(rated.rsplit(" ", 2)[-2]) <= 3600
    assert await reason("full-1") is None  # held by a worker: not waiting for a place


async def test_runs_of_a_queue_no_worker_registered_start_as_if_in_none(world: World) -> None:
    """A claim takes due runs in no queue and runs of unregistered queues together, earliest
    due first, up to its limit, whatever waits in a registered queue at its limit."""
    await world.register_queues([QueueLimits("full", concurrency=1)])
    await add(world, "full-held", RunOptions(queue="full"), due_ago=20)
    assert await claim(world, OTHER, limit=1) == ["full-held"]
    for n in range(3):
        await add(world, f"full-{n}", RunOptions(queue="full"), due_ago=30 + n)
    await add(world, "free-old", RunOptions(), due_ago=9)
    await add(world, "adhoc-old", RunOptions(queue="adhoc"), due_ago=8)
    await add(world, "free-new", RunOptions(), due_ago=7)
    await add(world, "other-adhoc", RunOptions(queue="other-adhoc", key="k"), due_ago=6)
    await add(world, "adhoc-new", RunOptions(queue="adhoc"), due_ago=5)
    await add(world, "later", RunOptions(queue="adhoc"), due_ago=-3600)  # not due yet
    assert await claim(world, ME, limit=4) == ["free-old", "adhoc-old", "free-new", "other-adhoc"]
    assert await claim(world, ME) == ["adhoc-new"]
