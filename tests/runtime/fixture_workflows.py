"""Workflows whose recorded event logs are checked in under tests/fixtures/event_logs.

Their code must not change: later versions of workflowkit must still replay those logs.
Names are pinned so the logs do not depend on module paths.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from workflowkit import FatalError, RetryableError, get_step_metadata, sleep, step, workflow


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@step(name="fixtures.price")
def price(line: Line) -> int:
    return line.quantity * 250


@step(name="fixtures.flaky", max_retries=2)
def flaky(tag: str) -> str:
    if get_step_metadata().attempt < 2:
        raise RetryableError("try again", retry_after=0.01)
    return tag


@step(name="fixtures.refuse")
def refuse() -> None:
    raise FatalError("refused")


@workflow(name="fixtures.order_total")
async def order_total(lines: list[Line]) -> dict[str, object]:
    prices = await asyncio.gather(*(price(line) for line in lines))
    confirmed = await flaky("ok")
    try:
        await refuse()
    except FatalError as exc:
        note = str(exc)
    await sleep(0.01)
    pick = random.randint(1, 6)
    return {"total": sum(prices), "confirmed": confirmed, "note": note, "dice": pick}


@workflow(name="fixtures.waits_long")
async def waits_long(seconds: float) -> str:
    first = await flaky("before")
    await sleep(seconds)
    return first
