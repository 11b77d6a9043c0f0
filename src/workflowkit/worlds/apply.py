"""The event rules, decided once for every World.

An append is decided in three moves. ``lookups`` says which rows the events touch. The World
reads them under the run's lock (one row lock in PostgreSQL, the single writer in SQLite)
into a ``RunState``. ``plan_append`` then applies the events to that state one by one,
accepting or refusing each with a reason, and returns the ``Write``s that make the rows
agree with the accepted events. A World renders the writes in its own SQL and inserts the
events; it decides nothing, so no rule and no refusal text exists twice.

Times are Unix seconds (floats) here, on the World's clock; a World converts them to its
column type when it renders a write.

The rules live in private modules, one job each: ``_plan_state`` (the transition tables and
what an append reads), ``_planner`` (one run's events), ``_plan_family`` (what an append does
to other runs) and ``_plan_writes`` (what a World renders). This module names them all, and
holds the rules of the step queue and of streams.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from ..errors import StreamClosedError, WorkflowRunNotFoundError
from ._plan_family import Family
from ._plan_state import (
    ENDS_RUN,
    RUN_TARGET,
    RUN_TRANSITIONS,
    STEP_TARGET,
    STEP_TRANSITIONS,
    Lookups,
    Presumed,
    RunState,
    lookups,
    presume_rows,
)
from ._plan_writes import (
    ClaimStep,
    CompleteWait,
    CreateChild,
    DeleteHook,
    DeleteRunHooks,
    Deliver,
    EndRun,
    EndRunSteps,
    EndStep,
    FollowUp,
    InsertHook,
    InsertRun,
    InsertStep,
    InsertWait,
    RetryStep,
    StartRun,
    StartStep,
    TouchRun,
    UnclaimStep,
    Write,
)
from ._planner import AppendPlan, CreatePlan, check_owner, plan_append, plan_create_run
from .records import EventType, NewEvent, RunChange, RunStatus, StepClaim, StepStatus

__all__ = [
    "ENDS_RUN",
    "RUN_TARGET",
    "RUN_TRANSITIONS",
    "STEP_TARGET",
    "STEP_TRANSITIONS",
    "AppendPlan",
    "ClaimStep",
    "CompleteWait",
    "CreateChild",
    "CreatePlan",
    "DeleteHook",
    "DeleteRunHooks",
    "Deliver",
    "EndRun",
    "EndRunSteps",
    "EndStep",
    "Family",
    "FollowUp",
    "InsertHook",
    "InsertRun",
    "InsertStep",
    "InsertWait",
    "Lookups",
    "Presumed",
    "RetryStep",
    "RunState",
    "StartRun",
    "StartStep",
    "StepCandidate",
    "TouchRun",
    "UnclaimStep",
    "Write",
    "check_owner",
    "lookups",
    "may_write_stream",
    "plan_append",
    "plan_claim_step",
    "plan_create_run",
    "plan_finish_step",
    "presume_rows",
]


# -- the step queue --------------------------------------------------------------------------


def plan_claim_step(
    candidate: StepCandidate,
    state: RunState,
    claimer: str,
    lease_seconds: float,
    now: float,
) -> tuple[AppendPlan, StepClaim | None]:
    """A worker takes a queued (or abandoned) step: its next ``step_started`` and a lease.
    No claim if the start is refused (the step ended, or its run did, meanwhile)."""
    attempt = candidate.attempt + 1
    start = NewEvent(EventType.STEP_STARTED, candidate.step_id, None, {"attempt": attempt})
    plan = plan_append(candidate.run_id, state, [start], None, now)
    if not plan.result.events:
        return plan, None
    plan.writes.append(ClaimStep(candidate.run_id, candidate.step_id, claimer, now + lease_seconds))
    claim = StepClaim(
        candidate.run_id,
        candidate.step_id,
        candidate.step_name,
        attempt,
        candidate.input,
        candidate.workflow_name,
        candidate.run_started_at,
    )
    return plan, claim


class StepCandidate(NamedTuple):
    """A step a worker may claim, as the claim's query found it."""

    run_id: str
    step_id: str
    step_name: str
    attempt: int
    workflow_name: str
    run_started_at: datetime
    input: bytes


def plan_finish_step(
    run_id: str,
    state: RunState,
    claimed_by: str | None,
    outcome: NewEvent,
    claimer: str,
    retry_after: float | None,
    now: float,
) -> AppendPlan | None:
    """Record a claimed step's outcome, if ``claimer`` still holds it (None: it does not)."""
    if claimed_by != claimer or state.steps.get(str(outcome.correlation_id)) != StepStatus.RUNNING:
        return None
    plan = plan_append(run_id, state, [outcome], None, now)
    if not plan.result.events:
        return None
    queued_at = None if retry_after is None else now + retry_after
    plan.writes.append(UnclaimStep(run_id, str(outcome.correlation_id), queued_at))
    # No writer: the run's owner (maybe this very worker) must hear of it.
    plan.change = RunChange(run_id, state.last_seq, state.status, None, queued_at is not None)
    return plan


# -- streams ---------------------------------------------------------------------------------


def may_write_stream(
    run_id: str,
    name: str,
    run_status: RunStatus | None,
    closed: bool,
    has_chunks: bool,
    close: bool,
) -> bool:
    """Whether a stream write goes ahead (False: closing a closed stream again, which is
    allowed and changes nothing); raises for a write that is refused."""
    if run_status is None:
        raise WorkflowRunNotFoundError(run_id)
    if run_status.terminal:
        raise StreamClosedError(run_id, name, f"the run is {run_status}")
    if closed:
        if not has_chunks and close:
            return False
        raise StreamClosedError(run_id, name)
    return True
