"""``@workflow`` and ``@step``, and the registry that maps durable names to functions.

The registry is the one piece of process-wide mutable state: a worker finds the code for a
run by the workflow's durable name, which defaults to ``module:qualname``.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from ._schedule_spec import (
    DEFAULT_CATCH_UP,
    DEFAULT_OVERLAP,
    CatchUpName,
    OverlapName,
    StaticSchedule,
    static_schedules,
)
from ._start_options import NO_START_OPTIONS, OnConflict, StartOptions, make_options
from .context import current_executor
from .durations import Duration
from .errors import InvalidWorkflowFunctionError
from .runtime.determinism import install_datetime_shim

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_MAX_RETRIES = 3


def durable_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


class Workflow(Generic[P, R]):
    """An ``async def`` marked ``@workflow``; start it durably with ``workflowkit.api.start``.

    Called directly (or awaited inside another workflow) it runs inline, as plain code.
    """

    def __init__(self, fn: Callable[P, Coroutine[Any, Any, R]], name: str) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidWorkflowFunctionError(
                f"@workflow needs an `async def` function; {durable_name(fn)} is not one"
            )
        self.fn = fn
        self.name = name
        self.start_options: StartOptions = NO_START_OPTIONS
        self.schedules: tuple[StaticSchedule, ...] = ()  # from @workflow(schedule=...)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        run_id: str | None = None,
        on_conflict: OnConflict = "return",
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
        delay: Duration | None = None,
        start_at: datetime | None = None,
        timeout: Duration | None = None,
        detached: bool = False,
    ) -> Workflow[P, R]:
        """This workflow, bound to start options: ``start(wf.options(run_id=...), *args)``.

        ``run_id``: the run's id; starting again with it returns the existing run, whatever
        its state (``on_conflict="error"``: raise ``WorkflowRunAlreadyExistsError``).
        ``queue``, ``key``, ``priority``: where the run queues for flow control. ``delay`` or
        ``start_at``: the run stays pending until then. ``timeout``: the run fails with
        ``WorkflowTimeoutError`` once that long has passed since the start call.
        ``detached``: a child run that is not cancelled with its parent. Bad values raise
        ``StartOptionsError`` here.
        """
        bound = copy.copy(self)
        bound.start_options = make_options(
            run_id=run_id,
            on_conflict=on_conflict,
            queue=queue,
            key=key,
            priority=priority,
            delay=delay,
            start_at=start_at,
            timeout=timeout,
            detached=detached,
        )
        return bound

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"


class Step(Generic[P, R]):
    """A function marked ``@step``: durable, retried and recorded when called in a workflow.

    Outside a workflow it is a plain call (that is how its unit tests call it).
    """

    def __init__(self, fn: Callable[P, R | Awaitable[R]], name: str, max_retries: int) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be zero or more")
        self.fn = fn
        self.name = name
        self.max_retries = max_retries
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        executor = current_executor()
        if executor is None:
            return self.fn(*args, **kwargs)  # type: ignore[return-value]
        # A coroutine, not the bare future, so create_task() and TaskGroup accept it; the
        # operation is registered now, at call time, which keeps numbering deterministic.
        return _result_of(executor.call_step(self, args, kwargs))

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        # Steps defined as methods bind like functions do.
        if instance is None:
            return self
        return functools.partial(self.__call__, instance)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<step {self.name}>"


async def _result_of(future: Awaitable[R]) -> R:
    return await future


class Registry:
    """Workflows and steps by durable name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.workflows: dict[str, Workflow[Any, Any]] = {}
        self.steps: dict[str, Step[Any, Any]] = {}

    def add_workflow(self, wf: Workflow[Any, Any]) -> None:
        with self._lock:
            self.workflows[wf.name] = wf

    def add_step(self, st: Step[Any, Any]) -> None:
        with self._lock:
            self.steps[st.name] = st

    def workflow(self, name: str) -> Workflow[Any, Any] | None:
        return self.workflows.get(name)


REGISTRY = Registry()


@overload
def workflow(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    schedule: str | list[str] | None = None,
    timezone: str = "UTC",
    catch_up: CatchUpName = DEFAULT_CATCH_UP,
    overlap: OverlapName = DEFAULT_OVERLAP,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]: ...
def workflow(
    fn: Callable[P, Coroutine[Any, Any, R]] | None = None,
    /,
    *,
    name: str | None = None,
    schedule: str | list[str] | None = None,
    timezone: str = "UTC",
    catch_up: CatchUpName = DEFAULT_CATCH_UP,
    overlap: OverlapName = DEFAULT_OVERLAP,
) -> Workflow[P, R] | Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]:
    """Mark an ``async def`` as a workflow: ``@workflow`` or ``@workflow(name="orders.place")``.

    ``schedule``: a cron expression (or a list of them) on which workers start a run, with
    the tick's time (an aware datetime) as its argument; ``timezone``, ``catch_up`` and
    ``overlap`` as for ``workflowkit.api.create_schedule``. A bad one raises
    ``InvalidScheduleError`` here.
    """

    def wrap(f: Callable[P, Coroutine[Any, Any, R]]) -> Workflow[P, R]:
        wf = Workflow(f, name or durable_name(f))
        wf.schedules = static_schedules(wf.name, schedule, timezone, catch_up, overlap)
        install_datetime_shim(f)
        REGISTRY.add_workflow(wf)
        return wf

    return wrap if fn is None else wrap(fn)


class StepDecorator(Protocol):
    """What ``@step(...)`` with options returns: typed like the bare decorator."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(fn: Callable[P, Awaitable[R]], /) -> Step[P, R]: ...
@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(*, name: str | None = None, max_retries: int = DEFAULT_MAX_RETRIES) -> StepDecorator: ...
def step(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Any:
    """Mark a function (``def`` or ``async def``) as a step.

    ``max_retries`` (default 3) is how many times a failing step is retried, so it runs at
    most ``max_retries + 1`` times. Sync steps run in a thread pool.
    """

    def wrap(f: Callable[P, Any]) -> Step[P, Any]:
        st: Step[P, Any] = Step(f, name or durable_name(f), max_retries)
        REGISTRY.add_step(st)
        return st

    return wrap if fn is None else wrap(fn)
