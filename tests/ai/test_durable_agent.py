"""DurableAgent: model requests and tool calls as steps, retried, recorded, never repeated;
streaming to the run's stream; approvals through hooks. All offline, on FunctionModel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import ai_agents as app
import pytest
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from workflowkit import DurableAgentError
from workflowkit.ai import DurableAgent, approval_token
from workflowkit.api import Run, resume_hook, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook
from workflowkit.worlds.records import EventType


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    app.reset()
    yield
    app.reset()


async def step_labels(runtime: Runtime, run: Run[Any]) -> list[str]:
    events = await runtime.world.get_events(run.run_id)
    return [
        str(e.attrs.get("label") or e.attrs["name"])
        for e in events
        if e.type is EventType.STEP_CREATED
    ]


async def test_each_model_request_and_tool_call_is_a_step(runtime: Runtime) -> None:
    run = await start(app.ask, "weather in Paris,Oslo")
    assert await run.return_value(timeout=20) == "sunny in Paris; sunny in Oslo"
    assert await step_labels(runtime, run) == [
        "model request #1",
        "tool get_weather",
        "model request #2",
        "tool get_weather",
        "model request #3",
    ]
    # Replayed after every event in the replay mode, yet each request reached the model once.
    assert len(app.MODEL_CALLS) == 3
    assert app.TOOL_CALLS == ["Paris", "Oslo"]
    steps = {s.step_name for s in await runtime.world.list_steps(run.run_id)}
    assert steps == {"weather:model request", "weather:tool get_weather"}


async def test_an_agent_without_tools_makes_each_model_request_a_step(runtime: Runtime) -> None:
    run = await start(app.greet, ["Ada", "Bo"])
    assert await run.return_value(timeout=20) == "hello, Ada / hello, Bo"
    assert await step_labels(runtime, run) == ["model request #1", "model request #1"]
    assert len(app.MODEL_CALLS) == 2  # once each, though replayed after every event


async def test_outside_a_workflow_it_is_the_plain_agent() -> None:
    result = await app.durable.run("weather in Rome")
    assert result.output == "sunny in Rome"
    assert app.TOOL_CALLS == ["Rome"]


async def test_a_failing_model_request_is_retried_by_the_step_policy(runtime: Runtime) -> None:
    app.FAIL_FIRST_REQUEST[0] = True
    run = await start(app.ask, "hello")
    assert await run.return_value(timeout=20) == "echo: hello"
    events = await runtime.world.get_events(run.run_id)
    assert [e.type for e in events].count(EventType.STEP_RETRYING) == 1
    assert len(app.MODEL_CALLS) == 2  # the failed attempt and the retry


async def test_a_tool_asking_for_a_retry_goes_back_to_the_model_not_to_the_step_policy(
    runtime: Runtime,
) -> None:
    run = await start(app.ask, "weather in Atlantis")
    assert await run.return_value(timeout=20) == "no such city"
    events = await runtime.world.get_events(run.run_id)
    assert EventType.STEP_RETRYING not in [e.type for e in events]
    assert app.TOOL_CALLS == ["Atlantis"]


async def test_text_deltas_and_tool_events_stream_as_they_come(runtime: Runtime) -> None:
    run = await start(app.ask_streaming, "weather in Paris")
    chunks = [c async for c in run.get_readable()]
    assert await run.return_value(timeout=20) == "sunny in Paris"
    types = [c["type"] for c in chunks]
    assert types[:2] == ["tool-input-available", "tool-output-available"]
    assert types[-1] == "finish"
    assert chunks[0]["toolName"] == "get_weather" and chunks[0]["input"] == {"city": "Paris"}
    assert chunks[1]["output"] == "sunny in Paris"
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "sunny in Paris"
    assert len({c["id"] for c in chunks if c["type"] == "text-delta"}) == 1


@pytest.mark.parametrize("namespace", [None, "answers"])
async def test_stream_writes_the_output_to_the_default_stream_or_the_one_named(
    runtime: Runtime, namespace: str | None
) -> None:
    run = await start(app.ask_stream_method, "weather in Paris", namespace)
    chunks = [c async for c in run.get_readable(namespace)]
    assert await run.return_value(timeout=20) == "sunny in Paris"
    assert chunks[0]["type"] == "tool-input-available" and chunks[-1] == {"type": "finish"}
    text = "".join(c["delta"] for c in chunks if c["type"] == "text-delta")
    assert text == "sunny in Paris"
    if namespace is not None:
        assert [c async for c in run.get_readable()] == []


async def test_a_tool_needing_approval_waits_on_a_hook_and_runs_when_approved(
    runtime: Runtime,
) -> None:
    run = await start(app.ask_streaming, "book LH123")
    token = approval_token(run.run_id, "call-book")
    await wait_for_hook(run, token, timeout=20)
    assert app.TOOL_CALLS == []
    await resume_hook(token, {"approved": True})
    assert await run.return_value(timeout=20) == "booking: booked LH123"
    assert app.TOOL_CALLS == ["book LH123"]
    chunks = [c async for c in run.get_readable()]
    request = next(c for c in chunks if c["type"] == "tool-approval-request")
    assert (request["token"], request["toolName"]) == (token, "book_flight")


async def test_a_denial_goes_back_to_the_model_and_the_tool_never_runs(runtime: Runtime) -> None:
    run = await start(app.ask, "book LH123")
    token = approval_token(run.run_id, "call-book")
    await wait_for_hook(run, token, timeout=20)
    await resume_hook(token, {"approved": False, "message": "too expensive"})
    assert await run.return_value(timeout=20) == "booking: too expensive"
    assert app.TOOL_CALLS == []


async def test_a_test_model_agent_runs_durably(cached_runtime: Runtime) -> None:
    from workflowkit import workflow

    test_agent = DurableAgent(Agent(TestModel(custom_output_text="ok"), name="tm"))

    @workflow(name="ai.test_model")
    async def with_test_model() -> str:
        return str((await test_agent.run("hi")).output)

    run = await start(with_test_model)
    assert await run.return_value(timeout=20) == "ok"


def test_an_agent_without_a_name_is_refused() -> None:
    with pytest.raises(DurableAgentError, match="needs a name"):
        DurableAgent(Agent(TestModel()))


async def test_a_chat_session_answers_each_message_in_turn(runtime: Runtime) -> None:
    run = await start(app.chat, "hello")
    await wait_for_hook(run, run.run_id, timeout=20)
    chunks: list[dict[str, Any]] = []
    reader = run.get_readable()

    async def until_finishes(count: int) -> None:
        async for chunk in reader:
            chunks.append(chunk)
            if [c["type"] for c in chunks].count("finish") == count:
                return

    await asyncio.wait_for(until_finishes(1), 20)
    await resume_hook(run.run_id, {"message": "again"})
    await asyncio.wait_for(until_finishes(2), 20)
    await resume_hook(run.run_id, {"message": "/done"})
    assert await run.return_value(timeout=20) == 4  # two requests, two responses
    users = [c["data"]["text"] for c in chunks if c["type"] == "data-user-message"]
    assert users == ["hello", "again"]
