"""A workflow sleeping 2 s, for the clock-skew tests; imported by the skewed workers."""

from __future__ import annotations

from pathlib import Path

from workflowkit import sleep, step, workflow


@step(name="skew.before")
def before(directory: str) -> None:
    (Path(directory) / "sleeping").write_text("x")


@step(name="skew.after")
def after(directory: str) -> None:
    (Path(directory) / "woke").write_text("x")


@workflow(name="skew.sleeps_two_seconds")
async def sleeps_two_seconds(directory: str) -> str:
    await before(directory)
    await sleep(2)
    await after(directory)
    return "done"
