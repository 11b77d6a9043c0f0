"""The DBOS side of the PostgreSQL benchmark, mirroring ``pg_wk_cases.py`` one for one.

Run with the interpreter of the benchmark-only DBOS venv:

    python pg_dbos_cases.py worker --url URL --executor ID     # a worker process
    python pg_dbos_cases.py worker ... --queues                # ... that also runs QUEUE_LIMITED
    python pg_dbos_cases.py CASE --url URL --workdir DIR       # the client: throughput|hook|sleep
                                                               # |queue-none|queue-limit

Worker processes launch DBOS on the shared system database and execute workflows from the
queue ``bench``; the client enqueues them with ``DBOSClient`` (DBOS's way of handing work to
other processes) and sends messages with ``DBOSClient.send`` (its counterpart of a hook).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from core_common import emit, median, percentile, step_body
from dbos import DBOS, DBOSClient, DBOSConfig
from pg_common import (
    QUEUE_LIMIT,
    WORKER_READY,
    add_size_args,
    begin,
    note,
    read_latencies,
    sizes_from,
    wait_for_files,
    wait_until,
)

APP = "wkbench"
QUEUE = "bench"
# DBOS's default queue poll is 1 s; 0.1 s keeps its start latency from dominating the
# throughput numbers (a setting in DBOS's favour, said so in bench/README.md).
QUEUE_POLL_SECONDS = 0.1
# Without a per-process cap the first process to poll takes the whole queue.
WORKER_CONCURRENCY = 100
# The queue case: a queue of QUEUE_LIMIT running at once across all workers (DBOS's global
# concurrency), polled as often as QUEUE. "queue-none" enqueues into QUEUE as the throughput
# case does (every DBOS run goes through a queue: that is how DBOS hands work to workers).
QUEUE_LIMITED = "bench-limited"


@DBOS.step()
async def add_one(x: int) -> int:
    return step_body(x)


@DBOS.workflow()
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await add_one(value)
    return value


@DBOS.step()
async def noted(path: str, since: float) -> float:
    return note(path, since)


@DBOS.workflow()
async def listener(n: int, directory: str) -> int:
    for i in range(n):
        sent = await DBOS.recv_async("bench", timeout_seconds=600)
        await noted(f"{directory}/hook-{i}", sent)
    return n


@DBOS.workflow()
async def sleeper(seconds: float, path: str) -> float:
    due = time.time() + seconds
    await DBOS.sleep_async(seconds)
    return await noted(path, due)


def worker(url: str, executor: str, queues: bool = False) -> None:
    config: DBOSConfig = {
        "name": APP,
        "system_database_url": url,
        "log_level": "WARNING",
        "executor_id": executor,
    }
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(
        QUEUE, worker_concurrency=WORKER_CONCURRENCY, polling_interval_sec=QUEUE_POLL_SECONDS
    )
    if queues:
        DBOS.register_queue(
            QUEUE_LIMITED, global_concurrency=QUEUE_LIMIT, polling_interval_sec=QUEUE_POLL_SECONDS
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(WORKER_READY, file=sys.stderr, flush=True)
    stop.wait()
    DBOS.destroy()


# -- the client ------------------------------------------------------------------------------


def _enqueue(client: DBOSClient, name: str, *args: Any, queue: str = QUEUE) -> str:
    handle = client.enqueue({"queue_name": queue, "workflow_name": name}, *args)
    return handle.get_workflow_id()


async def throughput(
    url: str, client: DBOSClient, runs: int, steps: int, queue: str = QUEUE
) -> dict[str, Any]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:

        async def completed() -> int:
            cur = await conn.execute(
                "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

        begin()
        began = time.perf_counter()
        await asyncio.gather(
            *(asyncio.to_thread(_enqueue, client, "chain", steps, queue=queue) for _ in range(runs))
        )
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


async def hook_latency(
    client: DBOSClient, directory: Path, samples: int, warmup: int
) -> dict[str, Any]:
    total = samples + warmup
    workflow_id = await asyncio.to_thread(_enqueue, client, "listener", total, str(directory))
    while True:  # until it runs and waits in recv (messages sent before would queue anyway)
        status = await asyncio.to_thread(client.retrieve_workflow(workflow_id).get_status)
        if status.status == "PENDING":
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    begin()
    for i in range(total):
        await asyncio.sleep(0.05)
        await asyncio.to_thread(client.send, workflow_id, time.time(), "bench")
        await wait_for_files([directory / f"hook-{i}"])
    latencies = read_latencies([directory / f"hook-{i}" for i in range(warmup, total)])
    return _summary(latencies)


async def sleep_latency(
    client: DBOSClient, directory: Path, runs: int, seconds: float
) -> dict[str, Any]:
    paths = [directory / f"sleep-{i}" for i in range(runs)]
    begin()
    await asyncio.gather(
        *(asyncio.to_thread(_enqueue, client, "sleeper", seconds, str(p)) for p in paths)
    )
    await wait_for_files(paths, every=0.01)
    return _summary(read_latencies(paths))


def _summary(latencies: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": median(latencies) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "samples": len(latencies),
    }


async def client_case(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sizes_from(args)
    client = DBOSClient(system_database_url=args.url, application_name=APP)
    try:
        if args.case in ("throughput", "queue-none"):
            return await throughput(args.url, client, sizes.runs, sizes.steps)
        if args.case == "queue-limit":
            return await throughput(args.url, client, sizes.runs, sizes.steps, QUEUE_LIMITED)
        if args.case == "hook":
            return await hook_latency(client, args.workdir, sizes.hook_samples, sizes.hook_warmup)
        return await sleep_latency(client, args.workdir, sizes.sleepers, sizes.sleep_seconds)
    finally:
        client.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "case", choices=["worker", "throughput", "hook", "sleep", "queue-none", "queue-limit"]
    )
    parser.add_argument("--url", required=True, help="the DBOS system database URL")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--executor", default="bench-0")
    parser.add_argument("--queues", action="store_true", help="worker: also run QUEUE_LIMITED")
    add_size_args(parser)
    args = parser.parse_args()
    if args.case == "worker":
        worker(args.url, args.executor, args.queues)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(client_case(args))
    result["engine"] = f"DBOS {version('dbos')} (async, PostgreSQL system database)"
    emit(result)


if __name__ == "__main__":
    main()
