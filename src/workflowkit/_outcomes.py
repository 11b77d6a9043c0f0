"""What a run's stored outcome means to whoever waits for it: its value, or the error.

``Run.return_value()`` reads it from the run's record; a parent awaiting a child run reads
it from the ``child_completed`` event the child's end wrote to the parent's log. Both raise
the same errors for the same outcome.
"""

from __future__ import annotations

from typing import Any

from . import serde
from .errors import (
    RemoteError,
    SerializationError,
    WorkflowRunCancelledError,
    WorkflowRunFailedError,
)
from .worlds.records import RunStatus


def run_outcome(run_id: str, status: str, payload: bytes | None) -> Any:
    """The value of a run that ended with ``status``; raises the error it ended with.

    ``payload`` is the run's output (completed) or error (failed).
    """
    if status == RunStatus.COMPLETED:
        return serde.decode(payload) if payload is not None else None
    if status == RunStatus.CANCELLED:
        raise WorkflowRunCancelledError(run_id)
    raise failed_error(run_id, payload)


def failed_error(run_id: str, payload: bytes | None) -> WorkflowRunFailedError:
    """The error a waiter gets for a failed run, from the run's stored error."""
    try:
        error = serde.decode(payload) if payload is not None else None
    except SerializationError as exc:
        error = exc
    if isinstance(error, RemoteError):
        result = WorkflowRunFailedError(
            run_id, error.type_name, error.message, error.traceback_text
        )
    elif isinstance(error, BaseException):
        name = f"{type(error).__module__}.{type(error).__qualname__}"
        name = name.removeprefix("builtins.")
        traceback = serde.exception_traceback(error)
        result = WorkflowRunFailedError(run_id, name, str(error), traceback)
    else:
        result = WorkflowRunFailedError(run_id, "UnknownError", repr(error))
    if isinstance(error, BaseException):
        result.__cause__ = error
    return result
