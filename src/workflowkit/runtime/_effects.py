"""What goes in and out of an activation of a run's executor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..context import DurableStep
from ..worlds.records import NewEvent

# -- what goes in and out of an activation ---------------------------------------------------
# Named tuples rather than frozen dataclasses: as immutable, and four times cheaper to build,
# which shows on the hot path (an activation per step).


class StepStart(NamedTuple):
    """A step attempt to start once ``due_at`` (on the World's clock; 0 for now) has come."""

    step_id: str
    step: DurableStep
    input: bytes
    attempt: int
    due_at: float
    # Replay matched its step_created in the log: it may be queued already.
    replayed: bool


class Timer(NamedTuple):
    """A sleep's timer: when due, append ``wait_completed`` for ``wait_id``."""

    wait_id: str
    resume_at: float


class Effects(NamedTuple):
    """What the workflow code did in one activation, for the driver to carry out."""

    events: Sequence[NewEvent]
    steps: Sequence[StepStart]
    timers: Sequence[Timer]


@dataclass(frozen=True, slots=True)
class Pending:
    """What the run is waiting for: steps, timers not cancelled, hooks, and child runs."""

    steps: tuple[str, ...]
    timers: tuple[Timer, ...]
    hooks: tuple[str, ...]
    children: tuple[str, ...] = ()
