"""Human approval with a 7-day timeout: whichever comes first, a decision or the deadline.

python examples/approval_timeout.py
"""

from __future__ import annotations

import asyncio

from workflowkit import create_hook, sleep, step, workflow
from workflowkit.api import resume_hook, start


@step
def ask_for_approval(request_id: str, token: str) -> None:
    print(f"  approval needed for {request_id}: resume hook {token!r}")


@step
def escalate(request_id: str) -> None:
    print(f"  no answer for {request_id} in 7 days: escalating")


@workflow
async def expense_approval(request_id: str) -> str:
    with create_hook(token=f"expense:{request_id}") as hook:
        await ask_for_approval(request_id, hook.token)
        decision = asyncio.ensure_future(_next(hook))
        deadline = asyncio.ensure_future(sleep("7 days"))
        done, _ = await asyncio.wait({decision, deadline}, return_when=asyncio.FIRST_COMPLETED)
        if decision in done:
            deadline.cancel()
            return "approved" if decision.result()["approve"] else "rejected"
        decision.cancel()
    await escalate(request_id)
    return "escalated"


async def _next(hook: object) -> dict[str, bool]:
    return await hook  # type: ignore[no-any-return, misc]


async def main() -> None:
    run = await start(expense_approval, "exp-42")
    await asyncio.sleep(0.5)  # in real life: a person clicks a link days later
    await resume_hook("expense:exp-42", {"approve": True})
    print(await run.return_value(timeout=30))


if __name__ == "__main__":
    asyncio.run(main())
