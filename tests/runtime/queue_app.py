"""Queues and a workflow for the queue tests with worker processes (test_queue_workers.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workflowkit import Queue, step, workflow

three = Queue("qa.three", concurrency=3)
one_per_key = Queue("qa.per-key", per_key=1)
twenty_a_second = Queue("qa.rate", rate_limit="20/second")
two = Queue("qa.two", concurrency=2)
one = Queue("qa.one", concurrency=1)


@step(name="qa.work")
def work(directory: str, tag: str, seconds: float, block: bool, gated: bool = False) -> None:
    """Records when it ran (one file per execution); ``block``: hang until killed once;
    ``gated``: wait for the file ``open`` (say so with ``gated.TAG``)."""
    if block and not (Path(directory) / "killed").exists():
        (Path(directory) / f"blocking.{tag}").write_text("x")
        time.sleep(120)
    began = time.time()
    if gated:
        (Path(directory) / f"gated.{tag}").write_text("x")
        while not (Path(directory) / "open").exists() and time.time() < began + 60:
            time.sleep(0.02)
    time.sleep(seconds)
    ended = time.time()
    name = f"ran.{tag}.{os.getpid()}.{time.monotonic_ns()}"
    (Path(directory) / name).write_text(f"{began} {ended}")


@workflow(name="qa.job")
async def job(
    directory: str, tag: str, seconds: float = 0.0, block: bool = False, gated: bool = False
) -> str:
    await work(directory, tag, seconds, block, gated)
    return tag
