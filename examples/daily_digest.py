"""A daily digest: gather, send, sleep until tomorrow, repeat, for as long as it runs.

python examples/daily_digest.py
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from workflowkit import sleep, step, workflow
from workflowkit.api import start


@step
def collect_news(day: str) -> list[str]:
    return [f"{day}: release notes", f"{day}: incident report"]


@step
def send_digest(to: str, items: list[str]) -> None:
    print(f"  digest to {to}: {items}")


@workflow
async def daily_digest(to: str, days: int) -> int:
    sent = 0
    for _ in range(days):
        today = datetime.now(UTC)  # the run's time: replays see the same value
        await send_digest(to, await collect_news(today.date().isoformat()))
        sent += 1
        tomorrow = (today + timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0)
        await sleep(tomorrow)  # durable: the run holds no memory overnight
    return sent


async def main() -> None:
    run = await start(daily_digest, "team@example.com", 1)
    print(f"started {run.run_id}; it sends one digest now and the next one tomorrow at 07:00")
    await asyncio.sleep(1)


if __name__ == "__main__":
    asyncio.run(main())
