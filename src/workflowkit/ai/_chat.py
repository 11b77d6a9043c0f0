"""A chat session: one long-running workflow per conversation.

The workflow owns the conversation. It waits on a hook for each user message (its token is
the run id unless told otherwise), writes a ``data-user-message`` marker and the agent's
reply to the run's stream, and keeps the history in memory, which replay rebuilds from the
log. Clients send with ``send_message`` and read the stream by index, so a reload or a
dropped connection resumes where it left off (the role of the reference's
``WorkflowChatTransport``).
"""

from __future__ import annotations

from typing import Any

from pydantic_ai.messages import ModelMessage

from ..api import resume_hook
from ..context import get_workflow_metadata
from ..hooks import create_hook
from ..streams import get_writable
from . import _chunks
from ._agent import DurableAgent

END = "/done"


async def chat_session(
    agent: DurableAgent,
    first_message: str | None = None,
    *,
    token: str | None = None,
    namespace: str | None = None,
    end: str = END,
    **run_options: Any,
) -> list[ModelMessage]:
    """Workflow code: answer messages until one equals ``end``; returns the history.

    Messages arrive as ``{"message": text}`` on the hook ``token`` (default: the run id);
    messages sent while the agent works wait their turn, in order.
    """
    token = token or get_workflow_metadata().workflow_run_id
    stream = get_writable(namespace)
    history: list[ModelMessage] = []
    turn = 0
    with create_hook(token=token) as inbox:
        message = first_message
        while True:
            if message is None:
                message = _text(await inbox)
            if message == end:
                return history
            turn += 1
            marker = _chunks.user_message(f"user-{turn}", message)
            await agent.emit(stream, [marker], label=f"user message #{turn}")
            result = await agent.run(message, message_history=history, stream=stream, **run_options)
            history = result.all_messages()
            message = None


async def send_message(token: str, text: str) -> None:
    """Client side: hand ``text`` to the chat session waiting on ``token`` (its run id)."""
    await resume_hook(token, {"message": text})


def _text(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message", ""))
    return str(payload)
