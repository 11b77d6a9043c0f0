"""Deferred tool calls, settled by people: each waits on a hook in workflow code.

When a run ends on pydantic-ai's ``DeferredToolRequests`` (a tool that needs approval, or an
external tool), every call gets a hook whose token the stream announces; the decisions go
back to pydantic-ai as ``DeferredToolResults`` and the agent carries on. A hook wait holds
no memory: the run may be evicted and resumed in another process when the decision comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic_ai import DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied
from pydantic_ai.messages import ToolCallPart

from ..hooks import Hook, create_hook
from . import _chunks

Emit = Callable[[Sequence[_chunks.Chunk]], Awaitable[None]]


def approval_token(run_id: str, tool_call_id: str) -> str:
    """The hook token a tool call that needs approval waits on (it is also in the stream)."""
    return f"approval:{run_id}:{tool_call_id}"


def result_token(run_id: str, tool_call_id: str) -> str:
    """The hook token an external tool call waits on for its result."""
    return f"tool-result:{run_id}:{tool_call_id}"


async def settle(requests: DeferredToolRequests, run_id: str, emit: Emit) -> DeferredToolResults:
    """Wait for a decision on every approval and a result for every external call."""
    approvals = [
        (call, _hook(call, approval_token(run_id, call.tool_call_id)))
        for call in requests.approvals
    ]
    externals = [
        (call, _hook(call, result_token(run_id, call.tool_call_id))) for call in requests.calls
    ]
    await emit([_chunks.approval_request(call, hook.token) for call, hook in approvals])
    decisions = await asyncio.gather(*(_next(hook) for _, hook in approvals))
    outputs = await asyncio.gather(*(_next(hook) for _, hook in externals))
    results = DeferredToolResults()
    denied: list[_chunks.Chunk] = []
    for (call, _), decision in zip(approvals, decisions, strict=True):
        verdict = as_approval(decision)
        results.approvals[call.tool_call_id] = verdict
        if isinstance(verdict, ToolDenied):
            denied.append(_chunks.tool_denied(call.tool_call_id))
    for (call, _), output in zip(externals, outputs, strict=True):
        results.calls[call.tool_call_id] = (
            output.get("result") if isinstance(output, dict) else output
        )
    await emit(denied)
    return results


def _hook(call: ToolCallPart, token: str) -> Hook[Any]:
    return create_hook(token=token, metadata={"tool": call.tool_name, "input": call.args_as_dict()})


async def _next(hook: Hook[Any]) -> Any:
    with hook:  # one payload settles the call: the token is free again afterwards
        return await hook


def as_approval(decision: Any) -> ToolApproved | ToolDenied:
    """``True``/``False``, or ``{"approved": bool, "message": str, "args": {...}}``."""
    if isinstance(decision, dict):
        if decision.get("approved"):
            return ToolApproved(override_args=decision.get("args"))
        reason = decision.get("message") or decision.get("reason")
        return ToolDenied(reason) if reason else ToolDenied()
    return ToolApproved() if decision is True else ToolDenied()
