"""``list_runs``: the runs of a World, newest first, filtered and paged (DBOS's and
Temporal's ``list_workflows``)."""

from __future__ import annotations

import pytest

from workflowkit import Queue, step, sync, workflow
from workflowkit.api import list_runs, start
from workflowkit.runtime.runtime import Runtime


@step
def double(x: int) -> int:
    return 2 * x


@workflow(name="listing.doubler")
async def doubler(x: int) -> int:
    return await double(x)


@workflow(name="listing.parent")
async def parent(x: int) -> int:
    child = await start(doubler, x)
    return int(await child.return_value())


async def test_filters_paging_and_what_a_waiting_run_waits_for(cached_runtime: Runtime) -> None:
    done = [await start(doubler.options(run_id=f"listing-{i}"), i) for i in range(3)]
    for run in done:
        await run.return_value(timeout=10)
    family = await start(parent.options(run_id="listing-family"), 5)
    assert await family.return_value(timeout=10) == 10
    later = await start(doubler.options(run_id="listing-later", delay="1h"), 9)

    mine = await list_runs(id_prefix="listing-")
    assert [r.run_id for r in mine] == [
        later.run_id, "listing-family.1", "listing-family", "listing-2", "listing-1", "listing-0"
    ]  # fmt: skip
    assert [r.run_id for r in await list_runs(workflow=parent)] == ["listing-family"]
    doublers = await list_runs(workflow="listing.doubler", status="completed", id_prefix="listing")
    assert [r.run_id for r in doublers] == [
        "listing-family.1",
        "listing-2",
        "listing-1",
        "listing-0",
    ]
    children = await list_runs(parent_run_id="listing-family")
    assert [(r.run_id, str(r.status)) for r in children] == [("listing-family.1", "completed")]
    pending = await list_runs(status="pending", id_prefix="listing-")
    assert [r.run_id for r in pending] == [later.run_id]
    assert pending[0].waiting_for in ("its start, in 1h", "its start, in 59m")
    assert all(r.waiting_for is None for r in doublers)

    first = await list_runs(id_prefix="listing-", limit=4)
    rest = await list_runs(id_prefix="listing-", limit=4, before=first[-1].run_id)
    assert [r.run_id for r in first + rest] == [r.run_id for r in mine]
    assert [r.run_id for r in sync.list_runs(id_prefix="listing-", limit=2)] == [
        r.run_id for r in mine[:2]
    ]


@workflow(name="listing.queued")
async def queued(x: int) -> int:
    return x


async def test_a_queue_by_its_object_or_its_name(cached_runtime: Runtime) -> None:
    line = Queue("listing-line", concurrency=1)
    run = await start(queued.options(queue=line, key="k1"), 1)
    await run.return_value(timeout=10)
    by_object = await list_runs(queue=line)
    assert [r.run_id for r in by_object] == [run.run_id]
    assert [r.run_id for r in await list_runs(queue="listing-line", key="k1")] == [run.run_id]
    assert await list_runs(queue="listing-line", key="k2") == []


async def test_bad_filters_say_what_to_fix(cached_runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="status must be one of pending, running, completed"):
        await list_runs(status="done")
    with pytest.raises(ValueError, match="limit must be 1 to 1000"):
        await list_runs(limit=0)
