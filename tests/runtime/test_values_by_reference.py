"""Streams and steps as values: a Readable or a stream handle returned from a step or passed to
one, a step function passed as an argument, and a step called under a label of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workflowkit import Readable, SerializationError, Writable, get_writable, serde, step, workflow
from workflowkit.api import get_run, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.web.timeline import build


@step(name="values.produce")
async def produce(words: list[str]) -> Readable:
    """Writes to a stream of its own run and hands back a reader of it, from the start."""
    writer = get_writable("words")
    for word in words:
        await writer.write(word)
    await writer.close()
    return get_run(writer.run_id).get_readable("words")


@step(name="values.consume")
async def consume(reader: Readable) -> list[Any]:
    return [chunk async for chunk in reader]


@step(name="values.hand_over")
async def hand_over(handle: Writable) -> Writable:
    return handle


@workflow(name="values.pipeline")
async def pipeline(words: list[str]) -> dict[str, Any]:
    reader = await produce(words)
    handle = await hand_over(get_writable("out"))
    return {"read": await consume(reader), "reader": reader, "handle": handle}


async def test_a_reader_returned_by_one_step_is_read_by_another_and_by_the_client(
    runtime: Runtime,
) -> None:
    run = await start(pipeline, ["a", "b", "c"])
    result = await run.return_value(timeout=20)
    assert result["read"] == ["a", "b", "c"]
    assert result["handle"] == Writable(run.run_id, "out")
    # The run's result holds a reader too: the client iterates it through its own World.
    reader = result["reader"]
    assert isinstance(reader, Readable)
    assert [chunk async for chunk in reader] == ["a", "b", "c"]


async def test_a_reader_keeps_its_position() -> None:
    reader = Readable(None, "wrun_x", "n", 7)
    copy = serde.decode(serde.encode(reader))
    assert (copy.run_id, copy.name, copy.index) == ("wrun_x", "n", 7)


@step(name="values.double")
def double(x: int) -> int:
    return 2 * x


@step(name="values.apply")
async def apply(fn: Any, x: int) -> int:
    # Outside a workflow a step is a plain call: the step received here runs inline.
    return int(await fn(x)) if asyncio.iscoroutinefunction(fn.fn) else int(fn(x))


@workflow(name="values.apply_flow")
async def apply_flow(x: int) -> int:
    return await apply(double, x)


async def test_a_step_function_passes_to_a_step_by_reference(runtime: Runtime) -> None:
    run = await start(apply_flow, 21)
    assert await run.return_value(timeout=20) == 42
    assert serde.decode(serde.encode(double)) is double


def not_a_step(x: int) -> int:
    return x


def test_a_plain_function_is_refused_with_a_clear_error() -> None:
    with pytest.raises(SerializationError, match=r"only functions marked @step"):
        serde.encode([not_a_step], path="args")


def test_an_unknown_step_name_is_refused_on_decode() -> None:
    data = serde.encode(double).replace(b"values.double", b"values.nope!!")
    with pytest.raises(SerializationError, match=r"no step named 'values\.nope!!'"):
        serde.decode(data)


@workflow(name="values.labelled")
async def labelled(x: int) -> int:
    first = await double.labelled("double #1")(x)
    return await double.labelled("double #2")(first)


async def test_a_labelled_call_is_shown_by_its_label_and_replays_by_name(
    runtime: Runtime,
) -> None:
    run = await start(labelled, 3)
    assert await run.return_value(timeout=20) == 12
    world = runtime.world
    record = await world.get_run(run.run_id)
    assert record is not None
    events = await world.get_events(run.run_id)
    bars = build(record, events, record.created_at).bars
    assert [bar.label for bar in bars if bar.kind == "step"] == ["double #1", "double #2"]
