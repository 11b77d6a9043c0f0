"""Checked by mypy --strict (see pyproject.toml), never run: the API as users type it."""

from __future__ import annotations

from typing import assert_type

from workflowkit import Step, Workflow, sleep, step, workflow
from workflowkit.api import Run, start
from workflowkit.sync import Run as SyncRun
from workflowkit.sync import start as sync_start


@step
async def bare_async(x: int) -> int:
    return x


@step
def bare_sync(x: int) -> str:
    return str(x)


@step(name="named", max_retries=5)
async def named_async(x: int) -> int:
    return x


@step(max_retries=0)
def named_sync(x: int, *, flag: bool = False) -> bytes:
    return b""


@workflow
async def flow(x: int) -> str:
    a = await bare_async(x)
    b = await bare_sync(a)
    c = await named_async(a)
    d = await named_sync(c, flag=True)
    await sleep("1s")
    return b + d.decode()


@workflow(name="pinned")
async def pinned(x: int) -> int:
    return x


async def typed_calls() -> None:
    assert_type(await bare_async(1), int)
    assert_type(await bare_sync(1), str)
    assert_type(await named_async(1), int)
    assert_type(await named_sync(1, flag=True), bytes)
    assert isinstance(named_sync, Step) and isinstance(pinned, Workflow)


async def client() -> None:
    run = await start(flow, 1)
    assert_type(run, Run[str])
    assert_type(await run.return_value(), str)


def sync_client() -> None:
    run = sync_start(pinned, 2)
    assert_type(run, SyncRun[int])
    assert_type(run.return_value(), int)


async def with_options() -> None:
    bound = flow.options(run_id="invoice-1", queue="billing", key="c-1", priority=3, delay="10m")
    run = await start(bound, 1)
    await start(bound, "one")  # type: ignore[arg-type]  # the bound workflow's arguments
    assert_type(run, Run[str])
    assert_type(sync_start(pinned.options(timeout=30), 2), SyncRun[int])


@workflow
async def parent_flow() -> int:
    child = await start(pinned.options(detached=True), 3)
    assert_type(child, Run[int])
    return await child.return_value()
