"""Workflows the dashboard tests seed their database with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflowkit import (
    FatalError,
    RetryableError,
    create_hook,
    create_webhook,
    get_step_metadata,
    get_writable,
    sleep,
    step,
    workflow,
)

HOSTILE = "<script>alert(1)</script>"


@step
async def reserve(item: str) -> str:
    return f"reserved {item}"


@step
async def charge(item: str) -> str:
    # Fails twice, so the timeline shows three attempts of this step.
    if get_step_metadata().attempt < 3:
        raise RetryableError(f"card declined for {item}", retry_after=0.01)
    return f"charged {item}"


@step
async def ship(item: str) -> str:
    return f"shipped {item}"


@workflow(name="web.order")
async def order(item: str) -> str:
    await reserve(item)
    await charge(item)
    return await ship(item)


@step
async def echo(text: str) -> str:
    return text


@workflow(name="web.hostile")
async def hostile(text: str) -> str:
    return await echo(text)


@step
async def explode(text: str) -> str:
    raise FatalError(f"boom: {text}")


@workflow(name="web.fail")
async def fail(text: str) -> str:
    return await explode(text)


@workflow(name="web.nap")
async def nap(name: str) -> str:
    await sleep("1 hour")
    return await echo(f"awake {name}")


@workflow(name="web.approve")
async def approve(doc: str) -> Any:
    decision = await create_hook(token=f"approval:{doc}", metadata={"doc": doc})
    return {"doc": doc, "decision": decision}


@step
async def say(lines: list[str]) -> None:
    out = get_writable()
    for line in lines:
        await out.write(line)


@workflow(name="web.talk")
async def talk(token: str) -> None:
    await say(["line 1", HOSTILE])
    await create_hook(token=token)
    await say(["line 2"])


@workflow(name="web.webhook")
async def webhook() -> str:
    request = await create_webhook()
    return request.text


@workflow(name="web.digest")
async def digest(scheduled_at: datetime, team: str) -> str:
    """What the schedule the browser test creates starts: the tick's time, then its args."""
    return await echo(f"{team}@{scheduled_at.isoformat()}")
