"""Tools, as a workflow sees them: each call is a step named for its tool.

``DurableToolset`` wraps one of the agent's function toolsets. In workflow code a call goes
to the tool's step with the arguments, the serializable part of the run context and the
run's ``deps``; the step (``call_in_step``) rebuilds the context and calls the real tool.
pydantic-ai steers its loop with exceptions a tool raises (``ModelRetry``, ``ToolFailed``,
and ``ApprovalRequired`` / ``CallDeferred`` for deferred tools): those cross the step as
values and are raised again in the workflow, so they reach pydantic-ai and are never taken
for a failed attempt to retry.
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.exceptions import ApprovalRequired, CallDeferred, ModelRetry, ToolFailed
from pydantic_ai.tools import RunContext
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, ToolsetTool, WrapperToolset

from ..context import in_workflow
from ..errors import DurableAgentError
from ..streams import Writable
from . import _chunks, _wire
from ._state import CURRENT


class DurableToolset(WrapperToolset[Any]):
    def __init__(self, wrapped: AbstractToolset[Any], steps: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self.steps = steps  # tool name -> its step

    @property
    def has_tools(self) -> bool:
        """Whether the toolset has any tool now, those added after its steps were made too."""
        return bool(getattr(self.wrapped, "tools", None))

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        run = CURRENT.get()
        step = self.steps.get(name)
        if run is None or not in_workflow():
            return await super().call_tool(name, tool_args, ctx, tool)
        if step is None:  # it would run in workflow code, again on every replay
            raise DurableAgentError(
                f"tool {name!r} was added to the agent after its DurableAgent was made, so "
                "it has no step: make the DurableAgent once every tool is registered"
            )
        outcome = await step.labelled(f"tool {name}")(
            name, tool_args, _wire.dump_context(ctx), ctx.deps, run.stream
        )
        return _raise_or_return(outcome)


def _raise_or_return(outcome: dict[str, Any]) -> Any:
    kind = outcome["kind"]
    if kind == "retry":
        raise ModelRetry(outcome["message"])
    if kind == "failed":
        raise ToolFailed(outcome["message"])
    if kind == "approval":
        raise ApprovalRequired(outcome["metadata"])
    if kind == "deferred":
        raise CallDeferred(outcome["metadata"])
    return outcome["value"]


async def call_in_step(
    toolset: FunctionToolset[Any],
    agent: Any,
    name: str,
    tool_args: dict[str, Any],
    context: dict[str, Any],
    deps: Any,
    stream: Writable | None,
) -> dict[str, Any]:
    """The body of a tool's step: the real call, its outcome as a value."""
    ctx = _wire.load_context(context, deps, agent)
    call_id = ctx.tool_call_id or ""
    tool = (await toolset.get_tools(ctx))[name]
    try:
        value = await toolset.call_tool(name, tool_args, ctx, tool)
    except ModelRetry as exc:
        if stream is not None:
            await stream.write(_chunks.tool_error(call_id, exc.message))
        return {"kind": "retry", "message": exc.message}
    except ToolFailed as exc:  # done, and failed: the model is told, nothing retries it
        if stream is not None:
            await stream.write(_chunks.tool_error(call_id, exc.message))
        return {"kind": "failed", "message": exc.message}
    except ApprovalRequired as exc:
        return {"kind": "approval", "metadata": exc.metadata}
    except CallDeferred as exc:
        return {"kind": "deferred", "metadata": exc.metadata}
    if stream is not None:
        await stream.write(_chunks.tool_output(call_id, value))
    return {"kind": "value", "value": value}
