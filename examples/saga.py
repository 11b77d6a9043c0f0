"""Order processing as a saga: every step that succeeded is undone, in reverse, on failure.

python examples/saga.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from workflowkit import FatalError, WorkflowRunFailedError, step, workflow
from workflowkit.api import start


@step
def reserve_inventory(order_id: str) -> str:
    print(f"  reserved stock for {order_id}")
    return f"res-{order_id}"


@step
def release_inventory(reservation: str) -> None:
    print(f"  released {reservation}")


@step
def charge(order_id: str, cents: int) -> str:
    print(f"  charged {cents} cents for {order_id}")
    return f"ch-{order_id}"


@step
def refund(charge_id: str) -> None:
    print(f"  refunded {charge_id}")


@step
def ship(order_id: str, address: str) -> str:
    if not address:
        raise FatalError(f"order {order_id} has no shipping address")
    return f"trk-{order_id}"


@workflow
async def place_order(order_id: str, cents: int, address: str) -> str:
    compensations: list[Callable[[], Awaitable[None]]] = []
    try:
        reservation = await reserve_inventory(order_id)
        compensations.append(lambda: release_inventory(reservation))
        charge_id = await charge(order_id, cents)
        compensations.append(lambda: refund(charge_id))
        return await ship(order_id, address)
    except Exception:
        for undo in reversed(compensations):
            await undo()  # steps too: durable, retried, recorded
        raise


async def main() -> None:
    ok = await start(place_order, "o-1", 1200, "1 Main St")
    print("tracking:", await ok.return_value(timeout=30))
    bad = await start(place_order, "o-2", 900, "")
    try:
        await bad.return_value(timeout=30)
    except WorkflowRunFailedError as exc:
        print("failed and compensated:", exc.error_message)


if __name__ == "__main__":
    asyncio.run(main())
