"""The same workflow changed: odd inputs now call the steps in the other order."""

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
    if n % 2:
        b = await second(n)
        a = await first(n)
    else:
        a = await first(n)
        b = await second(n)
    return a + b
