"""The event rules, decided once for every World.

An append is decided in three moves. ``lookups`` says which rows the events touch. The World
reads them under the run's lock (one row lock in PostgreSQL, the single writer in SQLite)
into a ``RunState``. ``plan_append`` then applies the events to that state one by one,
accepting or refusing each with a reason, and returns the ``Write``s that make the rows
agree with the accepted events. A World renders the writes in its own SQL and inserts the
events; it decides nothing, so no rule and no refusal text exists twice.

Times are Unix seconds (floats) here, on the World's clock; a World converts them to its
column type when it renders a write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ..errors import LeaseLostError, StreamClosedError, WorkflowRunNotFoundError
from ..ids import new_ids
from .records import (
    DELIVERY_EVENTS,
    AppendResult,
    CreatedRun,
    Event,
    EventType,
    NewEvent,
    Rejected,
    RunChange,
    RunOptions,
    RunRecord,
    RunStatus,
    StepClaim,
    StepStatus,
)

# Which states each run event may leave from, and where it goes; anything else is refused.
RUN_TRANSITIONS: Mapping[EventType, frozenset[RunStatus]] = {
    EventType.RUN_STARTED: frozenset({RunStatus.PENDING}),
    EventType.RUN_COMPLETED: frozenset({RunStatus.RUNNING}),
    EventType.RUN_FAILED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
    EventType.RUN_CANCELLED: frozenset({RunStatus.PENDING, RunStatus.RUNNING}),
}
RUN_TARGET: Mapping[EventType, RunStatus] = {
    EventType.RUN_STARTED: RunStatus.RUNNING,
    EventType.RUN_COMPLETED: RunStatus.COMPLETED,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_CANCELLED: RunStatus.CANCELLED,
}
# A step may be started again while running: a worker that died mid-step leaves it so.
STEP_TRANSITIONS: Mapping[EventType, frozenset[StepStatus]] = {
    EventType.STEP_STARTED: frozenset({StepStatus.PENDING, StepStatus.RUNNING}),
    EventType.STEP_RETRYING: frozenset({StepStatus.RUNNING}),
    EventType.STEP_COMPLETED: frozenset({StepStatus.RUNNING}),
    EventType.STEP_FAILED: frozenset({StepStatus.RUNNING}),
}
STEP_TARGET: Mapping[EventType, StepStatus] = {
    EventType.STEP_STARTED: StepStatus.RUNNING,
    EventType.STEP_RETRYING: StepStatus.PENDING,
    EventType.STEP_COMPLETED: StepStatus.COMPLETED,
    EventType.STEP_FAILED: StepStatus.FAILED,
}
# What the steps still pending or running become when their run ends.
_STEPS_END_AS: Mapping[RunStatus, StepStatus] = {
    RunStatus.CANCELLED: StepStatus.CANCELLED,
    RunStatus.COMPLETED: StepStatus.ABANDONED,
    RunStatus.FAILED: StepStatus.ABANDONED,
}
_HOOK_EVENTS = frozenset({EventType.HOOK_RECEIVED, EventType.HOOK_DISPOSED})
_ENDS_RUN = frozenset(kind for kind, target in RUN_TARGET.items() if target.terminal)


# -- what an append reads ------------------------------------------------------------------


class Lookups(NamedTuple):
    """The rows an append's events touch, by id (tokens: of the hooks it creates).

    ``links``: the events may end the run, so the planner needs the run's parent and its
    active children (``RunState.parent``, ``RunState.children``).
    """

    steps: list[str]
    waits: list[str]
    hooks: list[str]
    tokens: list[str]
    links: bool = False

    @property
    def only_steps_and_waits(self) -> bool:
        return not self.hooks and not self.tokens


def lookups(events: Sequence[NewEvent]) -> Lookups:
    ends = any(new.type in _ENDS_RUN for new in events)
    found = Lookups([], [], [], [], ends)
    for new in events:
        cid, kind = new.correlation_id, new.type
        if cid is None:
            continue
        if kind in STEP_TRANSITIONS or kind is EventType.STEP_CREATED:
            found.steps.append(cid)
        elif kind is EventType.WAIT_CREATED or kind is EventType.WAIT_COMPLETED:
            found.waits.append(cid)
        elif kind is EventType.HOOK_CREATED:
            found.hooks.append(cid)
            found.tokens.append(str(new.attrs.get("token", "")))
        elif kind in _HOOK_EVENTS:
            found.hooks.append(cid)
    return found


@dataclass(slots=True)
class RunState:
    """A run as read under its lock: its row, its log's head, and the rows ``Lookups`` named
    that exist. ``plan_append`` updates it as it applies events."""

    status: RunStatus
    owner: str | None
    last_seq: int
    steps: dict[str, StepStatus] = field(default_factory=dict)
    waits: dict[str, bool] = field(default_factory=dict)  # wait id -> completed
    hooks: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (run id, token)
    tokens: dict[str, str] = field(default_factory=dict)  # token -> run id holding it
    # Read when ``Lookups.links`` asks: the run's parent, and its children that are active
    # and not detached (None: not read).
    parent: str | None = None
    children: list[str] | None = None


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
    """A new run: pending, due at ``wake_at``."""

    run_id: str
    workflow_name: str
    at: float
    wake_at: float
    options: RunOptions


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
) -> CreatePlan:
    """``existing``: the run with this id, read under a lock on the id (None if there is
    none); starting it again changes nothing, whatever its state."""
    if existing is not None:
        return CreatePlan(CreatedRun(existing, False))
    at = datetime.fromtimestamp(now, UTC)
    wake_at = now if start_at is None else start_at
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
        owner=None,
        wake_at=datetime.fromtimestamp(wake_at, UTC),
        options=options,
    )
    writes: list[Write] = [InsertRun(run_id, workflow_name, now, wake_at, options)]
    change = RunChange(run_id, 1, RunStatus.PENDING)
    return CreatePlan(CreatedRun(record, True), event, writes, change)


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
) -> AppendPlan:
    """Apply ``events`` in order to ``state`` (read under the run's lock, owner checked)."""
    planner = _Planner(run_id, state)
    event_ids = new_ids("evnt", len(events))  # one draw; refused events leave theirs unused
    initial = state.status
    now_utc: datetime | None = None
    for new in events:
        when = new.created_at
        if when is None:
            when = now_utc = now_utc or datetime.fromtimestamp(now, UTC)
        elif when.tzinfo is not UTC:
            when = when.astimezone(UTC)
        verdict = planner.apply(new, when.timestamp())
        if isinstance(verdict, str):
            planner.rejected.append(Rejected(new, verdict))
            continue
        state.last_seq += 1
        planner.accepted.append(
            Event(
                run_id,
                state.last_seq,
                event_ids[len(planner.accepted)],
                verdict.type,
                verdict.correlation_id,
                verdict.payload,
                verdict.attrs,
                when,
            )
        )
    accepted = planner.accepted
    # A worker recording its own run (the hot path) tells nobody else and leaves the runs
    # row alone; other writers and status changes date the row so other processes notice.
    announce = bool(accepted) and (owner is None or state.status is not initial)
    writes = planner.writes
    if announce:
        delivered = any(e.type in DELIVERY_EVENTS for e in accepted)
        wake = delivered and owner is None and not state.status.terminal
        writes.append(TouchRun(run_id, now, wake))
    result = AppendResult(accepted, planner.rejected, state.status)
    change = RunChange(run_id, state.last_seq, state.status, writer=owner)
    return AppendPlan(result, writes, change, announce, planner.follow_ups)


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
        if self.state.status.terminal:
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
        self.writes.append(self._step_write(new, cid, at, current))
        return new

    def _step_write(self, new: NewEvent, cid: str, at: float, was: StepStatus) -> Write:
        kind = new.type
        if kind is EventType.STEP_STARTED:
            attempt = new.attrs.get("attempt")
            return StartStep(self.run_id, cid, None if attempt is None else int(attempt), at, was)
        if kind is EventType.STEP_RETRYING:
            retry_at = new.attrs.get("retry_at")
            retry = None if retry_at is None else float(retry_at)
            return RetryStep(self.run_id, cid, self.state.last_seq + 1, retry, was)
        return EndStep(self.run_id, cid, STEP_TARGET[kind], self.state.last_seq + 1, at, was)

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


class Family:
    """Decides the follow-ups of a transaction's appends: the child runs they create, the
    parents told of an end, the children cancelled with their parent (and theirs in turn).

    All of it lands in the appends' transaction, so a child exists exactly when its
    parent's log says it was started, and a parent hears of its child's end exactly once.
    The World feeds it: ``add`` the plans, then, while ``wanted`` names rows to read (under
    the runs' locks, with ``Lookups.links``), ``supply`` them and ``decide`` again. States
    already read or planned in this transaction are reused, never read again: a World may
    not have sent the writes planned from them yet.
    """

    def __init__(self, states: dict[str, RunState], now: float) -> None:
        self.states = states
        self.now = now
        self.plans: list[AppendPlan] = []  # each follow-up's plan (a creation as an append)
        self._queue: list[FollowUp] = []
        self._existing: dict[str, RunRecord | None] = {}
        self._created: dict[str, str] = {}  # child created here -> its parent, if attached

    def add(self, plans: Sequence[AppendPlan]) -> None:
        for plan in plans:
            self._queue.extend(plan.follow_ups)

    def wanted(self) -> tuple[list[str], list[str]]:
        """Runs to read (with their links) and child ids to look up, before ``decide``."""
        runs: list[str] = []
        children: list[str] = []
        creating = self._creating()
        for follow_up in self._queue:
            if isinstance(follow_up, CreateChild):
                cid = str(follow_up.event.correlation_id)
                if cid not in self._existing and cid not in self.states:
                    children.append(cid)
            elif follow_up.run_id in creating:
                continue  # a child created here first: its state comes from the creation
            else:
                state = self.states.get(follow_up.run_id)
                if state is None or (
                    state is not _GONE and state.children is None and _ends(follow_up.event)
                ):
                    runs.append(follow_up.run_id)
        return sorted(set(runs)), sorted(set(children))

    def supply(self, states: Mapping[str, RunState], existing: Mapping[str, RunRecord]) -> None:
        """What the World read for ``wanted``: run states (missing: the run is gone) and the
        runs found under the child ids."""
        runs, children = self.wanted()
        for run_id in runs:
            read = states.get(run_id)
            known = self.states.get(run_id)
            if known is None:
                self.states[run_id] = read or _GONE
            else:  # planned here already: only its links are new
                known.parent = read.parent if read is not None else known.parent
                born = [c for c, parent in self._created.items() if parent == run_id]
                known.children = [*(read.children or () if read else ()), *born]
        for cid in children:
            self._existing[cid] = existing.get(cid)

    def decide(self) -> None:
        """Plan every follow-up whose rows are known, and theirs in turn; the others stay
        for ``wanted``."""
        progress = True
        while progress:
            runs, children = self.wanted()
            blocked = set(runs) | set(children)
            creating = self._creating()
            queue, self._queue = self._queue, []
            progress = False
            for follow_up in queue:
                if _target(follow_up) in blocked or (
                    isinstance(follow_up, Deliver) and follow_up.run_id in creating
                ):
                    self._queue.append(follow_up)
                    continue
                progress = True
                if isinstance(follow_up, CreateChild):
                    self._create(follow_up)
                else:
                    self._deliver(follow_up)

    def _creating(self) -> set[str]:
        """Child ids whose creation is still to be decided."""
        return {str(f.event.correlation_id) for f in self._queue if isinstance(f, CreateChild)}

    def _deliver(self, follow_up: Deliver) -> None:
        state = self.states[follow_up.run_id]
        if state is _GONE:
            return
        if follow_up.child_of is not None and state.parent != follow_up.child_of:
            return  # not its child after all: the id was another run's
        plan = plan_append(follow_up.run_id, state, [follow_up.event], None, self.now)
        self.plans.append(plan)
        self._queue.extend(plan.follow_ups)

    def _create(self, follow_up: CreateChild) -> None:
        event, parent = follow_up.event, follow_up.parent_run_id
        cid = str(event.correlation_id)
        existing = self._existing.get(cid)
        if existing is not None or cid in self.states:
            if existing is not None and existing.options.parent_run_id != parent:
                held = {
                    "status": "conflict",
                    "holder_workflow": existing.workflow_name,
                    "holder_status": existing.status,
                }
                told = NewEvent(EventType.CHILD_COMPLETED, cid, None, held)
                self._queue.append(Deliver(parent, told))
            return  # a child of this very parent already
        attrs = event.attrs
        name = str(attrs["name"])
        options = RunOptions(
            deadline=_moment(attrs.get("deadline")),
            queue=attrs.get("queue"),
            key=attrs.get("key"),
            priority=int(attrs.get("priority", 0)),
            parent_run_id=parent,
            detached=bool(attrs.get("detached", False)),
        )
        start_at = attrs.get("start_at")
        created_attrs = {"name": name}
        if isinstance(attrs.get("traceparent"), str):  # the trace the parent was started in
            created_attrs["traceparent"] = attrs["traceparent"]
        created = plan_create_run(
            cid,
            name,
            event.payload or b"",
            created_attrs,
            options,
            None if start_at is None else float(start_at),
            self.now,
            None,
        )
        assert created.event is not None and created.change is not None
        self.states[cid] = RunState(RunStatus.PENDING, None, 1, parent=parent, children=[])
        if not options.detached:
            self._created[cid] = parent
        result = AppendResult([created.event], [], RunStatus.PENDING)
        self.plans.append(AppendPlan(result, created.writes, created.change, True))


_GONE = RunState(RunStatus.CANCELLED, None, 0)  # a follow-up's run that does not exist


def _target(follow_up: FollowUp) -> str:
    if isinstance(follow_up, CreateChild):
        return str(follow_up.event.correlation_id)
    return follow_up.run_id


def _ends(event: NewEvent) -> bool:
    return event.type in _ENDS_RUN


def _moment(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)


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
