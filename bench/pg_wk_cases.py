"""The workflowkit side of the PostgreSQL benchmark.

The workflows and steps below are what ``workflowkit worker pg_wk_cases`` executes (the
worker processes import this module by name); ``python pg_wk_cases.py CASE --url URL`` is
the client that starts runs and measures (``throughput``, ``hook``, ``sleep``, and
``queue-none`` / ``queue-limit`` / ``queue-open``: the throughput runs started into no queue,
a queue of ``QUEUE_LIMIT`` at once, or a queue with no limit, from ``pg_wk_queues``). The DBOS
side (``pg_dbos_cases.py``) mirrors every workflow one for one.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from core_common import emit, median, percentile, step_body
from pg_common import (
    QUEUE_VARIANTS,
    add_size_args,
    begin,
    note,
    read_latencies,
    sizes_from,
    wait_for_files,
    wait_until,
)

from workflowkit import create_hook, sleep, step, workflow


@step(name="pgbench.add_one")
async def add_one(x: int) -> int:
    return step_body(x)


@workflow(name="pgbench.chain")
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await add_one(value)
    return value


@step(name="pgbench.noted")
async def noted(path: str, since: float) -> float:
    return note(path, since)


@workflow(name="pgbench.listener")
async def listener(token: str, n: int, directory: str) -> int:
    hook = create_hook(token=token)
    for i in range(n):
        sent = await hook
        await noted(f"{directory}/hook-{i}", sent)
    return n


@workflow(name="pgbench.sleeper")
async def sleeper(seconds: float, path: str) -> float:
    due = time.time() + seconds  # the run's clock: exactly when the sleep below is due
    await sleep(seconds)
    return await noted(path, due)


# -- the client ------------------------------------------------------------------------------


async def throughput(url: str, runs: int, steps: int, queue: str | None = None) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    from workflowkit.api import start

    workflow = chain if queue is None else chain.options(queue=queue)

    schema = url.rsplit("schema=", 1)[1]
    query = sql.SQL("SELECT count(*) FROM {}.runs WHERE status = 'completed'").format(
        sql.Identifier(schema)
    )
    async with await psycopg.AsyncConnection.connect(url.split("?")[0], autocommit=True) as conn:

        async def completed() -> int:
            cur = await conn.execute(query)
            row = await cur.fetchone()
            return int(row[0]) if row else 0

        begin()
        began = time.perf_counter()
        await asyncio.gather(*(start(workflow, steps) for _ in range(runs)))
        started = time.perf_counter() - began
        await wait_until(completed, runs)
        wall = time.perf_counter() - began
    return {
        "runs_per_s": runs / wall,
        "steps_per_s": runs * steps / wall,
        "wall_s": wall,
        "start_all_s": started,
        "queue": queue,
    }


async def hook_latency(directory: Path, samples: int, warmup: int) -> dict[str, Any]:
    from workflowkit.api import get_hook_by_token, resume_hook, start
    from workflowkit.errors import HookNotFoundError

    token = f"pgbench:{time.time_ns()}"
    total = samples + warmup
    await start(listener, token, total, str(directory))
    while True:  # until the run waits on its hook
        try:
            await get_hook_by_token(token)
            break
        except HookNotFoundError:
            await asyncio.sleep(0.01)
    begin()
    for i in range(total):
        await asyncio.sleep(0.05)  # idle between payloads: each wake-up is measured alone
        await resume_hook(token, time.time())
        await wait_for_files([directory / f"hook-{i}"])
    latencies = read_latencies([directory / f"hook-{i}" for i in range(warmup, total)])
    return _summary(latencies)


async def sleep_latency(directory: Path, runs: int, seconds: float) -> dict[str, Any]:
    from workflowkit.api import start

    paths = [directory / f"sleep-{i}" for i in range(runs)]
    begin()
    await asyncio.gather(*(start(sleeper, seconds, str(p)) for p in paths))
    await wait_for_files(paths, every=0.01)
    return _summary(read_latencies(paths))


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": median(latencies) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "samples": len(latencies),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    queue_cases = [f"queue-{variant}" for variant in QUEUE_VARIANTS]
    parser.add_argument("case", choices=["throughput", "hook", "sleep", *queue_cases])
    parser.add_argument("--url", required=True, help="the World URL, with ?schema=")
    parser.add_argument("--workdir", type=Path, required=True)
    add_size_args(parser)
    args = parser.parse_args()
    sizes = sizes_from(args)
    args.workdir.mkdir(parents=True, exist_ok=True)

    import workflowkit

    workflowkit.configure(args.url, embedded_worker=False)
    try:
        if args.case == "throughput":
            result = await throughput(args.url, sizes.runs, sizes.steps)
        elif args.case.startswith("queue-"):
            from pg_wk_queues import QUEUE_NAMES

            queue = QUEUE_NAMES[args.case.removeprefix("queue-")]
            result = await throughput(args.url, sizes.runs, sizes.steps, queue)
        elif args.case == "hook":
            result = await hook_latency(args.workdir, sizes.hook_samples, sizes.hook_warmup)
        else:
            result = await sleep_latency(args.workdir, sizes.sleepers, sizes.sleep_seconds)
    finally:
        workflowkit.shutdown()
    result["engine"] = f"workflowkit {workflowkit.__version__}"
    emit(result)


if __name__ == "__main__":
    asyncio.run(main())
