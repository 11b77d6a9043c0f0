"""A daily digest on a schedule: every working day at 07:00 in Berlin, one run per day.

python examples/daily_digest.py      # runs today's digest now, then waits for 07:00

Each tick starts a run whose argument is the tick's time (an aware datetime), so a digest
knows which day it is for even when it runs late. The schedule lives in the World: it fires
once per day however many workers run this module (`workflowkit worker daily_digest`), a
digest missed while no worker ran is sent when one comes back (catch_up="latest"), and it
can be paused, resumed or run now from the CLI and the dashboard
(`workflowkit schedules pause examples.daily_digest`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from workflowkit import step, workflow
from workflowkit.api import trigger_schedule


@step
def collect_news(day: str) -> list[str]:
    return [f"{day}: release notes", f"{day}: incident report"]


@step
def send_digest(to: str, items: list[str]) -> None:
    print(f"  digest to {to}: {items}")


@workflow(
    name="examples.daily_digest",
    schedule="0 7 * * MON-FRI",
    timezone="Europe/Berlin",
    catch_up="latest",
)
async def daily_digest(scheduled_at: datetime) -> str:
    day = scheduled_at.date().isoformat()  # the tick's day, in Berlin
    await send_digest("team@example.com", await collect_news(day))
    return day


async def main() -> None:
    run = await trigger_schedule("examples.daily_digest")  # one now, as a tick would
    print(f"sent today's digest ({await run.return_value(timeout=30)}); next at 07:00 Berlin")
    await asyncio.Event().wait()  # the embedded worker fires the schedule while this runs


if __name__ == "__main__":
    asyncio.run(main())
