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
from typing import Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from . import serde
from ._retry_policy import DEFAULT_RETRY, Retry, fixed_retry, step_timeout
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
from .errors import InvalidWorkflowFunctionError, SerializationError, StepOptionsError
from .queues import Queue
from .runtime.determinism import install_datetime_shim

P = ParamSpec("P")
R = TypeVar("R")
OnDivergence = Literal["park", "fail"]


def durable_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


class Workflow(Generic[P, R]):
    """An ``async def`` marked ``@workflow``; start it durably with ``workflowkit.api.start``.

    Called directly (or awaited inside another workflow) it runs inline, as plain code.
    """

    def __init__(
        self,
        fn: Callable[P, Coroutine[Any, Any, R]],
        name: str,
        queue: Queue | None = None,
        on_divergence: OnDivergence = "park",
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidWorkflowFunctionError(
                f"@workflow needs an `async def` function; {durable_name(fn)} is not one"
            )
        if queue is not None and not isinstance(queue, Queue):
            raise InvalidWorkflowFunctionError(
                f"@workflow(queue=...) takes a workflowkit.Queue, not {queue!r}"
            )
        if on_divergence not in ("park", "fail"):
            raise InvalidWorkflowFunctionError(
                f"@workflow(on_divergence=...) takes 'park' or 'fail', not {on_divergence!r}"
            )
        self.fn = fn
        self.name = name
        self.queue = queue  # the queue its runs join unless started with options(queue=)
        # A run whose log this code no longer replays: parked until other code comes, or failed.
        self.on_divergence: OnDivergence = on_divergence
        self.start_options: StartOptions = (
            NO_START_OPTIONS if queue is None else make_options(queue=queue.name)
        )
        self.schedules: tuple[StaticSchedule, ...] = ()  # from @workflow(schedule=...)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self.fn(*args, **kwargs)

    def options(
        self,
        *,
        run_id: str | None = None,
        on_conflict: OnConflict = "return",
        queue: Queue | str | None = None,
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
        ``queue`` (a ``Queue`` or its name), ``key``, ``priority``: where the run queues for
        flow control. ``delay`` or
        ``start_at``: the run stays pending until then. ``timeout``: the run fails with
        ``WorkflowTimeoutError`` once that long has passed since the start call.
        ``detached``: a child run that is not cancelled with its parent. Bad values raise
        ``StartOptionsError`` here.
        """
        bound = copy.copy(self)
        if isinstance(queue, Queue):
            queue = queue.name
        bound.start_options = make_options(
            run_id=run_id,
            on_conflict=on_conflict,
            queue=queue if queue is not None or self.queue is None else self.queue.name,
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

    def __init__(
        self,
        fn: Callable[P, R | Awaitable[R]],
        name: str,
        retry: Retry | None = None,
        timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        # None: the worker's default policy (``configure(retry=...)``), else DEFAULT_RETRY.
        self.retry = retry
        self.timeout = timeout  # seconds an attempt may run; None: no limit
        self.is_async = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    @property
    def max_retries(self) -> int:
        """How many times the step is retried at most (its policy's attempts, less one)."""
        return (self.retry or DEFAULT_RETRY).attempts - 1

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

    def labelled(self, label: str) -> LabelledStep[P, R]:
        """This step, shown as ``label`` in the run's trace (``"model request #3"``).

        The durable name stays the step's own, so replay and the step queue are unchanged;
        the label is recorded with the call for people reading the log.
        """
        return LabelledStep(self, label)


class LabelledStep(Generic[P, R]):
    """A step called under a label of its own; ``Step.labelled`` makes one."""

    __slots__ = ("label", "step")

    def __init__(self, step: Step[P, R], label: str) -> None:
        self.step = step
        self.label = label

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def fn(self) -> Callable[P, R | Awaitable[R]]:
        return self.step.fn

    @property
    def is_async(self) -> bool:
        return self.step.is_async

    @property
    def max_retries(self) -> int:
        return self.step.max_retries

    @property
    def retry(self) -> Retry | None:
        return self.step.retry

    @property
    def timeout(self) -> float | None:
        return self.step.timeout

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        executor = current_executor()
        if executor is None:
            return self.step(*args, **kwargs)
        return _result_of(executor.call_step(self, args, kwargs))


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


# Steps cross durable boundaries by reference, as in the reference implementation: the
# payload holds the durable name, and decoding looks it up among the steps this process
# registered (never importing anything).
def _encode_step(st: Step[Any, Any]) -> str:
    if REGISTRY.steps.get(st.name) is not st:
        raise SerializationError(
            f"step {st.name!r} is not the step registered under that name, so it cannot be "
            "passed by reference; define steps at module level with a unique name"
        )
    return st.name


def _decode_step(name: Any) -> Step[Any, Any]:
    found = REGISTRY.steps.get(name) if isinstance(name, str) else None
    if found is None:
        raise SerializationError(
            f"no step named {name!r} is registered in this process: import the module that "
            "defines it before the value is decoded"
        )
    return found


serde.register_tag("step", Step, encode=_encode_step, decode=_decode_step)


@overload
def workflow(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    queue: Queue | None = None,
    on_divergence: OnDivergence = "park",
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
    queue: Queue | None = None,
    on_divergence: OnDivergence = "park",
    schedule: str | list[str] | None = None,
    timezone: str = "UTC",
    catch_up: CatchUpName = DEFAULT_CATCH_UP,
    overlap: OverlapName = DEFAULT_OVERLAP,
) -> Workflow[P, R] | Callable[[Callable[P, Coroutine[Any, Any, R]]], Workflow[P, R]]:
    """Mark an ``async def`` as a workflow: ``@workflow`` or ``@workflow(name="orders.place")``.

    ``queue``: the ``Queue`` its runs join unless started with ``options(queue=...)``.
    ``on_divergence``: what happens to a run whose log the code no longer replays (a change
    deployed under it): ``"park"`` (it waits, running, for a worker with other code) or
    ``"fail"`` (it fails with ``ReplayDivergenceError``).
    ``schedule``: a cron expression (or a list of them) on which workers start a run, with
    the tick's time (an aware datetime) as its argument; ``timezone``, ``catch_up`` and
    ``overlap`` as for ``workflowkit.api.create_schedule``. A bad one raises
    ``InvalidScheduleError`` here.
    """

    def wrap(f: Callable[P, Coroutine[Any, Any, R]]) -> Workflow[P, R]:
        wf = Workflow(f, name or durable_name(f), queue, on_divergence)
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
def step(
    *,
    name: str | None = None,
    max_retries: int | None = None,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> StepDecorator: ...
def step(
    fn: Callable[P, Any] | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int | None = None,
    retry: Retry | None = None,
    timeout: Duration | None = None,
) -> Any:
    """Mark a function (``def`` or ``async def``) as a step.

    ``retry``: how a failing step is retried (a ``workflowkit.Retry``); ``max_retries=n`` is
    the short form, n retries one second apart. With neither, the worker's default policy
    applies (``workflowkit.configure(retry=...)``), else 3 retries one second apart.
    ``timeout``: how long one attempt may run (``"30s"``, seconds, ``timedelta``); past it
    the attempt fails with ``StepTimeoutError`` and is retried by the policy. Sync steps
    run in a thread pool. Bad options raise ``StepOptionsError`` here.
    """
    if retry is not None and max_retries is not None:
        raise StepOptionsError(
            "@step takes retry= or max_retries=, not both: max_retries=n is the short form "
            "of retry=Retry(attempts=n + 1, initial='1s', backoff=1)"
        )
    if retry is not None and not isinstance(retry, Retry):
        raise StepOptionsError(f"@step(retry=...) takes a workflowkit.Retry, not {retry!r}")
    policy = fixed_retry(max_retries) if max_retries is not None else retry
    seconds = step_timeout(timeout)

    def wrap(f: Callable[P, Any]) -> Step[P, Any]:
        st: Step[P, Any] = Step(f, name or durable_name(f), policy, seconds)
        REGISTRY.add_step(st)
        return st

    return wrap if fn is None else wrap(fn)
