"""Agents and workflows for the AI tests, on pydantic-ai's FunctionModel: no network, no key.

The model answers from the conversation so far (never from a call count), so a replayed or
re-run request gets the answer the first one got; ``MODEL_CALLS`` counts real requests.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from workflowkit import workflow
from workflowkit.ai import DurableAgent, chat_session

MODEL_CALLS: list[int] = []  # the number of messages each real request saw
TOOL_CALLS: list[str] = []
FAIL_FIRST_REQUEST: list[bool] = [False]


def returns(messages: list[ModelMessage]) -> list[ToolReturnPart | RetryPromptPart]:
    return [
        part
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart | RetryPromptPart)
    ]


def prompt_of(messages: list[ModelMessage]) -> str:
    """The latest user prompt."""
    texts = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]
    return str(texts[-1]) if texts else ""


def plan(messages: list[ModelMessage]) -> ModelResponse:
    """Weather questions call ``get_weather`` per city, then answer from the results."""
    if FAIL_FIRST_REQUEST[0] and not MODEL_CALLS[:-1]:
        raise ModelHTTPError(503, "function-model", "overloaded")
    done = returns(messages)
    prompt = prompt_of(messages)
    if prompt.startswith("book "):
        if not done:
            return ModelResponse(
                parts=[ToolCallPart("book_flight", {"flight": prompt[5:]}, "call-book")]
            )
        return ModelResponse(parts=[TextPart(f"booking: {done[-1].content}")])
    cities = (
        [c for c in prompt.removeprefix("weather in ").split(",") if c]
        if "weather" in prompt
        else []
    )
    step = len([m for m in messages if isinstance(m, ModelResponse)])
    if step < len(cities) and len(done) == step:
        city = cities[step]
        return ModelResponse(parts=[ToolCallPart("get_weather", {"city": city}, f"call-{step}")])
    if cities:
        return ModelResponse(parts=[TextPart("; ".join(str(p.content) for p in done))])
    return ModelResponse(parts=[TextPart(f"echo: {prompt}")])


def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    MODEL_CALLS.append(len(messages))
    return plan(messages)


async def respond_streaming(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    MODEL_CALLS.append(len(messages))
    response = plan(messages)
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            args = json.dumps(part.args)
            yield {0: DeltaToolCall(part.tool_name, args, tool_call_id=part.tool_call_id)}
        elif isinstance(part, TextPart):
            words = part.content.split(" ")
            for index, word in enumerate(words):
                yield word if index == len(words) - 1 else word + " "


model = FunctionModel(respond, stream_function=respond_streaming)
agent = Agent(model, name="weather")


@agent.tool_plain
def get_weather(city: str) -> str:
    TOOL_CALLS.append(city)
    if city == "Atlantis":
        raise ModelRetry("no such city")
    return f"sunny in {city}"


@agent.tool(requires_approval=True)
def book_flight(ctx: RunContext[None], flight: str) -> str:
    TOOL_CALLS.append(f"book {flight}")
    return f"booked {flight}"


durable = DurableAgent(agent)


@workflow(name="ai.ask")
async def ask(prompt: str) -> str:
    result = await durable.run(prompt)
    return str(result.output)


@workflow(name="ai.ask_streaming")
async def ask_streaming(prompt: str) -> str:
    result = await durable.run(prompt, stream=True)
    return str(result.output)


@workflow(name="ai.ask_stream_method")
async def ask_stream_method(prompt: str, namespace: str | None) -> str:
    result = await durable.stream(prompt, writable=namespace)
    return str(result.output)


@workflow(name="ai.chat")
async def chat(first: str) -> int:
    history = await chat_session(durable, first)
    return len(history)


# -- an agent without tools: a run keeps its own toolsets, the request is still a step ----


def _greet(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    MODEL_CALLS.append(len(messages))
    return ModelResponse(parts=[TextPart(f"hello, {prompt_of(messages)}")])


toolless = DurableAgent(Agent(FunctionModel(_greet), name="greeter"))


@workflow(name="ai.greet")
async def greet(names: list[str]) -> str:
    return " / ".join([str((await toolless.run(name)).output) for name in names])


# -- the crash test: a model whose requests leave files, and that stops at a marker --------

crash_agent = Agent(FunctionModel(lambda m, i: _crash_respond(m)), name="crashy")


@crash_agent.tool_plain
def lookup(city: str) -> str:
    return f"{city} looked up"


crash_durable = DurableAgent(crash_agent)


def _crash_respond(messages: list[ModelMessage]) -> ModelResponse:
    directory = Path(os.environ["WK_AI_CRASH_DIR"])
    (directory / f"request.{len(messages)}.{os.getpid()}.{time.monotonic_ns()}").write_text("x")
    requests = len([m for m in messages if isinstance(m, ModelResponse)]) + 1
    if requests == 3 and not (directory / "killed").exists():
        (directory / "at-third-request").write_text("x")
        time.sleep(60)
    if requests <= 2:
        return ModelResponse(
            parts=[ToolCallPart("lookup", {"city": f"c{requests}"}, f"call-{requests}")]
        )
    return ModelResponse(parts=[TextPart("done after three requests")])


@workflow(name="ai.crash")
async def crash_run(prompt: str) -> str:
    return str((await crash_durable.run(prompt)).output)


def reset() -> None:
    MODEL_CALLS.clear()
    TOOL_CALLS.clear()
    FAIL_FIRST_REQUEST[0] = False
