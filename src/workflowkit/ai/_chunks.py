"""The chunks a durable agent writes to its run's stream: plain dicts, JSON-shaped.

The shape follows the AI SDK's UI message stream (``type`` plus camelCase fields), so a
browser renders it with a few lines of JavaScript and an AI SDK client reads it as it is:

- ``{"type": "text-delta", "id": ..., "delta": "Hel"}``: model text as it arrives;
  ``"reasoning-delta"`` for thinking.
- ``{"type": "tool-input-available", "toolCallId", "toolName", "input"}``: the model called
  a tool.
- ``{"type": "tool-output-available", "toolCallId", "output"}`` /
  ``{"type": "tool-output-error", "toolCallId", "errorText"}``: the tool finished.
- ``{"type": "tool-approval-request", "toolCallId", "toolName", "input", "token"}``: the
  tool waits for ``resume_hook(token, {"approved": ...})``;
  ``{"type": "tool-output-denied", "toolCallId"}`` when it was denied.
- ``{"type": "data-user-message", "data": {"id", "text"}}``: a chat session's user turn.
- ``{"type": "finish"}``: the agent's turn is over.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import (
    ModelResponseStreamEvent,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
)

Chunk = dict[str, Any]


def from_model_event(event: ModelResponseStreamEvent, prefix: str) -> Chunk | None:
    """The chunk for one event of a model's response stream (None: nothing to show)."""
    part_id = f"{prefix}-{getattr(event, 'index', 0)}"
    if isinstance(event, PartStartEvent):
        if isinstance(event.part, TextPart) and event.part.content:
            return text_delta(part_id, event.part.content)
        if isinstance(event.part, ThinkingPart) and event.part.content:
            return {"type": "reasoning-delta", "id": part_id, "delta": event.part.content}
    elif isinstance(event, PartDeltaEvent):
        delta = event.delta
        if isinstance(delta, TextPartDelta) and delta.content_delta:
            return text_delta(part_id, delta.content_delta)
        if isinstance(delta, ThinkingPartDelta) and delta.content_delta:
            return {"type": "reasoning-delta", "id": part_id, "delta": delta.content_delta}
    return None


def text_delta(part_id: str, delta: str) -> Chunk:
    return {"type": "text-delta", "id": part_id, "delta": delta}


def tool_input(call: ToolCallPart) -> Chunk:
    return {
        "type": "tool-input-available",
        "toolCallId": call.tool_call_id,
        "toolName": call.tool_name,
        "input": call.args_as_dict(),
    }


def tool_output(tool_call_id: str, output: Any) -> Chunk:
    return {"type": "tool-output-available", "toolCallId": tool_call_id, "output": output}


def tool_error(tool_call_id: str, text: str) -> Chunk:
    return {"type": "tool-output-error", "toolCallId": tool_call_id, "errorText": text}


def approval_request(call: ToolCallPart, token: str) -> Chunk:
    return {**tool_input(call), "type": "tool-approval-request", "token": token}


def tool_denied(tool_call_id: str) -> Chunk:
    return {"type": "tool-output-denied", "toolCallId": tool_call_id}


def user_message(message_id: str, text: str) -> Chunk:
    return {"type": "data-user-message", "data": {"id": message_id, "text": text}}


FINISH: Chunk = {"type": "finish"}
