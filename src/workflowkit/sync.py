"""The client API for synchronous callers (Flask and Django views, scripts).

Mirrors ``workflowkit.api`` with blocking calls; the work runs on the runtime's own event
loop, so the caller never manages one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar

from . import api
from .registry import Workflow
from .runtime.runtime import get_runtime
from .streams import Readable
from .webhooks import Request, Response

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Run", "get_hook_by_token", "get_run", "resume_hook", "resume_webhook", "start"]


class Run(Generic[R]):
    """A blocking handle on a workflow run; creating one does no I/O."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._run: api.Run[R] = api.Run(run_id)

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"

    def status(self) -> str:
        """``"pending" | "running" | "completed" | "failed" | "cancelled"``."""
        return get_runtime().call(self._run.status())

    def info(self) -> api.RunInfo:
        return get_runtime().call(self._run.info())

    def workflow_name(self) -> str:
        return get_runtime().call(self._run.workflow_name())

    def created_at(self) -> datetime:
        return get_runtime().call(self._run.created_at())

    def started_at(self) -> datetime | None:
        return get_runtime().call(self._run.started_at())

    def completed_at(self) -> datetime | None:
        return get_runtime().call(self._run.completed_at())

    def return_value(self, timeout: float | None = None) -> R:
        """Block until the run ends; its return value (see ``workflowkit.api.Run.return_value``)."""
        return get_runtime().call(self._run.return_value(timeout))

    def cancel(self) -> None:
        """Cancel the run: no new steps start, in-flight step results are discarded."""
        get_runtime().call(self._run.cancel())

    def wake_up(self, correlation_ids: Sequence[str] | None = None) -> list[str]:
        """End the run's pending sleeps now (all, or those named); the ids woken."""
        return get_runtime().call(self._run.wake_up(correlation_ids))

    def get_readable(self, namespace: str | None = None, start_index: int = 0) -> ReadableSync:
        """The run's stream ``namespace`` as a blocking iterator (see ``api.Run.get_readable``)."""
        return ReadableSync(self._run.get_readable(namespace, start_index))


class ReadableSync:
    """Blocking iterator over a stream; ``index`` is where to resume after stopping."""

    def __init__(self, readable: Readable) -> None:
        self._readable = readable

    @property
    def index(self) -> int:
        return self._readable.index

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return get_runtime().call(self._readable.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        get_runtime().call(self._readable.aclose())


def start(workflow: Workflow[P, R], *args: P.args, **kwargs: P.kwargs) -> Run[R]:
    """Start a durable run and return at once."""
    run: api.Run[R] = get_runtime().call(api.start(workflow, *args, **kwargs))
    return Run(run.run_id)


def get_run(run_id: str) -> Run[Any]:
    """A blocking handle on an existing run (no I/O; methods raise if it does not exist)."""
    return Run(run_id)


def resume_hook(token: str, payload: Any) -> api.HookInfo:
    """Deliver ``payload`` to the hook holding ``token`` (see ``workflowkit.api.resume_hook``)."""
    return get_runtime().call(api.resume_hook(token, payload))


def get_hook_by_token(token: str) -> api.HookInfo:
    """The active hook holding ``token``; ``HookNotFoundError`` if none does."""
    return get_runtime().call(api.get_hook_by_token(token))


def resume_webhook(token: str, request: Request) -> Response:
    """Deliver ``request`` to a webhook (see ``workflowkit.api.resume_webhook``)."""
    return get_runtime().call(api.resume_webhook(token, request))
