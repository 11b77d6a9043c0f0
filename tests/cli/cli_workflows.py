"""Workflows the CLI tests seed their database with."""

from __future__ import annotations

from typing import Any

from workflowkit import (
    FatalError,
    RetryableError,
    create_hook,
    create_webhook,
    sleep,
    step,
    workflow,
)


@step
async def shout(text: str) -> str:
    return text.upper()


@step
async def explode(text: str) -> str:
    raise FatalError(f"boom: {text}")


@workflow(name="cli.greet")
async def greet(name: str) -> str:
    return await shout(f"hello {name}")


@workflow(name="cli.fail")
async def fail(name: str) -> str:
    return await explode(name)


@workflow(name="cli.nap")
async def nap(name: str) -> str:
    await sleep("1 hour")
    return await shout(f"awake {name}")


@workflow(name="cli.approve")
async def approve(doc: str) -> Any:
    hook = create_hook(token=f"approval:{doc}", metadata={"doc": doc})
    decision = await hook
    return {"doc": doc, "decision": decision}


@workflow(name="cli.webhook")
async def webhook() -> str:
    request = await create_webhook()
    return request.text


@step
async def flaky(text: str) -> str:
    raise RetryableError(f"not yet: {text}", retry_after="1h")


@workflow(name="cli.retry")
async def retry(text: str) -> str:
    return await flaky(text)
