"""Streams benchmark: write throughput and write → read latency.

    python bench/streams_bench.py                       # SQLite, about 30 s on 2 cores
    python bench/streams_bench.py --world postgresql://postgres@127.0.0.1/test?schema=wk_bench
    python bench/streams_bench.py --quick

Throughput: one step writes N chunks of 100 bytes as fast as it can (``await w.write``) and
then ``await w.flush()``; chunks/s is N over that time. The same with 4 runs writing at once
(total chunks over wall time). Latency: a step writes a chunk every 5 ms carrying
``time.time()``; a reader in the same process (``run.get_readable()``), and one in another
process (its own World on the same database) record when each chunk arrives. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import workflowkit
from workflowkit import get_writable, step, workflow
from workflowkit.api import start
from workflowkit.streams import Readable
from workflowkit.worlds import open_world

CHUNK = b"x" * 100


@step
async def write_burst(count: int) -> float:
    out = get_writable()
    began = time.perf_counter()
    for _ in range(count):
        await out.write(CHUNK)
    await out.flush()
    return time.perf_counter() - began


@workflow
async def burst(count: int) -> float:
    return await write_burst(count)


@step
async def write_clock(count: int, gap: float) -> None:
    out = get_writable()
    for _ in range(count):
        await out.write(repr(time.time()))
        await asyncio.sleep(gap)


@workflow
async def ticking(count: int, gap: float) -> None:
    await write_clock(count, gap)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def throughput(count: int, runs: int) -> float:
    began = time.perf_counter()
    started = [await start(burst, count) for _ in range(runs)]
    for run in started:
        await run.return_value(timeout=300)
    return runs * count / (time.perf_counter() - began)


def _remote_reader(url: str, run_id: str, out: Any) -> None:
    async def read() -> list[float]:
        world = open_world(url)
        delays = []
        try:
            ready = time.time()
            async for text in Readable(world, run_id, None, 0):
                sent = float(text)
                if sent > ready:  # chunks written before this reader existed are backlog
                    delays.append(time.time() - sent)
        finally:
            await world.close()
        return delays

    out.put(asyncio.run(read()))


async def latency(url: str, count: int, gap: float) -> tuple[list[float], list[float]]:
    run = await start(ticking, count, gap)
    queue: Any = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=_remote_reader, args=(url, run.run_id, queue)
    )
    child.start()
    local = []
    async for text in run.get_readable():
        local.append(time.time() - float(text))
    remote = await asyncio.to_thread(queue.get, True, 120)
    child.join(10)
    return local[10:], remote


async def main(args: argparse.Namespace) -> dict[str, Any]:
    burst_size = 5000 if args.quick else 20000
    samples = 100 if args.quick else 400
    await throughput(500, 1)  # warm up
    single = statistics.median([await throughput(burst_size, 1) for _ in range(3)])
    four = await throughput(burst_size // 4, 4)
    local, remote = await latency(args.world, samples, 0.005)
    return {
        "world": args.world.split("?")[0].split("://")[0],
        "chunks_per_second_one_writer": round(single),
        "chunks_per_second_four_runs": round(four),
        "latency_same_process_ms": {
            "p50": round(statistics.median(local) * 1000, 3),
            "p99": round(percentile(local, 0.99) * 1000, 3),
        },
        "latency_other_process_ms": {
            "p50": round(statistics.median(remote) * 1000, 3),
            "p99": round(percentile(remote, 0.99) * 1000, 3),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", help="a World URL (default: a fresh SQLite file)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if options.world is None:
            options.world = f"sqlite:///{Path(folder) / 'streams.db'}"
        workflowkit.configure(options.world)
        try:
            result = asyncio.run(main(options))
        finally:
            workflowkit.shutdown()
    for key, value in result.items():
        print(f"{key:32} {value}")
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2))
    sys.exit(0)
