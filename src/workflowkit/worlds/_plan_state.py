"""What the planner decides on: the transition tables, and a run's state as read under its lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from .records import EventType, NewEvent, RunStatus, StepStatus

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
_HOOK_EVENTS = frozenset({EventType.HOOK_RECEIVED, EventType.HOOK_DISPOSED})
_STEP_EVENTS = frozenset({EventType.STEP_CREATED, *STEP_TRANSITIONS})
ENDS_RUN = frozenset(kind for kind, target in RUN_TARGET.items() if target.terminal)


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
    steps: dict[str, None] = {}  # in order, once each: a step created and started together
    waits: list[str] = []
    hooks: list[str] = []
    tokens: list[str] = []
    links = False
    for new in events:
        cid, kind = new.correlation_id, new.type
        if kind in ENDS_RUN:
            links = True
        if cid is None:
            continue
        if kind in _STEP_EVENTS:
            steps[cid] = None
        elif kind is EventType.WAIT_CREATED or kind is EventType.WAIT_COMPLETED:
            waits.append(cid)
        elif kind is EventType.HOOK_CREATED:
            hooks.append(cid)
            tokens.append(str(new.attrs.get("token", "")))
        elif kind in _HOOK_EVENTS:
            hooks.append(cid)
    return Lookups(list(steps), waits, hooks, tokens, links)


# What each event about a step or a wait expects its row to be, if it comes first for that
# step or wait in an append: ``None``, no row (its creation); else the state it most often
# leaves from (a wait: ``False``, not yet completed).
_EXPECTS: Mapping[EventType, StepStatus | bool | None] = {
    EventType.STEP_CREATED: None,
    EventType.STEP_STARTED: StepStatus.PENDING,
    EventType.STEP_RETRYING: StepStatus.RUNNING,
    EventType.STEP_COMPLETED: StepStatus.RUNNING,
    EventType.STEP_FAILED: StepStatus.RUNNING,
    EventType.WAIT_CREATED: None,
    EventType.WAIT_COMPLETED: False,
}


class Presumed(NamedTuple):
    """Step and wait rows as an append's events expect them (``presume_rows``)."""

    steps: dict[str, StepStatus]
    waits: dict[str, bool]


def presume_rows(events: Sequence[NewEvent]) -> Presumed | None:
    """The step and wait rows as the events themselves expect them (one they create has
    none), for a World to plan on without reading them; None if the events are not all
    about steps and waits.

    With such a presumption every step's or wait's first event is accepted, and so makes a
    write that checks it: an insert that the row is absent (its key), an update that the
    row is in its ``was`` state (a wait: not completed). Events refused otherwise are
    refused for the run's state (read, not presumed) or for the log having moved on,
    whatever their rows. So the plan is the one the rows read would have given if every
    such write hits its row; if one misses, the World must undo the plan's writes and plan
    again from the rows read.
    """
    first: dict[str, EventType] = {}  # each step's or wait's first event
    for new in events:
        if new.type not in _EXPECTS or new.correlation_id is None:
            return None
        first.setdefault(new.correlation_id, new.type)
    steps: dict[str, StepStatus] = {}
    waits: dict[str, bool] = {}
    for cid, kind in first.items():
        expected = _EXPECTS[kind]
        if isinstance(expected, StepStatus):
            steps[cid] = expected
        elif expected is False:
            waits[cid] = False
    return Presumed(steps, waits)


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
