"""What crosses a step boundary for an agent: messages, request parameters, run contexts.

pydantic-ai's own types are dumped to JSON-shaped data with its type adapters, so the event
log holds readable JSON (the dashboard shows it) and decoding needs no class of ours.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic_ai.durable_exec import DurabilityEngineSpec, DurableRunContext
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import RunContext

_PARAMS: TypeAdapter[ModelRequestParameters] = TypeAdapter(ModelRequestParameters)
_RESPONSE: TypeAdapter[ModelResponse] = TypeAdapter(ModelResponse)

# How pydantic-ai words errors about what a tool step cannot see of its run.
ENGINE = DurabilityEngineSpec(
    engine_name="workflowkit", durable_unit_noun="step", durable_container_noun="workflow"
)


def dump_messages(messages: list[ModelMessage]) -> list[Any]:
    return ModelMessagesTypeAdapter.dump_python(messages, mode="json")  # type: ignore[no-any-return]


def load_messages(data: list[Any]) -> list[ModelMessage]:
    return ModelMessagesTypeAdapter.validate_python(data)


def dump_params(params: ModelRequestParameters) -> dict[str, Any]:
    return _PARAMS.dump_python(params, mode="json")  # type: ignore[no-any-return]


def load_params(data: dict[str, Any]) -> ModelRequestParameters:
    return _PARAMS.validate_python(data)


def dump_response(response: ModelResponse) -> dict[str, Any]:
    return _RESPONSE.dump_python(response, mode="json")  # type: ignore[no-any-return]


def load_response(data: dict[str, Any]) -> ModelResponse:
    return _RESPONSE.validate_python(data)


def dump_context(ctx: RunContext[Any]) -> dict[str, Any]:
    """The run context a tool sees, minus ``deps`` (passed beside it) and live objects."""
    data = DurableRunContext.serialize_run_context(ctx)
    # pydantic-ai's internal capabilities carry per-instance ids ("<pending_message_drain_
    # capability:6bd593>") that differ in every process: step arguments must replay equal.
    data["active_capability_ids"] = {
        cid for cid in data.get("active_capability_ids", ()) if not cid.startswith("<")
    }
    return data


def load_context(data: dict[str, Any], deps: Any, agent: Any) -> RunContext[Any]:
    return DurableRunContext.restore(data, deps=deps, agent=agent, engine_spec=ENGINE)
