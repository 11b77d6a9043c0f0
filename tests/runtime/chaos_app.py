"""Workflows for the chaos suite, imported by the test and by every worker it kills.

Each step body appends one line to a file named after its run and step when it has finished
its work, so the test can count finished executions across processes, and tell which
process ran each.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from workflowkit import sleep, step, workflow

STEPS = 4


def finished(directory: str, run_key: str, index: int) -> None:
    line = f"{os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(Path(directory) / f"{run_key}.{index}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def finished_bodies(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Step (run key and index) -> (pid, time) of each finished execution of its body."""
    found = {}
    for path in directory.iterdir():
        lines = [line.split() for line in path.read_text().splitlines()]
        found[path.name] = [(int(pid), float(at)) for pid, at in lines]
    return found


@step(name="chaos.work")
def work(directory: str, run_key: str, index: int) -> int:
    time.sleep(random.uniform(0.05, 0.3))  # long enough to be caught mid-step
    finished(directory, run_key, index)
    return index * 10


@workflow(name="chaos.flow")
async def flow(directory: str, run_key: str) -> int:
    total = 0
    for index in range(STEPS):
        total += await work(directory, run_key, index)
        if index == 1:
            await sleep(0.2)  # a timer in the middle: wake-ups are part of the chaos too
    return total


EXPECTED = sum(index * 10 for index in range(STEPS))


@workflow(name="chaos.fan")
async def fan(directory: str, run_key: str) -> int:
    """Two steps at once, then a third: with one step slot the second goes through the
    World's step queue (queued, claimed back, finished there), the commits ``flow`` never
    makes."""
    first = await asyncio.gather(work(directory, run_key, 0), work(directory, run_key, 1))
    return sum(first) + await work(directory, run_key, 2)


FAN_STEPS = 3
FAN_EXPECTED = sum(index * 10 for index in range(FAN_STEPS))
