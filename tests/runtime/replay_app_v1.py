"""A workflow as first deployed (tests/runtime/test_replay_check.py)."""

from __future__ import annotations

from workflowkit import step, workflow


@step(name="replay.first")
def first(n: int) -> int:
    return n


@step(name="replay.second")
def second(n: int) -> int:
    return n * 2


@workflow(name="replay.flow")
async def flow(n: int) -> int:
    a = await first(n)
    b = await second(n)
    return a + b
