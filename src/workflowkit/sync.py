"""The client API for synchronous callers (Flask and Django views, scripts).

Mirrors ``workflowkit.api`` with blocking calls; the work runs on the runtime's own event
loop, so the caller never manages one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar

from . import api
from ._schedule_spec import UNCHANGED, Bound
from .context import refuse_in_workflow
from .queues import Queue
from .registry import Workflow
from .runtime.runtime import Runtime, get_runtime
from .streams import Readable
from .webhooks import Request, Response

P = ParamSpec("P")
R = TypeVar("R")

__all__ = [
    "Run",
    "create_schedule",
    "delete_schedule",
    "fork_run",
    "get_hook_by_token",
    "get_run",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_hook",
    "resume_schedule",
    "resume_webhook",
    "start",
    "trigger_schedule",
    "update_schedule",
]


class Run(Generic[R]):
    """A blocking handle on a workflow run; creating one does no I/O."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._run: api.Run[R] = api.Run(run_id)

    def __repr__(self) -> str:
        return f"Run({self.run_id!r})"

    def status(self) -> str:
        """``"pending" | "running" | "completed" | "failed" | "cancelled"``."""
        return _blocking("workflowkit.sync status()").call(self._run.status())

    def info(self) -> api.RunInfo:
        return _blocking("workflowkit.sync info()").call(self._run.info())

    def workflow_name(self) -> str:
        return _blocking("workflowkit.sync workflow_name()").call(self._run.workflow_name())

    def created_at(self) -> datetime:
        return _blocking("workflowkit.sync created_at()").call(self._run.created_at())

    def started_at(self) -> datetime | None:
        return _blocking("workflowkit.sync started_at()").call(self._run.started_at())

    def completed_at(self) -> datetime | None:
        return _blocking("workflowkit.sync completed_at()").call(self._run.completed_at())

    def return_value(self, timeout: float | None = None) -> R:
        """Block until the run ends; its return value (see ``workflowkit.api.Run.return_value``)."""
        return _blocking("workflowkit.sync return_value()").call(self._run.return_value(timeout))

    def cancel(self) -> None:
        """Cancel the run: no new steps start, in-flight step results are discarded."""
        _blocking("workflowkit.sync cancel()").call(self._run.cancel())

    def fail(self, reason: str | None = None) -> None:
        """End the run as failed (``RunFailedByOperatorError`` carrying ``reason``)."""
        _blocking("workflowkit.sync fail()").call(self._run.fail(reason))

    def wake_up(self, correlation_ids: Sequence[str] | None = None) -> list[str]:
        """End the run's pending sleeps now (all, or those named); the ids woken."""
        return _blocking("workflowkit.sync wake_up()").call(self._run.wake_up(correlation_ids))

    def get_readable(self, namespace: str | None = None, start_index: int = 0) -> ReadableSync:
        """The run's stream ``namespace`` as a blocking iterator (see ``api.Run.get_readable``)."""
        return ReadableSync(self._run.get_readable(namespace, start_index))

    @property
    def readable(self) -> ReadableSync:
        """The run's default stream from its start (see ``api.Run.readable``)."""
        return self.get_readable()


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
    run: api.Run[R] = _blocking("workflowkit.sync start()").call(
        api.start(workflow, *args, **kwargs)
    )
    return Run(run.run_id)


def fork_run(run_id: str, from_step: int) -> Run[Any]:
    """A new run reusing the run's first ``from_step`` steps (see ``api.fork_run``)."""
    run: api.Run[Any] = _blocking("workflowkit.sync fork_run()").call(
        api.fork_run(run_id, from_step)
    )
    return Run(run.run_id)


def get_run(run_id: str) -> Run[Any]:
    """A blocking handle on an existing run (no I/O; methods raise if it does not exist)."""
    refuse_in_workflow("workflowkit.sync get_run()")
    return Run(run_id)


