"""An order pipeline: steps that retry, a saga that compensates, a durable sleep.

Run it with ``./scripts/example`` (or ``python examples/order_pipeline.py``). State lives in
``.workflowkit/workflowkit.db`` in the working directory; run it twice and the second run
finds the first one's history there.
"""

from __future__ import annotations

import asyncio

from workflowkit import FatalError, RetryableError, get_step_metadata, sleep, step, workflow
from workflowkit.api import start


@step
def reserve_inventory(order_id: str, items: list[str]) -> str:
    print(f"  reserving {items} for {order_id}")
    return f"res-{order_id}"


@step(max_retries=5)
async def charge_card(order_id: str, cents: int) -> str:
    meta = get_step_metadata()
    # A flaky payment API: the first attempts fail, the retry succeeds. The step id is
    # stable across retries, so it works as the idempotency key.
    if meta.attempt < 3:
        print(f"  charge attempt {meta.attempt} for {order_id}: gateway timeout, retrying")
        raise RetryableError("payment gateway timed out", retry_after=0.2)
    print(f"  charged {cents} cents (idempotency key {meta.step_id})")
    return f"ch-{order_id}"


@step
def ship(order_id: str, express: bool) -> str:
    if not order_id:
        raise FatalError("no order id: retrying cannot fix that")
    print(f"  shipped {order_id} ({'express' if express else 'standard'})")
    return f"trk-{order_id}"


@step
def release_inventory(reservation: str) -> None:
    print(f"  released {reservation}")


@step
def send_email(to: str, subject: str) -> None:
    print(f"  email to {to}: {subject}")


@workflow
async def place_order(order_id: str, items: list[str], cents: int) -> dict[str, str]:
    reservation = await reserve_inventory(order_id, items)
    try:
        charge = await charge_card(order_id, cents)
    except Exception:
        await release_inventory(reservation)
        raise
    tracking, _ = await asyncio.gather(
        ship(order_id, express=cents > 10_000),
        send_email("customer@example.com", f"Order {order_id} confirmed"),
    )
    await sleep("1s")  # durable: the run holds no memory while it waits
    await send_email("customer@example.com", f"How was order {order_id}?")
    return {"reservation": reservation, "charge": charge, "tracking": tracking}


async def main() -> None:
    run = await start(place_order, "o-1001", ["book", "lamp"], 4_500)
    print(f"started {run.run_id}")
    result = await run.return_value(timeout=60)
    print(f"result: {result}")
    info = await run.info()
    took = (info.completed_at - info.started_at).total_seconds()  # type: ignore[operator]
    print(f"status: {info.status}, took {took:.2f} s")
    events = await run.runtime.world.get_events(run.run_id)
    print("event log:")
    for event in events:
        print(f"  {event.seq:>3} {event.type:<15} {event.correlation_id or ''}")


if __name__ == "__main__":
    asyncio.run(main())
