"""Workflows for the lease-takeover test; each step says which process ran it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workflowkit import step, workflow


def mark(directory: str, name: str) -> None:
    # One file per execution, so counting files counts executions across processes.
    (Path(directory) / f"{name}.{os.getpid()}.{time.monotonic_ns()}").write_text("x")


@step(name="lease.slow")
def slow(directory: str) -> int:
    mark(directory, "slow")
    time.sleep(1.5)
    return os.getpid()


@step(name="lease.after")
def after(directory: str) -> int:
    mark(directory, "after")
    return os.getpid()


@workflow(name="lease.slow_then_after")
async def slow_then_after(directory: str) -> list[int]:
    return [await slow(directory), await after(directory)]
