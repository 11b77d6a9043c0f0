"""Workflows for the standalone-worker tests, imported by the worker processes by name."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from workflowkit import step, workflow


def mark(directory: str, name: str) -> None:
    (Path(directory) / f"{name}.{os.getpid()}.{time.monotonic_ns()}").write_text("x")


@step(name="worker_app.work")
def work(directory: str, run_key: str, index: int) -> int:
    mark(directory, f"work-{run_key}-{index}")
    return index


@workflow(name="worker_app.five_steps")
async def five_steps(directory: str, run_key: str) -> int:
    total = 0
    for index in range(5):
        total += await work(directory, run_key, index)
    return total


@step(name="worker_app.slow")
def slow(directory: str) -> str:
    mark(directory, "slow")
    (Path(directory) / "inside-slow").write_text("x")
    time.sleep(1.0)
    return "slow done"


@step(name="worker_app.after")
def after(directory: str) -> str:
    mark(directory, "after")
    return "after done"


@workflow(name="worker_app.slow_then_after")
async def slow_then_after(directory: str) -> list[str]:
    return [await slow(directory), await after(directory)]


@step(name="worker_app.slow_square")
def slow_square(directory: str, run_key: str, index: int, seconds: float) -> int:
    mark(directory, f"sq-{run_key}-{index}")
    time.sleep(seconds)
    return index * index


@workflow(name="worker_app.fan_out")
async def fan_out(directory: str, run_key: str, count: int, seconds: float) -> list[int]:
    calls = (slow_square(directory, run_key, i, seconds) for i in range(count))
    return list(await asyncio.gather(*calls))


@step(name="worker_app.exits", max_retries=1)
def exits(code: int) -> None:
    raise SystemExit(code)


@workflow(name="worker_app.step_exits")
async def step_exits(code: int) -> str:
    try:
        await exits(code)
    except Exception as exc:
        return type(exc).__name__
    return "no error"


@step(name="worker_app.gc_settings")
def gc_settings() -> list[int]:
    import gc

    return list(gc.get_threshold())


@workflow(name="worker_app.report_gc")
async def report_gc() -> list[int]:
    return await gc_settings()


@step(name="worker_app.step_thread")
async def step_thread() -> str:
    return threading.current_thread().name


@workflow(name="worker_app.report_thread")
async def report_thread() -> str:
    return await step_thread()
