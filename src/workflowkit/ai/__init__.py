"""Durable AI agents on pydantic-ai (the ``ai`` extra: ``pip install 'workflowkit[ai]'``).

``DurableAgent`` makes each model request and tool call of a pydantic-ai agent a step;
``chat_session`` runs a conversation as one long-running workflow. See ``docs/ai.md``.
"""

from ._agent import DurableAgent
from ._approvals import approval_token, result_token
from ._chat import chat_session, send_message

__all__ = ["DurableAgent", "approval_token", "chat_session", "result_token", "send_message"]
