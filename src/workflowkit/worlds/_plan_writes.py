"""What the planner returns: the row writes a World renders, and the follow-ups on other runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .records import NewEvent, RunOptions, RunStatus, StepStatus

# -- the writes a World renders ------------------------------------------------------------
# Each changes one row (``DeleteRunHooks``: all of a run's hooks). Step updates name the state
# the row was read in, so a World can check that each hit its row.


class InsertStep(NamedTuple):
    run_id: str
    step_id: str
    name: str
    input_seq: int
    created_at: float
    status: StepStatus  # pending, or running when the same append started it
    attempt: int
    started_at: float | None


class StartStep(NamedTuple):
    run_id: str
    step_id: str
    attempt: int | None  # None: one more than the row's
    at: float
    was: StepStatus


class RetryStep(NamedTuple):
    run_id: str
    step_id: str
    error_seq: int
    retry_at: float | None
    was: StepStatus


class EndStep(NamedTuple):
    run_id: str
    step_id: str
    status: StepStatus  # completed (seq is the output's) or failed (the error's)
    seq: int
    at: float
    was: StepStatus


class EndRunSteps(NamedTuple):
    """The run ended: its steps still pending or running end with it (``status``), leave
    the step queue and lose their claim. Touches any number of rows, none included."""

    run_id: str
    status: StepStatus  # cancelled (the run was) or abandoned (it ended otherwise)
    at: float


class InsertWait(NamedTuple):
    run_id: str
    wait_id: str
    resume_at: float
    created_at: float


class CompleteWait(NamedTuple):
    run_id: str
    wait_id: str
    at: float


class InsertHook(NamedTuple):
    hook_id: str
    run_id: str
    token: str
    created_seq: int
    created_at: float
    attrs: Mapping[str, Any]


class DeleteHook(NamedTuple):
    run_id: str
    hook_id: str


class InsertRun(NamedTuple):
    """A new run: pending, due at ``wake_at``; held by ``owner`` until ``lease_until`` if
    it is created claimed."""

    run_id: str
    workflow_name: str
    at: float
    wake_at: float
    options: RunOptions
    owner: str | None = None
    lease_until: float | None = None


class StartRun(NamedTuple):
    run_id: str
    at: float
    version: str | None  # the code version it starts under (``run_started``'s attrs)


class EndRun(NamedTuple):
    """The run ended: its status, and the seq of its output or error."""

    run_id: str
    status: RunStatus
    seq: int
    at: float


class DeleteRunHooks(NamedTuple):
    run_id: str


class ClaimStep(NamedTuple):
    """A worker took the step from the step queue, under a lease."""

    run_id: str
    step_id: str
    claimer: str
    lease_until: float


class UnclaimStep(NamedTuple):
    """The claim ended; ``queued_at``: the step is queued again from then (a retry)."""

    run_id: str
    step_id: str
    queued_at: float | None


class TouchRun(NamedTuple):
    """Dates a change other processes must hear of; ``wake`` makes the run due now."""

    run_id: str
    at: float
    wake: bool


Write = (
    InsertRun
    | InsertStep
    | StartStep
    | RetryStep
    | EndStep
    | EndRunSteps
    | InsertWait
    | CompleteWait
    | InsertHook
    | DeleteHook
    | StartRun
    | EndRun
    | DeleteRunHooks
    | ClaimStep
    | UnclaimStep
    | TouchRun
)


# -- what an append does to other runs ---------------------------------------------------------


class CreateChild(NamedTuple):
    """Create the child run a ``child_created`` of ``parent_run_id`` records."""

    parent_run_id: str
    event: NewEvent


class Deliver(NamedTuple):
    """Append ``event`` to another run, as a client would (its end to a parent, a
    cancellation to a child). ``child_of``: only if that run is the target's parent (a
    child id may turn out to be another run's, not a child at all)."""

    run_id: str
    event: NewEvent
    child_of: str | None = None


FollowUp = CreateChild | Deliver
