"""Where code is running: inside workflow code, inside a step, or neither.

Workflow code only ever runs while the runtime steps a run's loop on one thread, so a
thread-local marks it exactly, holding the run's executor. Step code runs in tasks and
threads of its own and carries its metadata in a context variable.

This module sits below everything workflow code calls into (the registry, the determinism
shims, streams, ``sleep``) and below the runtime that answers those calls, so it knows the
executor only as the ``WorkflowExecutor`` protocol: what those callers need of it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ClientCallInWorkflowError, NotInWorkflowError
from .worlds.base import World

if TYPE_CHECKING:
    from ._retry_policy import Retry


@dataclass(frozen=True, slots=True)
class WorkflowMetadata:
    workflow_run_id: str
    workflow_name: str
    workflow_started_at: datetime
    url: str


@dataclass(frozen=True, slots=True)
class StepMetadata:
    step_id: str
    step_name: str
    attempt: int
    started_at: datetime
    workflow: WorkflowMetadata
    world: World | None = field(default=None, repr=False, compare=False)

    @property
    def step_started_at(self) -> datetime:
        """``started_at`` under the reference's name (``stepStartedAt``)."""
        return self.started_at


class DurableStep(Protocol):
    """A step as the runtime runs it: ``registry.Step`` is one."""

    @property
    def name(self) -> str: ...

    @property
    def fn(self) -> Callable[..., Any]: ...

    @property
    def is_async(self) -> bool: ...

    @property
    def retry(self) -> Retry | None:
        """Its retry policy; None: the worker's default."""
        ...

    @property
    def timeout(self) -> float | None:
        """Seconds one attempt may run; None: no limit."""
        ...


class WorkflowExecutor(Protocol):
    """The executor of the run whose workflow code this thread is running, as the code it
    calls sees it. ``runtime.executor.RunExecutor`` implements it."""

    @property
    def metadata(self) -> WorkflowMetadata: ...

    @property
    def replaying(self) -> bool:
        """Whether the code is re-running what it ran before (replay from the log)."""
        ...

    @property
    def random(self) -> random.Random:
        """Seeded by the run: what the ``random`` module answers in workflow code."""
        ...

    def now(self) -> float:
        """The run's virtual time: what ``time.time()`` answers in workflow code."""
        ...

    def call_step(
        self, step: DurableStep, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Awaitable[Any]: ...

    def start_child(
        self, workflow: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Awaitable[str]:
        """Start a child run of ``workflow`` (a ``registry.Workflow``); its run id."""
        ...

    def child_outcome(self, run_id: str) -> Awaitable[Any]:
        """The return value of a child run this run started (its error, raised)."""
        ...

    def patched(self, change_id: str) -> bool:
        """Whether the run takes the new branch of ``change_id`` (``workflowkit.patched``)."""
        ...


class _Local(threading.local):
    executor: WorkflowExecutor | None = None


_local = _Local()
_step: ContextVar[StepMetadata | None] = ContextVar("workflowkit_step", default=None)


def current_executor() -> WorkflowExecutor | None:
    """The executor of the run whose workflow code this thread is running, if any."""
    return _local.executor


def set_executor(executor: WorkflowExecutor | None) -> WorkflowExecutor | None:
    previous = _local.executor
    _local.executor = executor
    return previous


def set_step(metadata: StepMetadata | None) -> None:
    _step.set(metadata)


def current_step() -> StepMetadata | None:
    return _step.get()


def in_workflow() -> bool:
    return _local.executor is not None


def get_step_metadata() -> StepMetadata:
    """Metadata of the running step: ``step_id`` (stable across retries), ``attempt`` from 1."""
    metadata = _step.get()
    if metadata is None:
        raise NotInWorkflowError(
            "get_step_metadata() works only inside a step that runs as part of a workflow"
        )
    return metadata


def get_workflow_metadata() -> WorkflowMetadata:
    """Metadata of the current run, in workflow code or in one of its steps."""
    executor = _local.executor
    if executor is not None:
        return executor.metadata
    metadata = _step.get()
    if metadata is None:
        raise NotInWorkflowError(
            "get_workflow_metadata() works only in workflow code or in a step of a run"
        )
    return metadata.workflow


def refuse_in_workflow(call: str) -> None:
    """Client calls read or change the World outside the run's log: a replay would not see
    what they saw. ``ClientCallInWorkflowError`` in workflow code."""
    if _local.executor is not None:
        raise ClientCallInWorkflowError(call)
