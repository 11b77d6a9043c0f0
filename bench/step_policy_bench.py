"""What a retry policy and a timeout cost a step attempt that succeeds, without the World.

    .venv/bin/python bench/step_policy_bench.py [--attempts 20000] [--rounds 7]

Runs ``run_attempt`` (the code every step attempt goes through) on a trivial step, with and
without ``retry=Retry(...)`` and ``timeout=``, for async and sync steps, in interleaved
rounds, and prints the µs per attempt of each (fastest round, and median) and their
difference. Case (b) of ``core_bench.py`` measures the same next to the World's appends,
where on a shared machine the noise is larger than the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

from workflowkit import Retry, step
from workflowkit.context import WorkflowMetadata
from workflowkit.runtime.executor import encode_input
from workflowkit.runtime.steps import Attempt, run_attempt
from workflowkit.worlds.base import World

POLICY = Retry(attempts=5, initial="1s", backoff=2.0, max_interval="1 minute", jitter=0.2)


@step(name="policy_bench.plain")
async def plain(x: int) -> int:
    return x + 1


@step(name="policy_bench.policy", retry=POLICY, timeout="30s")
async def with_policy(x: int) -> int:
    return x + 1


@step(name="policy_bench.plain_sync")
def plain_sync(x: int) -> int:
    return x + 1


@step(name="policy_bench.policy_sync", retry=POLICY, timeout="30s")
def with_policy_sync(x: int) -> int:
    return x + 1


async def time_attempts(st: Any, n: int, pool: ThreadPoolExecutor) -> float:
    """µs per attempt, each in a task of its own as the worker runs them."""
    meta = WorkflowMetadata("wrun_bench", "bench", datetime.now(UTC), "")
    payload = encode_input((1,), {}, what="bench")
    world = cast(World, None)  # a succeeding attempt that writes no stream never reaches it
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    for i in range(n):
        job = Attempt(st, f"step_{i}", payload, 1, meta, world)
        await loop.create_task(run_attempt(job, pool, time.time))
    return (time.perf_counter() - began) / n * 1e6


async def main(attempts: int, rounds: int) -> None:
    pool = ThreadPoolExecutor(4)
    pairs = {"async": (plain, with_policy), "sync": (plain_sync, with_policy_sync)}
    for kind, (bare, policed) in pairs.items():
        await time_attempts(bare, 1000, pool)  # warm
        await time_attempts(policed, 1000, pool)
        bare_us: list[float] = []
        policy_us: list[float] = []
        for r in range(rounds):
            order = [(bare, bare_us), (policed, policy_us)]
            for st, into in order if r % 2 == 0 else reversed(order):
                into.append(await time_attempts(st, attempts, pool))
        # The fastest round is the least disturbed by other processes; the median is shown
        # too, with every round, to judge the noise.
        b, p = min(bare_us), min(policy_us)
        mb, mp = statistics.median(bare_us), statistics.median(policy_us)
        print(
            f"{kind:5} steps: fastest round: plain {b:6.2f} µs/attempt, with Retry + timeout "
            f"{p:6.2f} µs ({p - b:+.2f} µs, x{p / b:.3f}); medians {mb:.2f} / {mp:.2f} µs; "
            f"rounds: plain {[round(x, 1) for x in bare_us]}, "
            f"policy {[round(x, 1) for x in policy_us]}"
        )
    pool.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.attempts, args.rounds))
