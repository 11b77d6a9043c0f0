"""How many times an append writes its run's row (both Worlds plan with ``plan_append``).

A run's start and its end date the row themselves (``updated_at``): the append that
carries one of them writes the row once, with no separate touch. A touch is still written
where nothing else dates the row, or where it makes the run due."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from workflowkit.worlds.apply import EndRun, RunState, StartRun, TouchRun, plan_append
from workflowkit.worlds.records import EventType, NewEvent, RunStatus, StepStatus

RUN = "wrun_1"
ME = "wrkr_me"


def run_row_writes(state: RunState, events: list[NewEvent], owner: str | None) -> list[str]:
    plan = plan_append(RUN, state, events, owner, time.time())
    assert not plan.result.rejected
    row = (StartRun, EndRun, TouchRun)
    return [type(w).__name__ for w in plan.writes if isinstance(w, row) and w.run_id == RUN]


def test_a_worker_ending_its_run_writes_the_row_once() -> None:
    state = RunState(RunStatus.RUNNING, ME, 4, steps={"s1": StepStatus.RUNNING}, children=[])
    events = [
        NewEvent(EventType.STEP_COMPLETED, "s1", b"out"),
        NewEvent(EventType.RUN_COMPLETED, None, b"done"),
    ]
    assert run_row_writes(state, events, ME) == ["EndRun"]


def test_a_worker_starting_its_run_writes_the_row_once() -> None:
    """The start is dated when the worker decided it, a moment before the append."""
    state = RunState(RunStatus.PENDING, ME, 1)
    moment_ago = datetime.fromtimestamp(time.time() - 0.05, UTC)
    events = [
        NewEvent(EventType.RUN_STARTED, None, None, {}, moment_ago),
        NewEvent(EventType.STEP_CREATED, "s1", b"in", {"name": "s"}),
        NewEvent(EventType.STEP_STARTED, "s1", None, {"attempt": 1}),
    ]
    assert run_row_writes(state, events, ME) == ["StartRun"]


def test_a_cancel_from_outside_writes_the_row_once() -> None:
    state = RunState(RunStatus.RUNNING, ME, 4, children=[])
    assert run_row_writes(state, [NewEvent(EventType.RUN_CANCELLED)], None) == ["EndRun"]


def test_a_delivery_from_outside_still_touches_the_row_to_make_the_run_due() -> None:
    state = RunState(RunStatus.RUNNING, ME, 4, steps={"s1": StepStatus.RUNNING})
    events = [NewEvent(EventType.STEP_COMPLETED, "s1", b"out")]
    assert run_row_writes(state, events, None) == ["TouchRun"]


def test_a_worker_recording_a_step_leaves_the_row_alone() -> None:
    state = RunState(RunStatus.RUNNING, ME, 4, steps={"s1": StepStatus.RUNNING})
    events = [NewEvent(EventType.STEP_COMPLETED, "s1", b"out")]
    assert run_row_writes(state, events, ME) == []


def test_an_end_dated_in_the_past_still_touches_the_row() -> None:
    """Other processes notice changes by ``updated_at``: an ending dated an hour ago does
    not date the row now, so the touch stays."""
    state = RunState(RunStatus.RUNNING, ME, 4, children=[])
    past = datetime.fromtimestamp(time.time() - 3600, UTC)
    events = [NewEvent(EventType.RUN_CANCELLED, created_at=past)]
    assert run_row_writes(state, events, None) == ["EndRun", "TouchRun"]
