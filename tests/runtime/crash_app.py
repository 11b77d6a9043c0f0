"""Workflows for the crash tests; imported by the test and by the process it kills."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workflowkit import sleep, step, workflow


def mark(directory: str, name: str) -> None:
    # One file per execution, so counting files counts executions across processes.
    path = Path(directory) / f"{name}.{os.getpid()}.{time.monotonic_ns()}"
    path.write_text("x")


@step(name="crash.first")
def first(directory: str) -> int:
    mark(directory, "first")
    return 1


@step(name="crash.slow")
def slow(directory: str) -> int:
    mark(directory, "slow")
    if not (Path(directory) / "killed").exists():
        (Path(directory) / "inside-slow").write_text("x")
        time.sleep(60)
    return 2


@step(name="crash.last")
def last(directory: str) -> int:
    mark(directory, "last")
    return 3


@workflow(name="crash.killed_in_step")
async def killed_in_step(directory: str) -> list[int]:
    a = await first(directory)
    b = await slow(directory)
    c = await last(directory)
    return [a, b, c]


@step(name="crash.before_sleep")
def before_sleep(directory: str) -> float:
    mark(directory, "first")
    (Path(directory) / "sleeping").write_text("x")
    return time.time()


@workflow(name="crash.killed_while_sleeping")
async def killed_while_sleeping(directory: str) -> list[float]:
    started = await before_sleep(directory)
    await sleep(1.5)
    ended = await last(directory)
    return [started, float(ended), time.time()]


@workflow(name="crash.waits_for_hook")
async def waits_for_hook(directory: str) -> str:
    from workflowkit import create_hook

    hook = create_hook(token=f"crash:{directory}")
    await before_sleep(directory)  # writes the "sleeping" marker: the hook exists by now
    payload = await hook
    await last(directory)
    return str(payload)


@step(name="crash.child_work")
def child_work(directory: str, n: int) -> int:
    mark(directory, f"child-{n}")
    return n


@workflow(name="crash.child")
async def child(directory: str, n: int) -> int:
    return await child_work(directory, n)


@step(name="crash.halfway")
def halfway(directory: str) -> None:
    """Stops the fan-out half way until the process is killed (the first time)."""
    mark(directory, "halfway")
    if not (Path(directory) / "killed").exists():
        (Path(directory) / "fanned-out-half").write_text("x")
        time.sleep(60)


@workflow(name="crash.fan_out")
async def fan_out(directory: str) -> int:
    from workflowkit.api import start

    runs = []
    for n in range(50):
        runs.append(await start(child, directory, n))
        if n == 24:
            await halfway(directory)
    return sum([await run.return_value() for run in runs])


@step(name="crash.poison", max_retries=1)
def poison(directory: str) -> int:
    """Takes its worker down every time, as a segfault or the OOM killer would."""
    mark(directory, "poison")
    os._exit(3)


@workflow(name="crash.poisoned")
async def poisoned(directory: str) -> int:
    return await poison(directory)
