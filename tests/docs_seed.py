"""Fills a SQLite World with a few runs for the shell blocks of the docs (see test_docs.py).

python tests/docs_seed.py PATH: a completed run, a failed one, one sleeping for a day and
one waiting on the hook ``approval:doc-1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import workflowkit
from workflowkit import FatalError, create_hook, sleep, step, workflow
from workflowkit.api import start
from workflowkit.testing import wait_for_hook, wait_for_sleep


@step
async def add(a: int, b: int) -> int:
    return a + b


@step
async def charge(cents: int) -> str:
    raise FatalError(f"card declined for {cents} cents")


@workflow(name="docs.add")
async def add_numbers(a: int, b: int) -> int:
    return await add(a, b)


@workflow(name="docs.charge")
async def charge_order(cents: int) -> str:
    return await charge(cents)


@workflow(name="docs.reminder")
async def reminder(text: str) -> str:
    await sleep("1 day")
    return text


@workflow(name="docs.approval")
async def approval(doc_id: str) -> str:
    decision = await create_hook(token=f"approval:{doc_id}", metadata={"doc": doc_id})
    return "approved" if decision["ok"] else "rejected"


async def main() -> None:
    done = await start(add_numbers, 2, 3)
    assert await done.return_value(timeout=30) == 5
    failed = await start(charge_order, 500)
    with contextlib.suppress(workflowkit.WorkflowRunFailedError):
        await failed.return_value(timeout=30)
    await wait_for_sleep(await start(reminder, "water the plants"), timeout=30)
    await wait_for_hook(await start(approval, "doc-1"), token="approval:doc-1", timeout=30)


if __name__ == "__main__":
    workflowkit.configure(f"sqlite:///{sys.argv[1]}", poll_interval=0.05)
    asyncio.run(main())
    workflowkit.shutdown()
