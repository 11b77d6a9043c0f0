"""Durable AI agents on pydantic-ai (the ``ai`` extra: ``pip install 'workflowkit[ai]'``).

``DurableAgent`` makes each model request and tool call of a pydantic-ai agent a step;
``chat_session`` runs a conversation as one long-running workflow;
``WorkflowChatTransport`` is a client for such a chat over HTTP (it needs httpx too: the
``http`` extra). See ``docs/ai.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ChatTransportError
from ._agent import DurableAgent
from ._approvals import approval_token, result_token
from ._chat import chat_session, send_message

if TYPE_CHECKING:
    from ._transport import ReconnectToStreamRequest, SendMessagesRequest, WorkflowChatTransport

# Imported on first use: they need httpx, which the ``ai`` extra does not bring.
_TRANSPORT = ("ReconnectToStreamRequest", "SendMessagesRequest", "WorkflowChatTransport")


def __getattr__(name: str) -> Any:
    if name in _TRANSPORT:
        from . import _transport

        return getattr(_transport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ChatTransportError",
    "DurableAgent",
    "ReconnectToStreamRequest",
    "SendMessagesRequest",
    "WorkflowChatTransport",
    "approval_token",
    "chat_session",
    "result_token",
    "send_message",
]
