"""The planner: applies one run's events to its state, and returns the row writes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import LeaseLostError, WorkflowRunNotFoundError
from ..ids import new_ids
from ._plan_state import RUN_TARGET, RUN_TRANSITIONS, STEP_TARGET, STEP_TRANSITIONS, RunState
from ._plan_writes import (
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
    Write,
)
from .records import (
    DELIVERY_EVENTS,
    MOVED,
    AppendAfter,
    AppendResult,
    CreatedRun,
    Event,
    EventType,
    Lease,
    NewEvent,
    Rejected,
    RunChange,
    RunOptions,
    RunRecord,
    RunStatus,
    StepStatus,
)

# -- creating a run --------------------------------------------------------------------------


@dataclass(slots=True)
class CreatePlan:
    """What creating a run does: nothing but return the run if its id exists (``created``
    is False), else its row and its ``run_created`` event."""

    result: CreatedRun
    event: Event | None = None
    writes: list[Write] = field(default_factory=list)
    change: RunChange | None = None


def plan_create_run(
    run_id: str,
    workflow_name: str,
    input: bytes,
    attrs: Mapping[str, Any],
    options: RunOptions,
    start_at: float | None,
    now: float,
    existing: RunRecord | None,
    lease: Lease | None = None,
) -> CreatePlan:
    """``existing``: the run with this id, read under a lock on the id (None if there is
    none); starting it again changes nothing, whatever its state. With a ``lease`` the new
    run is created claimed by that worker, as if it had claimed it at once."""
    if existing is not None:
        return CreatePlan(CreatedRun(existing, False))
    at = datetime.fromtimestamp(now, UTC)
    wake_at = now if start_at is None else start_at
    owner = None if lease is None else lease.owner
    lease_until = None if lease is None else now + lease.seconds
    event = Event(run_id, 1, new_ids("evnt", 1)[0], EventType.RUN_CREATED, None, input, attrs, at)
    record = RunRecord(
        run_id=run_id,
        workflow_name=workflow_name,
        status=RunStatus.PENDING,
        input=input,
        output=None,
        error=None,
        created_at=at,
        started_at=None,
        completed_at=None,
        updated_at=at,
        last_seq=1,
        owner=owner,
        wake_at=datetime.fromtimestamp(wake_at, UTC),
        options=options,
    )
    writes: list[Write] = [
        InsertRun(run_id, workflow_name, now, wake_at, options, owner, lease_until)
    ]
    # Written by its owner, if leased: that worker's listener skips it, as it does its appends.
    change = RunChange(run_id, 1, RunStatus.PENDING, writer=owner)
    return CreatePlan(CreatedRun(record, True, event), event, writes, change)


# -- deciding an append ----------------------------------------------------------------------


@dataclass(slots=True)
class AppendPlan:
    """What an append does: its result (the events to insert, the refusals), the row writes,
    and whether other processes must hear of it (``change`` is for listeners either way)."""

    result: AppendResult
    writes: list[Write]
    change: RunChange
    announce: bool
    follow_ups: list[FollowUp] = field(default_factory=list)


def check_owner(run_id: str, state: RunState | None, owner: str | None) -> RunState:
    """The run must exist and, for a worker's append, be held by that worker."""
    if state is None:
        raise WorkflowRunNotFoundError(run_id)
    if owner is not None and state.owner != owner:
        raise LeaseLostError(run_id, owner)
    return state


