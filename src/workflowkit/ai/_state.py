"""What one durable agent run carries through pydantic-ai's loop to the model and tools.

A context variable, because pydantic-ai calls the model and the tools for us: the tasks it
makes for parallel tool calls copy the context, so they all see the run's one record.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from ..streams import Writable


@dataclass(slots=True)
class AgentRun:
    """Mutable on purpose: ``requests`` counts the run's model requests, in workflow code,
    so their labels (``model request #3``) are the same on every replay."""

    stream: Writable | None
    requests: int = 0

    def next_request(self) -> int:
        self.requests += 1
        return self.requests


CURRENT: ContextVar[AgentRun | None] = ContextVar("workflowkit_agent_run", default=None)
