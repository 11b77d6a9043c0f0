"""A chat UI on a durable agent: one workflow per conversation, replies streamed, reloads resumed.

Run it: ``uvicorn examples.ai_chat.app:app`` and open http://127.0.0.1:8000. Without a key it
talks to a demo model (pydantic-ai's FunctionModel) that streams its answer word by word;
``CHAT_MODEL=openai:gpt-4o-mini`` (with ``OPENAI_API_KEY``) switches to a real provider.

- ``POST /api/chat`` starts a conversation (a ``chat`` run) with its first message; the run
  id is in the ``x-workflow-run-id`` header. The body is the run id as JSON for the page,
  and the run's stream as Server-Sent Events for a client that accepts them
  (``workflowkit.ai.WorkflowChatTransport``), as the reference's chat endpoint answers.
- ``POST /api/chat/{run_id}`` sends a follow-up message through the run's hook.
- ``GET /api/chat/{run_id}/stream`` is the run's stream as Server-Sent Events; each event's
  id is its index, so a dropped connection resumes with ``Last-Event-ID`` and a reloaded
  page with ``?start_index=``.

A message is ``{"message": text}`` (the page) or ``{"messages": [...]}``, UI messages of
which the last is the new one (``WorkflowChatTransport``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from workflowkit import workflow
from workflowkit.ai import DurableAgent, chat_session, send_message
from workflowkit.api import start
from workflowkit.http_streams import sse_response

PAGE = Path(__file__).with_name("page.html")
WORD_DELAY = float(os.environ.get("CHAT_DEMO_WORD_DELAY", "0.05"))


def demo_reply(prompt: str) -> str:
    """What the demo model answers: long enough to watch it stream."""
    words = " ".join(f"word{i}" for i in range(1, 31))
    return f"You said: {prompt}. Here is a streamed answer: {words}."


async def demo_stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
    prompts = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, UserPromptPart)
    ]
    words = demo_reply(str(prompts[-1])).split(" ")
    for index, word in enumerate(words):
        await asyncio.sleep(WORD_DELAY)
        yield word if index == len(words) - 1 else word + " "


demo_model = FunctionModel(stream_function=demo_stream, model_name="demo")
agent = Agent(os.environ.get("CHAT_MODEL") or demo_model, name="chat-assistant")
assistant = DurableAgent(agent)


@workflow(name="ai_chat.conversation")
async def conversation(first_message: str) -> int:
    history = await chat_session(assistant, first_message)
    return len(history)


app = FastAPI()


@app.get("/")
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text())


def message_text(body: dict[str, Any]) -> str:
    if "messages" not in body:
        return str(body["message"])
    parts = body["messages"][-1].get("parts", [])
    return "".join(str(part.get("text", "")) for part in parts if part.get("type") == "text")


@app.post("/api/chat")
async def new_chat(request: Request, body: dict[str, Any]) -> Response:
    run = await start(conversation, message_text(body))
    headers = {"x-workflow-run-id": run.run_id}
    if "text/event-stream" not in request.headers.get("accept", ""):
        return JSONResponse({"runId": run.run_id}, headers=headers)
    response = await sse_response(request, run.run_id)
    response.headers.update(headers)
    return response


@app.post("/api/chat/{run_id}")
async def follow_up(run_id: str, body: dict[str, Any]) -> Response:
    await send_message(run_id, message_text(body))
    return JSONResponse({"ok": True}, headers={"x-workflow-run-id": run_id})


@app.get("/api/chat/{run_id}/stream")
async def stream(request: Request, run_id: str) -> Response:
    return await sse_response(request, run_id)
