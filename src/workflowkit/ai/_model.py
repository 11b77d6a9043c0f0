"""The model, as a workflow sees it: each request is a step that runs the real model.

In workflow code ``DurableModel.request`` calls the agent's model-request step with the
messages and parameters as JSON; the step (``request_in_step``) calls the real model,
streaming text to the run's stream when asked, and its recorded response is what replay
hands back. Outside workflow code the wrapper is transparent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.exceptions import ModelHTTPError, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from ..context import get_step_metadata, in_workflow
from ..errors import DurableAgentError, FatalError, RetryableError
from ..streams import Writable
from . import _chunks, _wire
from ._state import CURRENT

# The model-request step: (messages, settings, parameters, stream) -> response, all JSON.
RequestStep = Callable[..., Awaitable[dict[str, Any]]]
# Statuses worth another attempt; any other 4xx is the request's own fault.
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


class DurableModel(WrapperModel):
    def __init__(self, wrapped: Model, request_step: Any) -> None:
        super().__init__(wrapped)
        self._step = request_step

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        run = CURRENT.get()
        if run is None or not in_workflow():
            return await super().request(messages, model_settings, model_request_parameters)
        call = self._step.labelled(f"model request #{run.next_request()}")
        data = await call(
            _wire.dump_messages(messages),
            dict(model_settings) if model_settings else None,
            _wire.dump_params(model_request_parameters),
            run.stream,
        )
        return _wire.load_response(data)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        if CURRENT.get() is not None and in_workflow():
            raise DurableAgentError(
                "a durable agent streams through its steps: call `await durable.stream(...)` "
                "(or `durable.run(..., stream=True)`) in workflow code instead of run_stream(), "
                "iter() or an agent's event_stream_handler"
            )
        async with super().request_stream(
            messages, model_settings, model_request_parameters, run_context
        ) as streamed:
            yield streamed


async def request_in_step(
    model: Model,
    messages: list[Any],
    settings: dict[str, Any] | None,
    params: dict[str, Any],
    stream: Writable | None,
) -> dict[str, Any]:
    """The body of the model-request step: one real request, its response as JSON."""
    history = _wire.load_messages(messages)
    parameters = _wire.load_params(params)
    model_settings: Any = settings
    try:
        if stream is None:
            response = await model.request(history, model_settings, parameters)
        else:
            response = await _streamed(model, history, model_settings, parameters, stream)
    except ModelHTTPError as exc:
        raise _policy(exc) from exc
    except UserError as exc:
        raise FatalError(str(exc)) from exc  # a misconfiguration: retrying cannot help
    return _wire.dump_response(response)


async def _streamed(
    model: Model,
    history: list[ModelMessage],
    settings: Any,
    parameters: ModelRequestParameters,
    stream: Writable,
) -> ModelResponse:
    # The step id is stable across attempts, so a retried request's parts keep their ids;
    # what a failed attempt wrote is dropped from the stream.
    prefix = get_step_metadata().step_id
    async with model.request_stream(history, settings, parameters) as streamed:
        async for event in streamed:
            chunk = _chunks.from_model_event(event, prefix)
            if chunk is not None:
                await stream.write(chunk)
        response = streamed.get()
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            await stream.write(_chunks.tool_input(part))
    return response


def _policy(exc: ModelHTTPError) -> Exception:
    """A provider's HTTP error as the step's retry policy reads it."""
    if exc.status_code >= 500 or exc.status_code in _RETRYABLE_STATUS:
        return RetryableError(str(exc))
    return FatalError(str(exc))
