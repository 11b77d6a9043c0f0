"""Queues in one process: concurrency, per-key and per-worker limits, rate limits,
priorities, places given back while waiting, and what inspection says."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from workflowkit import ConfigurationError, Queue, create_hook, sleep, step, workflow
from workflowkit.api import resume_hook, start
from workflowkit.inspection import holdups, waiting_for
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import RunStatus


class Overlap:
    """Counts steps running at once, by group."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.order: list[str] = []

    def enter(self, group: str, tag: str) -> None:
        with self.lock:
            self.now[group] = self.now.get(group, 0) + 1
            self.peak[group] = max(self.peak.get(group, 0), self.now[group])
            self.order.append(tag)

    def leave(self, group: str) -> None:
        with self.lock:
            self.now[group] -= 1


OVERLAP = Overlap()


@pytest.fixture(autouse=True)
def fresh_overlap() -> Iterator[None]:
    global OVERLAP
    OVERLAP = Overlap()
    yield


@step
async def busy(group: str, tag: str, seconds: float) -> str:
    OVERLAP.enter(group, tag)
    try:
        await asyncio.sleep(seconds)
    finally:
        OVERLAP.leave(group)
    return tag


three_at_once = Queue("test.three", concurrency=3)
one_per_key = Queue("test.per-key", per_key=1)
two_per_second = Queue("test.rate", rate_limit="2/second")
one_at_a_time = Queue("test.one", concurrency=1)
holds = Queue("test.holds", concurrency=1, hold_while_waiting=True)
releases = Queue("test.releases", concurrency=1)


@workflow(queue=three_at_once)
async def limited(tag: str) -> str:
    return await busy("three", tag, 0.15)


@workflow
async def keyed(key: str, tag: str) -> str:
    return await busy(f"key-{key}", tag, 0.1)


@workflow
async def quick(tag: str) -> str:
    return tag


@workflow
async def waits_then_works(token: str) -> str:
    await create_hook(token=token)
    return await busy("waiters", token, 0.01)


@workflow
async def naps_in_queue(tag: str) -> str:
    await sleep(0.5)
    return tag


async def test_concurrency_holds_and_every_run_completes(runtime: Runtime) -> None:
    runs = [await start(limited, f"r{n}") for n in range(12)]
    results = [await run.return_value(timeout=30) for run in runs]
    assert results == [f"r{n}" for n in range(12)]
    assert OVERLAP.peak["three"] == 3


async def test_one_run_per_key_at_a_time(runtime: Runtime) -> None:
    runs = [
        await start(keyed.options(queue="test.per-key", key=f"k{n % 3}"), f"k{n % 3}", f"r{n}")
        for n in range(9)
    ]
    for run in runs:
        await run.return_value(timeout=30)
    assert {OVERLAP.peak[f"key-k{n}"] for n in range(3)} == {1}


async def test_rate_limit_spaces_first_starts(runtime: Runtime) -> None:
    began = time.monotonic()
    runs = [await start(quick.options(queue="test.rate"), f"r{n}") for n in range(6)]
    for run in runs:
        await run.return_value(timeout=30)
    starts = sorted([(await run.started_at()) for run in runs])  # type: ignore[type-var]
    # 2 per second, sliding: the 3rd start comes a second after the 1st, the 5th after the 3rd.
    # (The limit spaces the claims; a start is stamped a moment after its claim, a moment
    # that varies with the machine's load.)
    assert all(
        (starts[n + 2] - starts[n]).total_seconds() >= 0.9  # type: ignore[operator]
        for n in range(4)
    )
    assert time.monotonic() - began >= 1.9


async def test_higher_priority_first_then_start_order(runtime: Runtime) -> None:
    # The first run takes the only place; the others queue behind it and start by priority.
    blocker = await start(waits_then_works.options(queue="test.one"), f"block-{id(runtime)}")
    await wait_status(runtime, blocker.run_id, RunStatus.RUNNING)
    low = [
        await start(keyed.options(queue="test.one", priority=0), "o", f"low{n}") for n in range(2)
    ]
    high = await start(keyed.options(queue="test.one", priority=5), "o", "high")
    await resume_hook(f"block-{id(runtime)}", "go")
    for run in [blocker, *low, high]:
        await run.return_value(timeout=30)
    assert [t for t in OVERLAP.order if t != f"block-{id(runtime)}"] == ["high", "low0", "low1"]


@pytest.mark.worker_options(evict_after=0)
async def test_a_run_waiting_on_a_hook_gives_its_place_back(runtime: Runtime) -> None:
    waiter = await start(waits_then_works.options(queue="test.releases"), f"w-{id(runtime)}")
    await wait_status(runtime, waiter.run_id, RunStatus.RUNNING)
    other = await start(quick.options(queue="test.releases"), "other")
    assert await other.return_value(timeout=30) == "other"
    await resume_hook(f"w-{id(runtime)}", "go")
    assert await waiter.return_value(timeout=30) == f"w-{id(runtime)}"


@pytest.mark.worker_options(evict_after=0)
async def test_hold_while_waiting_keeps_the_place(runtime: Runtime) -> None:
    token = f"h-{id(runtime)}"
    waiter = await start(waits_then_works.options(queue="test.holds"), token)
    await wait_status(runtime, waiter.run_id, RunStatus.RUNNING)
    other = await start(quick.options(queue="test.holds"), "other")
    await asyncio.sleep(1.0)
    assert await other.status() == "pending"
    record = await runtime.world.get_run(other.run_id)
    assert record is not None
    now = datetime.fromtimestamp(runtime.world.now(), UTC)
    reason = waiting_for(record, await holdups(runtime.world, [record]), now)
    assert reason is not None and "queue `test.holds` is at its limit of 1" in reason
    await resume_hook(token, "go")
    assert await waiter.return_value(timeout=30) == token
    assert await other.return_value(timeout=30) == "other"


async def test_list_queues_shows_limits_and_usage(runtime: Runtime) -> None:
    run = await start(naps_in_queue.options(queue="test.one"), "nap")
    await run.return_value(timeout=30)
    queues = {q.limits.name: q for q in await runtime.world.list_queues()}
    assert queues["test.three"].limits.concurrency == 3
    assert queues["test.rate"].limits.rate_count == 2
    assert queues["test.rate"].limits.rate_period == 1.0
    assert queues["test.one"].running == 0


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"per_key": -1},
        {"rate_limit": "fast"},
        {"rate_limit": "10/fortnightly"},
        {"rate_limit": "100/ms"},
        {"rate_limit": (0, "1s")},
        {"concurrency": True},
    ],
)
def test_bad_limits_are_refused_at_definition(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Queue("test.bad", **options)  # type: ignore[arg-type]


def test_rate_limit_forms() -> None:
    assert Queue("test.r1", rate_limit="100/minute").limits.rate_period == 60.0
    assert Queue("test.r2", rate_limit=(5, "10s")).limits.rate_count == 5
    assert Queue("test.r3", rate_limit="5 / second").limits.rate_period == 1.0


def test_a_queue_defined_twice_must_agree() -> None:
    Queue("test.twice", concurrency=2)
    Queue("test.twice", concurrency=2)
    with pytest.raises(ConfigurationError, match="defined twice"):
        Queue("test.twice", concurrency=3)


async def wait_status(runtime: Runtime, run_id: str, status: RunStatus) -> None:
    for _ in range(1000):
        record = await runtime.world.get_run(run_id)
        if record is not None and record.status is status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{run_id} never became {status}")