def list_runs(
    *,
    workflow: Workflow[..., Any] | str | None = None,
    status: str | None = None,
    queue: str | Queue | None = None,
    key: str | None = None,
    parent_run_id: str | None = None,
    id_prefix: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before: str | None = None,
) -> list[api.RunInfo]:
    """Runs newest first, filtered (see ``workflowkit.api.list_runs``)."""
    runtime = _blocking("workflowkit.sync list_runs()")  # first: it refuses workflow code
    listing = api.list_runs(
        workflow=workflow,
        status=status,
        queue=queue,
        key=key,
        parent_run_id=parent_run_id,
        id_prefix=id_prefix,
        since=since,
        until=until,
        limit=limit,
        before=before,
    )
    return runtime.call(listing)


def _blocking(call: str) -> Runtime:
    """The runtime to block on; never in workflow code, which must not block its loop."""
    refuse_in_workflow(call)
    return get_runtime()


def resume_hook(token: str, payload: Any) -> api.HookInfo:
    """Deliver ``payload`` to the hook holding ``token`` (see ``workflowkit.api.resume_hook``)."""
    return _blocking("workflowkit.sync resume_hook()").call(api.resume_hook(token, payload))


def get_hook_by_token(token: str) -> api.HookInfo:
    """The active hook holding ``token``; ``HookNotFoundError`` if none does."""
    return _blocking("workflowkit.sync get_hook_by_token()").call(api.get_hook_by_token(token))


def resume_webhook(
    token: str, request: Request, *, response_timeout: float | None = None
) -> Response:
    """Deliver ``request`` to a webhook (see ``workflowkit.api.resume_webhook``)."""
    runtime = _blocking("workflowkit.sync resume_webhook()")
    return runtime.call(api.resume_webhook(token, request, response_timeout=response_timeout))


# -- schedules (see workflowkit.api for what each does) --------------------------------------


def create_schedule(
    schedule_id: str,
    workflow: Workflow[..., Any],
    *,
    cron: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    timezone: str = "UTC",
    catch_up: str = "none",
    overlap: str = "skip",
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> api.ScheduleInfo:
    """Start ``workflow`` on a cron schedule (``workflowkit.api.create_schedule``)."""
    coro = api.create_schedule(
        schedule_id,
        workflow,
        cron=cron,
        args=args,
        kwargs=kwargs,
        timezone=timezone,
        catch_up=catch_up,
        overlap=overlap,
        start_at=start_at,
        end_at=end_at,
    )
    return _blocking("workflowkit.sync create_schedule()").call(coro)


def get_schedule(schedule_id: str) -> api.ScheduleInfo:
    return _blocking("workflowkit.sync get_schedule()").call(api.get_schedule(schedule_id))


def list_schedules() -> list[api.ScheduleInfo]:
    return _blocking("workflowkit.sync list_schedules()").call(api.list_schedules())


def update_schedule(
    schedule_id: str,
    *,
    cron: str | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    catch_up: str | None = None,
    overlap: str | None = None,
    start_at: Bound = UNCHANGED,
    end_at: Bound = UNCHANGED,
) -> api.ScheduleInfo:
    """Change the fields given (``workflowkit.api.update_schedule``)."""
    coro = api.update_schedule(
        schedule_id,
        cron=cron,
        args=args,
        kwargs=kwargs,
        timezone=timezone,
        catch_up=catch_up,
        overlap=overlap,
        start_at=start_at,
        end_at=end_at,
    )
    return _blocking("workflowkit.sync update_schedule()").call(coro)


def pause_schedule(schedule_id: str) -> api.ScheduleInfo:
    return _blocking("workflowkit.sync pause_schedule()").call(api.pause_schedule(schedule_id))


def resume_schedule(schedule_id: str) -> api.ScheduleInfo:
    return _blocking("workflowkit.sync resume_schedule()").call(api.resume_schedule(schedule_id))


def delete_schedule(schedule_id: str) -> None:
    _blocking("workflowkit.sync delete_schedule()").call(api.delete_schedule(schedule_id))


def trigger_schedule(schedule_id: str) -> Run[Any]:
    """Start one run of the schedule now (``workflowkit.api.trigger_schedule``)."""
    run = _blocking("workflowkit.sync trigger_schedule()").call(api.trigger_schedule(schedule_id))
    return Run(run.run_id)