def plan_append(
    run_id: str,
    state: RunState,
    events: Sequence[NewEvent],
    owner: str | None,
    now: float,
    after: AppendAfter | None = None,
) -> AppendPlan:
    """Apply ``events`` in order to ``state`` (read under the run's lock, owner checked).

    With ``after`` and a log that has moved past ``after.seq``, the events past its facts
    are refused (``MOVED``): code decided them without the newer events, and replaying the
    log in its order could decide otherwise."""
    planner = _Planner(run_id, state)
    keep = len(events) if after is None or after.seq == state.last_seq else after.facts
    event_ids = new_ids("evnt", len(events))  # one draw; refused events leave theirs unused
    initial = state.status
    accepted, rejected = planner.accepted, planner.rejected
    now_utc: datetime | None = None
    now_at = now
    for index, new in enumerate(events):
        if index >= keep:
            rejected.append(Rejected(new, MOVED))
            continue
        when = new.created_at
        if when is None:
            if now_utc is None:  # the time on the datetimes' grid (whole microseconds)
                now_utc = datetime.fromtimestamp(now, UTC)
                now_at = now_utc.timestamp()
            when, at = now_utc, now_at
        else:
            if when.tzinfo is not UTC:
                when = when.astimezone(UTC)
            at = when.timestamp()
        # Most events are about a step, a wait or a hook (``_BY_KIND``); ``apply`` decides
        # the rest. Inlined here as it runs for every event of every step.
        handler = _BY_KIND.get(new.type)
        if handler is None or new.correlation_id is None or state.status in _ENDED:
            verdict = planner.apply(new, at)
        else:
            verdict = handler(planner, new, new.correlation_id, at)
        if verdict.__class__ is str:
            rejected.append(Rejected(new, verdict))
            continue
        state.last_seq = seq = state.last_seq + 1
        accepted.append(
            Event(
                run_id,
                seq,
                event_ids[len(accepted)],
                verdict.type,  # type: ignore[union-attr]
                verdict.correlation_id,  # type: ignore[union-attr]
                verdict.payload,  # type: ignore[union-attr]
                verdict.attrs,  # type: ignore[union-attr]
                when,
            )
        )
    # A worker recording its own run (the hot path) tells nobody else and leaves the runs
    # row alone; other writers and run endings date the row so other processes notice. Its
    # own start is dated (``StartRun``) but told to nobody: no other process waits for a
    # run to start, and every worker would wake up to hear it. An end dated now dates it
    # already (one write of the row, not two), unless the run must also be made due.
    ended = state.status is not initial and state.status.terminal
    announce = bool(accepted) and (owner is None or ended)
    writes = planner.writes
    if announce:
        delivered = any(e.type in DELIVERY_EVENTS for e in accepted)
        wake = delivered and owner is None and not state.status.terminal
        if wake or not _dated(writes, now):
            writes.append(TouchRun(run_id, now, wake))
    result = AppendResult(accepted, rejected, state.status)
    # Another writer's events go with the change: the run's owner delivers them as they are.
    # So do a run's last ones: whoever awaits its result takes it from them, unread.
    told = tuple(accepted) if owner is None or ended else ()
    change = RunChange(run_id, state.last_seq, state.status, writer=owner, events=told)
    return AppendPlan(result, writes, change, announce, planner.follow_ups)


def _dated(writes: Sequence[Write], now: float) -> bool:
    """Whether a start or an end in ``writes`` dates the run's row as a touch would (other
    processes notice changes by ``updated_at``, looking back at least a second): dated at
    most ``_FRESH`` before ``now``. A worker dates its run's start a moment before its
    append commits; an event dated longer ago (a backdated cancel) still gets the touch."""
    return any(isinstance(w, StartRun | EndRun) and w.at >= now - _FRESH for w in writes)


_FRESH = 0.25  # seconds: well inside the look-back of the Worlds' change polls (1 s, 5 s)


