"""Shared pieces of the PostgreSQL benchmark (standard library only, like ``core_common``).

Imported by the workflowkit side (project venv) and the DBOS side (their venv). Each client
case runs in a child process that prints ``BENCH_BEGIN`` when its timed part starts (the
parent samples CPU times then) and one ``BENCH_RESULT {json}`` line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

BEGIN_LINE = "BENCH_BEGIN"
WORKER_READY = "BENCH_WORKER_READY"

# The queue case: the same runs as the throughput case, started into a queue that allows
# QUEUE_LIMIT running at once (workflowkit ``Queue(concurrency=)``, DBOS
# ``register_queue(global_concurrency=)``), into a queue with no limit, or into none.
QUEUE_LIMIT = 50
QUEUE_VARIANTS = ("none", "limit", "open")  # "open": workflowkit only (see bench/README.md)


@dataclass(frozen=True, slots=True)
class PgSizes:
    runs: int = 1000  # throughput: runs started at once
    steps: int = 5  # throughput: chained steps in each run
    hook_samples: int = 100  # resume_hook → next step starts, one payload at a time
    hook_warmup: int = 5
    sleepers: int = 200  # runs sleeping at once; each measures its own wake-up
    sleep_seconds: float = 1.0

    @classmethod
    def quick(cls) -> PgSizes:
        return cls(runs=200, hook_samples=30, sleepers=50)

    def as_args(self) -> list[str]:
        return [f"--{k.replace('_', '-')}={v}" for k, v in asdict(self).items()]


def add_size_args(parser: argparse.ArgumentParser) -> None:
    for name, value in asdict(PgSizes()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)


def sizes_from(args: argparse.Namespace) -> PgSizes:
    return PgSizes(**{k: getattr(args, k) for k in asdict(PgSizes())})


def begin() -> None:
    """Tell the parent the timed part starts now."""
    sys.stdout.write(BEGIN_LINE + "\n")
    sys.stdout.flush()


def note(path: str, since: float) -> float:
    """The body of the step that measures a wake-up: seconds since ``since``, kept in a file."""
    latency = time.time() - since
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(repr(latency))
    os.replace(tmp, path)  # the reader never sees a half-written file
    return latency


async def wait_for_files(paths: list[Path], timeout: float = 300.0, every: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    for path in paths:
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path.name} never appeared")
            await asyncio.sleep(every)


def read_latencies(paths: list[Path]) -> list[float]:
    return [float(p.read_text(encoding="utf-8")) for p in paths]


async def wait_until(
    count: Callable[[], Awaitable[int]], target: int, timeout: float = 600
) -> None:
    """Poll ``count()`` every 10 ms until it reaches ``target``."""
    deadline = time.monotonic() + timeout
    while (done := await count()) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {target} done")
        await asyncio.sleep(0.01)
