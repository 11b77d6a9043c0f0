"""An order that is reserved, waits for a person to approve it, then ships."""

from __future__ import annotations

from workflowkit import create_hook, step, workflow


@step
def reserve_stock(order_id: str) -> str:
    return f"res-{order_id}"


@step
def ship(order_id: str, approver: str) -> str:
    return f"{order_id} shipped, approved by {approver}"


@step
def release_stock(reservation: str) -> None:
    print(f"released {reservation}")


def approval_token(order_id: str) -> str:
    return f"order-approval:{order_id}"


@workflow(name="shop.order")
async def order(order_id: str) -> str:
    reservation = await reserve_stock(order_id)
    decision = await create_hook(token=approval_token(order_id), metadata={"order": order_id})
    if not decision.get("approved", False):
        await release_stock(reservation)
        return f"{order_id} rejected by {decision.get('approver', 'someone')}"
    return await ship(order_id, decision["approver"])
