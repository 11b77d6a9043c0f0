"""``DurableAgent``: a pydantic-ai ``Agent`` whose model requests and tool calls are steps.

pydantic-ai's agent loop runs in workflow code, where it only decides; every model request
and tool call it makes goes through a step registered under a fixed durable name
(``"<name>:model request"``, ``"<name>:tool <tool>"``), so it is retried by the step policy,
recorded once and answered from the log on replay. What the loop itself reads of the world
(the clock for message timestamps, the run and conversation ids) is made deterministic for
the duration of the run. Outside workflow code ``DurableAgent.run`` is the plain agent's.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    FunctionToolset,
    _agent_graph,  # the graph an agent's runs share (_build_graph_aside)
)
from pydantic_ai._utils import (  # pydantic-ai's hooks for durable engines
    disable_threads,
    override_now_utc,
)
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model, infer_model
from pydantic_ai.run import AgentRunResult
from pydantic_ai.toolsets import AbstractToolset

from ..context import current_executor, get_workflow_metadata, in_workflow
from ..errors import DurableAgentError
from ..registry import Step, step
from ..streams import Writable, get_writable
from . import _approvals, _chunks
from ._model import DurableModel, request_in_step
from ._state import CURRENT, AgentRun
from ._toolset import DurableToolset, call_in_step

StreamTarget = Writable | str | bool | None


class DurableAgent:
    """Wraps ``agent`` so that, in workflow code, ``await durable.run(...)`` is durable.

    Create it at module level, next to the workflows that use it: its steps are registered
    when it is created, and a worker that resumes a run must have them. ``name`` (default:
    the agent's) prefixes the steps' durable names, so it must stay the same while runs
    that used it are alive. ``model_step`` and ``tool_step`` are ``@step`` options
    (``max_retries``) for the model-request and tool steps.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str | None = None,
        model_step: Mapping[str, Any] | None = None,
        tool_step: Mapping[str, Any] | None = None,
    ) -> None:
        self.agent = agent
        self.name = name or agent.name or ""
        if not self.name:
            raise DurableAgentError("a DurableAgent needs a name: DurableAgent(agent, name=...)")
        self._model: DurableModel | None = None
        self._request_step = step(name=f"{self.name}:model request", **(model_step or {}))(
            self._request
        )
        self._emit_step = step(name=f"{self.name}:stream")(_emit)
        self._toolsets = [self._durable(ts, dict(tool_step or {})) for ts in agent.toolsets]

    def __repr__(self) -> str:
        return f"<DurableAgent {self.name}>"

    def __getattr__(self, name: str) -> Any:
        """The wrapped agent's other API (``run_sync``, ``run_stream``, ``iter``,
        ``override``...), as it is outside workflow code; in workflow code the calls that
        would run the agent outside its steps are refused with what to call instead."""
        if name == "agent" or name.startswith("__"):  # not set yet, or a protocol probe
            raise AttributeError(name)
        if name in _UNSTEPPED and in_workflow():
            raise DurableAgentError(
                f"DurableAgent {self.name!r}: {name}() in workflow code would run the agent "
                "outside its steps: call `await durable.run(...)`, or `durable.stream(...)`"
            )
        return getattr(self.agent, name)

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        user_prompt: str | None = None,
        *,
        message_history: Sequence[ModelMessage] | None = None,
        deps: Any = None,
        stream: StreamTarget = None,
        **kwargs: Any,
    ) -> AgentRunResult[Any]:
        """Run the agent; in workflow code every model request and tool call is a step.

        ``stream``: ``True`` for the run's default stream, a namespace, or a handle from
        ``get_writable()``; the model's text and tool events are written there as they
        come (the chunk shapes are in ``workflowkit.ai``). Tools that need approval wait on
        a hook each; other keyword arguments go to ``Agent.run``.
        """
        if not in_workflow():
            return await self.agent.run(
                user_prompt, message_history=message_history, deps=deps, **kwargs
            )
        _refuse_run_options(self.name, kwargs)
        writable = _writable(stream)
        token = CURRENT.set(AgentRun(writable))
        try:
            result = await self._durable_run(user_prompt, message_history, deps, kwargs)
            if writable is not None:
                await self.emit(writable, [_chunks.FINISH], label="stream finish")
            return result
        finally:
            CURRENT.reset(token)

    async def stream(
        self,
        user_prompt: str | None = None,
        *,
        writable: Writable | str | None = None,
        message_history: Sequence[ModelMessage] | None = None,
        deps: Any = None,
        **kwargs: Any,
    ) -> AgentRunResult[Any]:
        """``run`` with its output streamed, as the reference's ``agent.stream()``: to
        ``writable`` (a handle from ``get_writable()`` or a namespace), by default to the
        run's default stream, ending with a ``finish`` chunk."""
        return await self.run(
            user_prompt,
            message_history=message_history,
            deps=deps,
            stream=True if writable is None else writable,
            **kwargs,
        )

    async def emit(self, stream: Writable, chunks: Sequence[Any], *, label: str = "stream") -> None:
        """Write ``chunks`` to ``stream`` from workflow code (one step)."""
        if chunks:
            await self._emit_step.labelled(label)(stream, list(chunks))

    async def _durable_run(
        self,
        user_prompt: str | None,
        history: Sequence[ModelMessage] | None,
        deps: Any,
        options: dict[str, Any],
    ) -> AgentRunResult[Any]:
        options.update(_output_type(self.agent, options.pop("output_type", None)))
        conversation_id = options.pop("conversation_id", None) or _conversation_of(history)
        agent_run_id = options.pop("run_id", None)
        run_id = get_workflow_metadata().workflow_run_id
        _build_graph_aside(self.agent)
        with ExitStack() as stack:
            stack.enter_context(override_now_utc(_workflow_now))
            # Sync callbacks (instructions, output functions) run inline, not on a thread,
            # which workflow code may not start; as pydantic-ai's Temporal integration does.
            stack.enter_context(disable_threads())
            stack.enter_context(self.agent.override(**self._overrides(options)))
            result = await self.agent.run(
                user_prompt,
                message_history=history,
                deps=deps,
                run_id=agent_run_id or str(uuid.uuid4()),  # uuid4 is seeded by the run
                conversation_id=conversation_id,
                **options,
            )
            while isinstance(result.output, DeferredToolRequests):
                settled = await _approvals.settle(result.output, run_id, self._emitter())
                result = await self.agent.run(
                    message_history=result.all_messages(),
                    deferred_tool_results=settled,
                    deps=deps,
                    run_id=str(uuid.uuid4()),
                    conversation_id=conversation_id,
                    **options,
                )
        return result

    def _overrides(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """What a run overrides on the agent: its model, and its toolsets by their wrappers.

        Not the toolsets when none of them has a tool step (an agent without tools) and they
        are still the agent's: the wrappers would pass every call through, and the override
        would cost time, since it adds an empty function toolset beside them and pydantic-ai
        runs each operation on a toolset with two children (listing tools, preparing a run
        step, collecting instructions) as a task per child: eight more tasks per request.
        """
        model = self._durable_model()
        toolsets = self.agent.toolsets
        if (
            "toolsets" not in options  # the override drops a run's own toolsets: keep that
            # no tools at all: one added after this was made needs the wrapper to refuse it
            and not any(durable.steps or durable.has_tools for durable in self._toolsets)
            and len(toolsets) == len(self._toolsets)
            and all(t is d.wrapped for t, d in zip(toolsets, self._toolsets, strict=True))
        ):
            return {"model": model}
        return {"model": model, "toolsets": self._toolsets, "tools": []}

    def _emitter(self) -> _approvals.Emit:
        run = CURRENT.get()
        stream = run.stream if run is not None else None

        async def emit(chunks: Sequence[Any]) -> None:
            if stream is not None:
                await self.emit(stream, chunks, label="stream approvals")

        return emit

    # -- the steps ---------------------------------------------------------------------------

    def _real_model(self) -> Model:
        if self.agent.model is None:
            raise DurableAgentError(f"agent {self.name!r} has no model")
        return infer_model(self.agent.model)

    def _durable_model(self) -> DurableModel:
        if self._model is None:
            self._model = DurableModel(self._real_model(), self._request_step)
        return self._model

    async def _request(
        self,
        messages: list[Any],
        settings: dict[str, Any] | None,
        params: dict[str, Any],
        stream: Writable | None,
    ) -> dict[str, Any]:
        model = self._model.wrapped if self._model is not None else self._real_model()
        return await request_in_step(model, messages, settings, params, stream)

    def _durable(self, toolset: AbstractToolset[Any], options: dict[str, Any]) -> DurableToolset:
        if not isinstance(toolset, FunctionToolset):
            raise DurableAgentError(
                f"agent {self.name!r}: only function tools can be made durable, not "
                f"{type(toolset).__name__}; call other toolsets from a function tool"
            )
        steps: dict[str, Step[Any, Any]] = {}
        for tool_name in toolset.tools:
            body = functools.partial(call_in_step, toolset, self.agent)
            functools.update_wrapper(body, call_in_step)
            steps[tool_name] = step(name=f"{self.name}:tool {tool_name}", **options)(body)
        return DurableToolset(toolset, steps)


async def _emit(stream: Writable, chunks: list[Any]) -> None:
    for chunk in chunks:
        await stream.write(chunk)


def _writable(stream: StreamTarget) -> Writable | None:
    if stream is None or stream is False:
        return None
    if stream is True:
        return get_writable()
    if isinstance(stream, str):
        return get_writable(stream)
    return stream


def _workflow_now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)  # the run's clock in workflow code


