"""The World's stream contract: storage, visibility of step attempts, closing, notification."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from workflowkit.errors import StreamClosedError, WorkflowRunNotFoundError
from workflowkit.ids import new_id
from workflowkit.worlds.base import World
from workflowkit.worlds.records import (
    ChunkKind,
    ChunkWriter,
    EventType,
    NewChunk,
    NewEvent,
    StreamChange,
)


def text(*values: str) -> list[NewChunk]:
    return [NewChunk(ChunkKind.TEXT, v.encode()) for v in values]


async def read_all(world: World, run_id: str, name: str = "", start: int = 0) -> list[str]:
    page = await world.read_stream(run_id, name, start)
    return [c.data.decode() for c in page.chunks]


async def started_run(world: World) -> str:
    run_id = new_id("wrun")
    await world.create_run(run_id, "wf", b"input", {})
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED)])
    return run_id


async def start_step(world: World, run_id: str, step_id: str, attempt: int) -> None:
    events = [NewEvent(EventType.STEP_STARTED, step_id, attrs={"attempt": attempt})]
    if attempt == 1:
        events.insert(0, NewEvent(EventType.STEP_CREATED, step_id, b"in", {"name": "s"}))
    result = await world.append(run_id, events)
    assert not result.rejected, result.rejected


async def test_chunks_are_stored_in_order_per_namespace(world: World) -> None:
    run_id = await started_run(world)
    assert await world.write_stream(run_id, "", text("a", "b")) == 2
    assert await world.write_stream(run_id, "", text("c")) == 3
    assert await world.write_stream(run_id, "logs", text("x")) == 1
    assert await read_all(world, run_id) == ["a", "b", "c"]
    assert await read_all(world, run_id, "logs") == ["x"]
    page = await world.read_stream(run_id, "", 1)
    assert [c.index for c in page.chunks] == [1, 2]
    assert page.next_index == 3 and not page.done
    infos = await world.list_streams(run_id)
    assert [(i.name, i.length, i.closed) for i in infos] == [("", 3, False), ("logs", 1, False)]


async def test_bytes_and_kinds_round_trip(world: World) -> None:
    run_id = await started_run(world)
    blob = bytes(range(256)) * 10
    chunks = [NewChunk(ChunkKind.BYTES, blob), NewChunk(ChunkKind.VALUE, b"wk\x01j1")]
    await world.write_stream(run_id, "", chunks)
    page = await world.read_stream(run_id, "", 0)
    assert [(c.kind, c.data) for c in page.chunks] == [(c.kind, c.data) for c in chunks]


async def test_negative_start_counts_from_the_end(world: World) -> None:
    run_id = await started_run(world)
    await world.write_stream(run_id, "", text(*"abcde"))
    assert await read_all(world, run_id, start=-2) == ["d", "e"]
    assert await read_all(world, run_id, start=-10) == list("abcde")
    assert await read_all(world, run_id, start=7) == []


async def test_pages_respect_the_limit(world: World) -> None:
    run_id = await started_run(world)
    await world.write_stream(run_id, "", text(*[str(i) for i in range(10)]))
    page = await world.read_stream(run_id, "", 0, limit=4)
    assert [c.index for c in page.chunks] == [0, 1, 2, 3] and page.next_index == 4


async def test_close_ends_the_stream_and_refuses_writes(world: World) -> None:
    run_id = await started_run(world)
    await world.write_stream(run_id, "", text("last"), close=True)
    page = await world.read_stream(run_id, "", 0)
    assert page.done and [c.data for c in page.chunks] == [b"last"]
    await world.write_stream(run_id, "", [], close=True)  # closing again is harmless
    with pytest.raises(StreamClosedError, match="closed"):
        await world.write_stream(run_id, "", text("late"))
    # Other namespaces are independent.
    await world.write_stream(run_id, "other", text("still open"))


async def test_run_end_closes_every_stream(world: World) -> None:
    run_id = await started_run(world)
    await world.write_stream(run_id, "", text("a"))
    await world.append(run_id, [NewEvent(EventType.RUN_COMPLETED, payload=b"x")])
    page = await world.read_stream(run_id, "", 0)
    assert page.done and len(page.chunks) == 1
    # A stream nobody wrote is closed (and empty) too.
    assert (await world.read_stream(run_id, "never", 0)).done
    with pytest.raises(StreamClosedError, match="completed"):
        await world.write_stream(run_id, "", text("late"))
    assert all(i.closed for i in await world.list_streams(run_id))


async def test_unknown_run(world: World) -> None:
    with pytest.raises(WorkflowRunNotFoundError):
        await world.write_stream("wrun_missing", "", text("a"))
    with pytest.raises(WorkflowRunNotFoundError):
        await world.read_stream("wrun_missing", "", 0)


async def test_chunks_of_a_failed_attempt_are_hidden(world: World) -> None:
    run_id = await started_run(world)
    await start_step(world, run_id, "step_1", 1)
    await world.write_stream(run_id, "", text("first try"), writer=ChunkWriter("step_1", 1))
    assert await read_all(world, run_id) == ["first try"]  # live while the attempt runs
    retry = NewEvent(EventType.STEP_RETRYING, "step_1", b"err", {"attempt": 1, "retry_at": 0})
    await world.append(run_id, [retry])
    assert await read_all(world, run_id) == []
    await start_step(world, run_id, "step_1", 2)
    await world.write_stream(run_id, "", text("second try"), writer=ChunkWriter("step_1", 2))
    await world.append(run_id, [NewEvent(EventType.STEP_COMPLETED, "step_1", b"ok")])
    page = await world.read_stream(run_id, "", 0)
    assert [(c.index, c.data) for c in page.chunks] == [(1, b"second try")]
    assert await read_all(world, run_id, start=-1) == ["second try"]


async def test_chunks_of_an_abandoned_attempt_are_hidden(world: World) -> None:
    """A worker died mid-step: the step starts again with the next attempt number."""
    run_id = await started_run(world)
    await start_step(world, run_id, "step_1", 1)
    await world.write_stream(run_id, "", text("zombie"), writer=ChunkWriter("step_1", 1))
    await start_step(world, run_id, "step_1", 2)
    await world.write_stream(run_id, "", text("late zombie"), writer=ChunkWriter("step_1", 1))
    await world.write_stream(run_id, "", text("fresh"), writer=ChunkWriter("step_1", 2))
    assert await read_all(world, run_id) == ["fresh"]


async def test_chunks_of_a_finally_failed_step_are_hidden(world: World) -> None:
    run_id = await started_run(world)
    await start_step(world, run_id, "step_1", 1)
    await world.write_stream(run_id, "", text("doomed"), writer=ChunkWriter("step_1", 1))
    await world.append(run_id, [NewEvent(EventType.STEP_FAILED, "step_1", b"err")])
    assert await read_all(world, run_id) == []


async def test_concurrent_writers_get_dense_indexes(world: World) -> None:
    run_id = await started_run(world)

    async def writer(tag: str) -> None:
        for i in range(20):
            await world.write_stream(run_id, "", text(f"{tag}{i}"))

    await asyncio.gather(*(writer(t) for t in "abcd"))
    page = await world.read_stream(run_id, "", 0)
    assert [c.index for c in page.chunks] == list(range(80))
    for tag in "abcd":  # each writer's chunks keep their order
        mine = [c.data.decode() for c in page.chunks if c.data.decode().startswith(tag)]
        assert mine == [f"{tag}{i}" for i in range(20)]


async def test_stream_listeners_hear_writes_and_closes(world: World) -> None:
    run_id = await started_run(world)
    heard: list[StreamChange] = []
    got = threading.Event()

    def listener(changes: Sequence[StreamChange]) -> None:
        heard.extend(changes)
        got.set()

    unsubscribe = world.subscribe_streams(listener)
    try:
        await world.write_stream(run_id, "n", text("a", "b"))
        await asyncio.to_thread(got.wait, 5)
        assert StreamChange(run_id, "n", 2, False) in heard
        got.clear()
        await world.write_stream(run_id, "n", [], close=True)
        await asyncio.to_thread(got.wait, 5)
        assert StreamChange(run_id, "n", 2, True) in heard
    finally:
        unsubscribe()
