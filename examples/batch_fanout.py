"""A batch job: 1000 items processed in parallel chunks, with a running total.

python examples/batch_fanout.py
"""

from __future__ import annotations

import asyncio

from workflowkit import step, workflow
from workflowkit.api import start


@step
def load_items(count: int) -> list[int]:
    return list(range(count))


@step
async def process(item: int) -> int:
    return item * item


@workflow
async def batch(count: int, chunk: int) -> int:
    items = await load_items(count)
    total = 0
    for offset in range(0, len(items), chunk):
        # One durable step per item, at most `chunk` in flight at a time.
        results = await asyncio.gather(*(process(i) for i in items[offset : offset + chunk]))
        total += sum(results)
    return total


async def main() -> None:
    run = await start(batch, 1000, 100)
    print("sum of squares:", await run.return_value(timeout=120))


if __name__ == "__main__":
    asyncio.run(main())
