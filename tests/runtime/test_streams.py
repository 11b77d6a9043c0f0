"""foundations/streaming in Python: writers in steps, live readers, namespaces, retries."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from workflowkit import (
    NotInWorkflowError,
    RetryableError,
    StreamError,
    WorkflowRunFailedError,
    Writable,
    create_hook,
    get_step_metadata,
    get_writable,
    sleep,
    step,
    workflow,
)
from workflowkit import sync as wsync
from workflowkit.api import Run, resume_hook, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook


async def collect(run: Run[object], namespace: str | None = None, start: int = 0) -> list[object]:
    return [chunk async for chunk in run.get_readable(namespace, start)]


# -- the reference's first example: steps write progress to the default stream -------------


@step
async def write_progress(message: str) -> None:
    await get_writable().write(message)


@workflow
async def simple_streaming() -> str:
    await write_progress("Starting task...")
    await write_progress("Processing data...")
    await write_progress("Task complete!")
    return "done"


async def test_steps_write_and_the_stream_ends_with_the_run(runtime: Runtime) -> None:
    run = await start(simple_streaming)
    chunks = await asyncio.wait_for(collect(run), 20)
    assert chunks == ["Starting task...", "Processing data...", "Task complete!"]
    assert await run.return_value(timeout=10) == "done"
    # A reader that starts after the run ended still gets everything.
    assert await collect(run) == chunks
    # run.readable, the reference's shorthand: the default stream from its start.
    assert [chunk async for chunk in run.readable] == chunks


# -- get_writable() in workflow code, handed to steps (api-reference/get-writable) -----------


@step
async def step_with_output(writable: Writable) -> None:
    await writable.write(b"Hello, world!")


@step
async def step_close_output(writable: Writable) -> None:
    await writable.close()


@workflow
async def output_stream_workflow() -> str:
    writable = get_writable()
    await sleep(0.05)
    await step_with_output(writable)
    await sleep(0.05)
    await step_close_output(writable)
    await sleep(0.05)
    return "done"


async def test_a_handle_from_workflow_code_passes_to_steps(runtime: Runtime) -> None:
    run = await start(output_stream_workflow)
    # The stream ends when the step closes it, before the run finishes.
    assert await asyncio.wait_for(collect(run), 20) == [b"Hello, world!"]
    assert await run.return_value(timeout=10) == "done"


@workflow
async def writes_in_workflow_code() -> None:
    await get_writable().write("not here")


async def test_workflow_code_cannot_write(runtime: Runtime) -> None:
    run = await start(writes_in_workflow_code)
    with pytest.raises(WorkflowRunFailedError) as failed:
        await run.return_value(timeout=10)
    assert failed.value.error_type.endswith("StreamError")
    assert "pass the handle" in failed.value.error_message


def test_get_writable_outside_a_run() -> None:
    with pytest.raises(NotInWorkflowError, match="get_readable"):
        get_writable()


async def test_writing_outside_a_step_says_so() -> None:
    with pytest.raises(StreamError, match="inside a step"):
        await Writable("wrun_x").write("x")


# -- namespaces (the reference's multi-stream example) ---------------------------------------


@step
async def write_logs() -> None:
    logs = get_writable("logs")
    await logs.write({"level": "info", "message": "Task started"})
    await logs.write({"level": "info", "message": "Processing..."})


@step
async def write_metrics() -> None:
    metrics = get_writable(namespace="metrics")
    await metrics.write({"cpu": 45, "memory": 512})
    await metrics.write({"cpu": 52, "memory": 520})


@step
async def close_streams() -> None:
    await get_writable("logs").close()
    await get_writable("metrics").close()


@workflow
async def multi_stream() -> None:
    await write_logs()
    await write_metrics()
    await close_streams()
    await sleep(0.05)


async def test_namespaces_are_separate_streams(runtime: Runtime) -> None:
    run = await start(multi_stream)
    logs, metrics, default = await asyncio.wait_for(
        asyncio.gather(collect(run, "logs"), collect(run, "metrics"), collect(run)), 20
    )
    assert [m["message"] for m in logs] == ["Task started", "Processing..."]  # type: ignore[index]
    assert metrics == [{"cpu": 45, "memory": 512}, {"cpu": 52, "memory": 520}]
    assert default == []


# -- live reading, start indexes, reconnecting ----------------------------------------------


@step
async def write_many(prefix: str, count: int) -> None:
    writer = get_writable()
    for i in range(count):
        await writer.write(f"{prefix}{i}")


@workflow
async def two_phases(token: str) -> None:
    await write_many("a", 3)
    await create_hook(token=token)
    await write_many("b", 3)


async def test_a_reader_follows_the_stream_live(runtime: Runtime) -> None:
    token = f"phase:{uuid.uuid4().hex}"
    run = await start(two_phases, token)
    reader = run.get_readable()
    first = [await asyncio.wait_for(reader.__anext__(), 20) for _ in range(3)]
    assert first == ["a0", "a1", "a2"] and await run.status() == "running"
    await wait_for_hook(run, token, timeout=10)
    await resume_hook(token, None)
    rest = await asyncio.wait_for(collect_from(reader), 20)
    assert rest == ["b0", "b1", "b2"]


async def collect_from(reader: object) -> list[object]:
    return [chunk async for chunk in reader]  # type: ignore[attr-defined]


async def test_start_index_and_reconnect(runtime: Runtime) -> None:
    token = f"phase:{uuid.uuid4().hex}"
    run = await start(two_phases, token)
    reader = run.get_readable()
    assert await asyncio.wait_for(reader.__anext__(), 20) == "a0"
    assert await reader.__anext__() == "a1"
    await reader.aclose()  # the client went away; it reconnects with the index it reached
    assert reader.index == 2
    resumed = run.get_readable(start_index=reader.index)
    assert await asyncio.wait_for(resumed.__anext__(), 20) == "a2"
    await wait_for_hook(run, token, timeout=10)
    await resume_hook(token, None)
    assert await asyncio.wait_for(collect_from(resumed), 20) == ["b0", "b1", "b2"]
    await run.return_value(timeout=10)
    assert await collect(run, start=4) == ["b1", "b2"]
    assert await collect(run, start=-2) == ["b1", "b2"]
    assert await collect(run, start=-100) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert await collect(run, start=50) == []


# -- chunk types and volume ---------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    item: str
    percent: Decimal
    at: datetime


@step
async def write_kinds() -> None:
    async with get_writable() as writer:
        await writer.write(b"\x00\xff raw")
        await writer.write("text \u2603")
        await writer.write(Progress("x", Decimal("12.5"), datetime(2026, 1, 2, tzinfo=UTC)))
        await writer.write([1, {"nested": (2, 3)}])


@workflow
async def kinds_workflow() -> None:
    await write_kinds()


async def test_bytes_text_and_structured_chunks(runtime: Runtime) -> None:
    run = await start(kinds_workflow)
    assert await asyncio.wait_for(collect(run), 20) == [
        b"\x00\xff raw",
        "text \u2603",
        Progress("x", Decimal("12.5"), datetime(2026, 1, 2, tzinfo=UTC)),
        [1, {"nested": (2, 3)}],
    ]


@workflow
async def many_chunks(count: int) -> None:
    await write_many("c", count)


async def test_a_fast_writer_loses_nothing(cached_runtime: Runtime) -> None:
    run = await start(many_chunks, 2500)  # more than the writer's buffer holds
    chunks = await asyncio.wait_for(collect(run), 60)
    assert chunks == [f"c{i}" for i in range(2500)]


# -- retries and failures --------------------------------------------------------------


@step(max_retries=2)
async def flaky_writer() -> str:
    attempt = get_step_metadata().attempt
    writer = get_writable()
    await writer.write(f"attempt {attempt} started")
    await writer.flush()
    if attempt < 3:
        raise RetryableError("not yet", retry_after=0.01)
    await writer.write("finished")
    return "ok"


@workflow
async def retrying_writer() -> str:
    return await flaky_writer()


async def test_chunks_of_failed_attempts_are_dropped(runtime: Runtime) -> None:
    run = await start(retrying_writer)
    assert await run.return_value(timeout=20) == "ok"
    assert await collect(run) == ["attempt 3 started", "finished"]


@step
async def closes_then_writes() -> None:
    writer = get_writable()
    await writer.close()
    await writer.write("too late")


@workflow
async def write_after_close() -> None:
    await closes_then_writes()


async def test_writing_after_close_fails_the_step_without_retrying(runtime: Runtime) -> None:
    run = await start(write_after_close)
    with pytest.raises(WorkflowRunFailedError) as failed:
        await run.return_value(timeout=10)
    assert failed.value.error_type.endswith("StreamClosedError")
    steps = await runtime.world.list_steps(run.run_id)
    assert [s.attempt for s in steps] == [1]


# -- synchronous steps and readers ----------------------------------------------------------


@step
def sync_writer(count: int) -> None:
    with get_writable("sync") as writer:
        for i in range(count):
            writer.write({"n": i})


@workflow
async def sync_workflow() -> None:
    await sync_writer(1200)


async def test_a_synchronous_step_writes_without_await(cached_runtime: Runtime) -> None:
    run = await start(sync_workflow)
    chunks = await asyncio.wait_for(collect(run, "sync"), 30)
    assert chunks == [{"n": i} for i in range(1200)]


def test_sync_readers_block_and_resume(cached_runtime: Runtime) -> None:
    run = wsync.start(simple_streaming)
    reader = run.get_readable()
    assert next(reader) == "Starting task..."
    reader.close()
    assert list(run.get_readable(start_index=reader.index)) == [
        "Processing data...",
        "Task complete!",
    ]
    assert list(run.readable) == ["Starting task...", "Processing data...", "Task complete!"]