class _Planner:
    """Applies events to a ``RunState`` one at a time, collecting writes and refusals."""

    __slots__ = ("accepted", "follow_ups", "inserts", "rejected", "run_id", "state", "writes")

    def __init__(self, run_id: str, state: RunState) -> None:
        self.run_id = run_id
        self.state = state
        self.accepted: list[Event] = []
        self.rejected: list[Rejected] = []
        self.writes: list[Write] = []
        self.follow_ups: list[FollowUp] = []
        # Steps this append creates: later events for them fold into the insert, so a step
        # created and started together is inserted running (one write, not two).
        self.inserts: dict[str, int] = {}  # step id -> index of its InsertStep in writes

    def apply(self, new: NewEvent, at: float) -> NewEvent | str:
        """The event to record (``new``, or what it became), or why it is refused."""
        if self.state.status in _ENDED:
            return f"run is {self.state.status}"
        kind, cid = new.type, new.correlation_id
        handler = _BY_KIND.get(kind)
        if handler is not None and cid is not None:
            return handler(self, new, cid, at)
        if kind in RUN_TRANSITIONS:
            return self._run_event(new, at)
        if kind is EventType.RUN_CREATED:
            return "run_created is written by create_run only"
        if handler is not None:
            return f"{kind} needs a correlation id"
        return f"unknown event type {kind}"

    def _run_event(self, new: NewEvent, at: float) -> NewEvent | str:
        state, kind = self.state, new.type
        if state.status not in RUN_TRANSITIONS[kind]:
            return f"run is {state.status}, cannot apply {kind}"
        state.status = RUN_TARGET[kind]
        if kind is EventType.RUN_STARTED:
            version = new.attrs.get("version")
            self.writes.append(StartRun(self.run_id, at, None if version is None else str(version)))
        else:
            # An ended run releases its hook tokens (and no later event of it is accepted).
            self.writes.append(EndRun(self.run_id, state.status, self.state.last_seq + 1, at))
            self.writes.append(DeleteRunHooks(self.run_id))
            # No step stays pending or running after its run: one a cancel or a race (a
            # wait_for, a timeout) left behind is recorded as ended; its result, if it
            # ever comes, is refused like any event of an ended run.
            self.writes.append(EndRunSteps(self.run_id, _STEPS_END_AS[state.status], at))
            for step_id, step_status in state.steps.items():
                if step_status is StepStatus.PENDING or step_status is StepStatus.RUNNING:
                    state.steps[step_id] = _STEPS_END_AS[state.status]
            self._tell_family(new)
        return new

    def _tell_family(self, end: NewEvent) -> None:
        """The run ended: its parent learns how (``child_completed``), and its children
        that are not detached are cancelled (their own children in turn)."""
        state = self.state
        if state.children is None:
            raise AssertionError("a run ended without its children read (Lookups.links)")
        status = state.status
        if state.parent is not None:
            payload = None if status is RunStatus.CANCELLED else end.payload
            told = NewEvent(EventType.CHILD_COMPLETED, self.run_id, payload, {"status": status})
            self.follow_ups.append(Deliver(state.parent, told))
        for child in state.children:
            reason = {"reason": f"its parent run {self.run_id} {status}"}
            cancel = NewEvent(EventType.RUN_CANCELLED, attrs=reason)
            self.follow_ups.append(Deliver(child, cancel, child_of=self.run_id))
        state.children = []

    def _create_child(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        if self.state.children is not None and not new.attrs.get("detached"):
            self.state.children.append(cid)
        self.follow_ups.append(CreateChild(self.run_id, new))
        return new

    def _note(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        return new  # a marker for replay (``patched``): it changes no row

    def _child_completed(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        return new  # a child ends once: its end writes this event once

    def _create_step(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        if cid in self.state.steps:
            return f"step {cid} already exists"
        self.state.steps[cid] = StepStatus.PENDING
        self.inserts[cid] = len(self.writes)
        name = str(new.attrs.get("name", ""))
        self.writes.append(
            InsertStep(
                self.run_id, cid, name, self.state.last_seq + 1, at, StepStatus.PENDING, 0, None
            )
        )
        return new

    def _step_event(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        kind = new.type
        current = self.state.steps.get(cid)
        if current is None:
            return f"step {cid} does not exist"
        if current not in STEP_TRANSITIONS[kind]:
            return f"step {cid} is {current}, cannot apply {kind}"
        self.state.steps[cid] = STEP_TARGET[kind]
        inserted = self.inserts.get(cid)
        if kind is EventType.STEP_STARTED and inserted is not None:
            insert = self.writes[inserted]
            assert isinstance(insert, InsertStep)
            attempt = new.attrs.get("attempt")
            self.writes[inserted] = InsertStep(
                insert.run_id,
                cid,
                insert.name,
                insert.input_seq,
                insert.created_at,
                StepStatus.RUNNING,
                insert.attempt + 1 if attempt is None else int(attempt),
                at if insert.started_at is None else insert.started_at,
            )
            return new
        self.inserts.pop(cid, None)  # later writes to it are updates of the inserted row
        if kind is EventType.STEP_STARTED:
            attempt = new.attrs.get("attempt")
            attempt = None if attempt is None else int(attempt)
            self.writes.append(StartStep(self.run_id, cid, attempt, at, current))
        elif kind is EventType.STEP_RETRYING:
            retry_at = new.attrs.get("retry_at")
            retry = None if retry_at is None else float(retry_at)
            self.writes.append(RetryStep(self.run_id, cid, self.state.last_seq + 1, retry, current))
        else:
            seq = self.state.last_seq + 1
            self.writes.append(EndStep(self.run_id, cid, STEP_TARGET[kind], seq, at, current))
        return new

    def _create_wait(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        if cid in self.state.waits:
            return f"wait {cid} already exists"
        self.state.waits[cid] = False
        resume_at = float(new.attrs["resume_at"])
        self.writes.append(InsertWait(self.run_id, cid, resume_at, at))
        return new

    def _complete_wait(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        if self.state.waits.get(cid) is not False:
            return f"wait {cid} is not waiting"
        self.state.waits[cid] = True
        self.writes.append(CompleteWait(self.run_id, cid, at))
        return new

    def _create_hook(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        state = self.state
        token = str(new.attrs["token"])
        holder = state.tokens.get(token)
        if holder is not None:
            attrs = {**new.attrs, "holder_run_id": holder}
            return NewEvent(EventType.HOOK_CONFLICT, cid, None, attrs, new.created_at)
        if cid in state.hooks:
            return f"hook {cid} already exists"
        state.hooks[cid] = (self.run_id, token)
        state.tokens[token] = self.run_id
        self.writes.append(
            InsertHook(cid, self.run_id, token, self.state.last_seq + 1, at, new.attrs)
        )
        return new

    def _hook_event(self, new: NewEvent, cid: str, at: float) -> NewEvent | str:
        state = self.state
        hook = state.hooks.get(cid)
        if hook is None or hook[0] != self.run_id:
            return f"hook {cid} is not active"
        if new.type is EventType.HOOK_DISPOSED:
            del state.hooks[cid]
            state.tokens.pop(hook[1], None)
            self.writes.append(DeleteHook(self.run_id, cid))
        return new


_ENDED = frozenset(status for status in RunStatus if status.terminal)

# What the steps still pending or running become when their run ends.
_STEPS_END_AS: Mapping[RunStatus, StepStatus] = {
    RunStatus.CANCELLED: StepStatus.CANCELLED,
    RunStatus.COMPLETED: StepStatus.ABANDONED,
    RunStatus.FAILED: StepStatus.ABANDONED,
}

# Which ``_Planner`` method decides each event about a step, wait or hook.
_BY_KIND: dict[EventType, Callable[[_Planner, NewEvent, str, float], NewEvent | str]] = {
    EventType.STEP_CREATED: _Planner._create_step,
    **{kind: _Planner._step_event for kind in STEP_TRANSITIONS},
    EventType.WAIT_CREATED: _Planner._create_wait,
    EventType.WAIT_COMPLETED: _Planner._complete_wait,
    EventType.HOOK_CREATED: _Planner._create_hook,
    EventType.HOOK_RECEIVED: _Planner._hook_event,
    EventType.HOOK_DISPOSED: _Planner._hook_event,
    EventType.CHILD_CREATED: _Planner._create_child,
    EventType.CHILD_COMPLETED: _Planner._child_completed,
    EventType.PATCH_MARKED: _Planner._note,
}
