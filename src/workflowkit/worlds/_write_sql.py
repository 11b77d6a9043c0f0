"""The planner's writes as SQL statements (``Dialect.render``), and the events' insert."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ._rows import dump_attrs
from .apply import (
    ClaimStep,
    CompleteWait,
    DeleteHook,
    DeleteRunHooks,
    EndRun,
    EndRunSteps,
    EndStep,
    InsertHook,
    InsertRun,
    InsertStep,
    InsertWait,
    RetryStep,
    StartRun,
    StartStep,
    TouchRun,
    UnclaimStep,
)
from .records import Event, RunStatus, StepStatus

# -- the planner's writes ------------------------------------------------------------------

_Rendered = tuple[str, tuple[Any, ...], bool]
_Time = Callable[[float], Any]


INSERT_STEP = (
    "INSERT INTO steps (run_id, step_id, step_name, status, attempt, input_seq, "
    "created_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert_step(w: InsertStep, time: _Time) -> _Rendered:
    started = None if w.started_at is None else time(w.started_at)
    return (
        INSERT_STEP,
        (
            w.run_id,
            w.step_id,
            w.name,
            str(w.status),
            w.attempt,
            w.input_seq,
            time(w.created_at),
            started,
        ),
        True,
    )


def _start_step(w: StartStep, time: _Time) -> _Rendered:
    return (
        "UPDATE steps SET status = 'running', attempt = coalesce(CAST(? AS INTEGER), attempt + 1), "
        "started_at = coalesce(started_at, ?), retry_at = NULL "
        "WHERE run_id = ? AND step_id = ? AND status = ?",
        (w.attempt, time(w.at), w.run_id, w.step_id, str(w.was)),
        True,
    )


def _retry_step(w: RetryStep, time: _Time) -> _Rendered:
    retry_at = None if w.retry_at is None else time(w.retry_at)
    return (
        "UPDATE steps SET status = 'pending', error_seq = ?, retry_at = ? "
        "WHERE run_id = ? AND step_id = ? AND status = ?",
        (w.error_seq, retry_at, w.run_id, w.step_id, str(w.was)),
        True,
    )


_END_STEP = {
    StepStatus.COMPLETED: "UPDATE steps SET status = 'completed', output_seq = ?, completed_at = ? "
    "WHERE run_id = ? AND step_id = ? AND status = ?",
    StepStatus.FAILED: "UPDATE steps SET status = 'failed', error_seq = ?, completed_at = ? "
    "WHERE run_id = ? AND step_id = ? AND status = ?",
}


def _end_step(w: EndStep, time: _Time) -> _Rendered:
    return _END_STEP[w.status], (w.seq, time(w.at), w.run_id, w.step_id, str(w.was)), True


def _end_run_steps(w: EndRunSteps, time: _Time) -> _Rendered:
    return (
        "UPDATE steps SET status = ?, completed_at = ?, retry_at = NULL, queued_at = NULL, "
        "claimed_by = NULL, lease_until = NULL "
        "WHERE run_id = ? AND status IN ('pending', 'running')",
        (str(w.status), time(w.at), w.run_id),
        False,
    )


def _insert_wait(w: InsertWait, time: _Time) -> _Rendered:
    return (
        "INSERT INTO waits (run_id, wait_id, resume_at, created_at) VALUES (?, ?, ?, ?)",
        (w.run_id, w.wait_id, time(w.resume_at), time(w.created_at)),
        True,
    )


def _complete_wait(w: CompleteWait, time: _Time) -> _Rendered:
    return (
        "UPDATE waits SET completed_at = ? WHERE run_id = ? AND wait_id = ? "
        "AND completed_at IS NULL",
        (time(w.at), w.run_id, w.wait_id),
        True,
    )


def _insert_hook(w: InsertHook, time: _Time) -> _Rendered:
    return (
        "INSERT INTO hooks (hook_id, run_id, token, created_seq, created_at, attrs) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (w.hook_id, w.run_id, w.token, w.created_seq, time(w.created_at), dump_attrs(w.attrs)),
        True,
    )


def _delete_hook(w: DeleteHook, time: _Time) -> _Rendered:
    return "DELETE FROM hooks WHERE hook_id = ? AND run_id = ?", (w.hook_id, w.run_id), True


def _delete_run_hooks(w: DeleteRunHooks, time: _Time) -> _Rendered:
    return "DELETE FROM hooks WHERE run_id = ?", (w.run_id,), False


def _insert_run(w: InsertRun, time: _Time) -> _Rendered:
    at, o = time(w.at), w.options
    deadline = None if o.deadline is None else time(o.deadline.timestamp())
    return (
        "INSERT INTO runs (run_id, workflow_name, status, created_at, updated_at, wake_at, "
        "deadline, queue, queue_key, priority, parent_run_id, detached, forked_from, owner, "
        "lease_until) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            w.run_id,
            w.workflow_name,
            at,
            at,
            time(w.wake_at),
            deadline,
            o.queue,
            o.key,
            o.priority,
            o.parent_run_id,
            o.detached,
            o.forked_from,
            w.owner,
            None if w.lease_until is None else time(w.lease_until),
        ),
        True,
    )


def _claim_step(w: ClaimStep, time: _Time) -> _Rendered:
    return (
        "UPDATE steps SET claimed_by = ?, lease_until = ?, queued_at = NULL "
        "WHERE run_id = ? AND step_id = ?",
        (w.claimer, time(w.lease_until), w.run_id, w.step_id),
        True,
    )


def _unclaim_step(w: UnclaimStep, time: _Time) -> _Rendered:
    queued_at = None if w.queued_at is None else time(w.queued_at)
    return (
        "UPDATE steps SET claimed_by = NULL, lease_until = NULL, queued_at = ? "
        "WHERE run_id = ? AND step_id = ?",
        (queued_at, w.run_id, w.step_id),
        True,
    )


def _start_run(w: StartRun, time: _Time) -> _Rendered:
    at = time(w.at)
    return (
        "UPDATE runs SET status = 'running', started_at = ?, updated_at = ?, code_version = ? "
        "WHERE run_id = ?",
        (at, at, w.version, w.run_id),
        True,
    )


_END_RUN = {
    column: "UPDATE runs SET status = ?, completed_at = ?, "
    f"{column} = ?, owner = NULL, lease_until = NULL, wake_at = NULL, "
    "started_at = coalesce(started_at, ?), updated_at = ? WHERE run_id = ?"
    for column in ("output_seq", "error_seq")
}


def _end_run(w: EndRun, time: _Time) -> _Rendered:
    at = time(w.at)
    column = "output_seq" if w.status is RunStatus.COMPLETED else "error_seq"
    return _END_RUN[column], (str(w.status), at, w.seq, at, at, w.run_id), True


def _touch_run(w: TouchRun, time: _Time) -> _Rendered:
    at = time(w.at)
    if w.wake:
        return (
            "UPDATE runs SET updated_at = ?, wake_at = ? WHERE run_id = ?",
            (at, at, w.run_id),
            True,
        )
    return "UPDATE runs SET updated_at = ? WHERE run_id = ?", (at, w.run_id), True


RENDER: dict[type, Callable[[Any, _Time], _Rendered]] = {
    InsertRun: _insert_run,
    ClaimStep: _claim_step,
    UnclaimStep: _unclaim_step,
    InsertStep: _insert_step,
    StartStep: _start_step,
    RetryStep: _retry_step,
    EndStep: _end_step,
    EndRunSteps: _end_run_steps,
    InsertWait: _insert_wait,
    CompleteWait: _complete_wait,
    InsertHook: _insert_hook,
    DeleteHook: _delete_hook,
    DeleteRunHooks: _delete_run_hooks,
    StartRun: _start_run,
    EndRun: _end_run,
    TouchRun: _touch_run,
}

INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, attrs, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def event_params(event: Event, stamp: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The ``events`` columns of ``event``, in ``INSERT_EVENT``'s order."""
    return (
        event.run_id,
        event.seq,
        event.event_id,
        str(event.type),
        event.correlation_id,
        event.payload,
        dump_attrs(event.attrs),
        stamp(event.created_at),
    )