# The wrapped agent's ways to run that bypass the steps (``__getattr__`` refuses them in
# workflow code).
_UNSTEPPED = frozenset({"run_sync", "run_stream", "run_stream_events", "iter"})

# What a run may not change in workflow code, and what to do instead: its steps are made
# when the DurableAgent is, from the agent's model and tools.
_FIXED = {
    "model": "its model is the agent's: wrap another Agent for another model",
    "toolsets": "its tools are the agent's: give them to the Agent before wrapping it",
    "event_stream_handler": "its events stream with `stream=` (or `durable.stream()`)",
}


def _refuse_run_options(name: str, options: Mapping[str, Any]) -> None:
    for option, instead in _FIXED.items():
        if options.get(option) is not None:
            raise DurableAgentError(
                f"DurableAgent {name!r}: run({option}=...) in workflow code: {instead}"
            )


def _output_type(agent: Agent[Any, Any], given: Any) -> dict[str, Any]:
    """The run's ``output_type``: the one given, or the agent's, plus ``DeferredToolRequests``
    so that approvals end a run rather than fail it. None for an agent with output
    validators and no type given: pydantic-ai refuses a run's type next to them (its tools
    that need approval need ``DeferredToolRequests`` among the agent's own types then)."""
    if given is None and getattr(agent, "_output_validators", None):
        return {}
    output_type = given or agent.output_type
    types = list(output_type) if isinstance(output_type, list | tuple) else [output_type]
    return {
        "output_type": types if DeferredToolRequests in types else [*types, DeferredToolRequests]
    }


def _build_graph_aside(agent: Agent[Any, Any]) -> None:
    """pydantic-ai builds an agent's graph on its first run in a process, drawing ``uuid4``s:
    in workflow code those come from the run's seeded randomness, so a replay in a process
    that had built it already (or not) would draw other ids after it, and diverge. Build it
    here, then put the run's randomness back as it was."""
    executor = current_executor()
    if executor is None:
        return
    state = executor.random.getstate()
    try:
        _agent_graph.build_agent_graph(agent.name, agent.deps_type, agent.output_type)
    finally:
        executor.random.setstate(state)


def _conversation_of(history: Sequence[ModelMessage] | None) -> str:
    for message in reversed(history or ()):
        if getattr(message, "conversation_id", None):
            return str(message.conversation_id)
    return str(uuid.uuid4())
