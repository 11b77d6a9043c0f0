"""Forking a run: a new run of the same workflow and input whose log begins with the first
``n`` steps of another, so their results are reused and the code runs again from there.

What is copied: the source's log up to (not including) the creation of its step ``n + 1``,
by the order the code called its steps: the steps before it with their attempts and
results, the sleeps and hooks made in that part with what they received, patch markers, and
``run_started`` (with its time, so the copied part replays as it was recorded). An
operation of that part that had not finished by the cut runs again (a step), waits again
until its time (a sleep) or waits again (a hook; its token is the source's, so while the
source holds it the fork's hook conflicts). Stream chunks are not copied. A child run
started in that part cannot be forked (``ForkError``): it belongs to the source.

The fork is created not due, given its log in one append, then made due: a worker never
sees it half copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from .errors import ForkError
from .ids import new_id
from .worlds.base import World
from .worlds.records import Event, EventType, NewEvent, RunOptions, RunRecord

_NOT_COPIED = frozenset(
    {EventType.RUN_CREATED, EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)
_UNTIL_COPIED = datetime(9999, 1, 1, tzinfo=UTC)


async def fork(world: World, source: RunRecord, from_step: int) -> RunRecord:
    """A new run whose log holds ``source``'s first ``from_step`` steps."""
    events = await world.get_events(source.run_id)
    prefix = copied_prefix(source.run_id, events, from_step)
    options = RunOptions(
        queue=source.options.queue,
        key=source.options.key,
        priority=source.options.priority,
        forked_from=source.run_id,
    )
    attrs = {"name": source.workflow_name, "forked_from": source.run_id, "from_step": from_step}
    created = await world.create_run(
        new_id("wrun"),
        source.workflow_name,
        source.input,
        attrs,
        options,
        start_at=_UNTIL_COPIED if prefix else None,
    )
    if prefix:
        await world.append(created.record.run_id, prefix)
        await world.wake_run(created.record.run_id)
    found = await world.get_run(created.record.run_id)
    return found or created.record


def copied_prefix(run_id: str, events: Sequence[Event], from_step: int) -> list[NewEvent]:
    """The events a fork of the run from step ``from_step`` begins with."""
    created = [e for e in events if e.type is EventType.STEP_CREATED]
    if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0:
        raise ForkError(f"from_step must be a whole number of steps, 0 or more, not {from_step!r}")
    if from_step > len(created):
        raise ForkError(
            f"run {run_id} has {len(created)} step(s): cannot keep the first {from_step}"
        )
    cut = created[from_step].seq if from_step < len(created) else events[-1].seq + 1
    kept = [e for e in events if e.seq < cut and e.type not in _NOT_COPIED]
    if from_step == 0:
        return []  # nothing reused: a plain run of the same input
    child = next((e for e in kept if e.type is EventType.CHILD_CREATED), None)
    if child is not None:
        raise ForkError(
            f"run {run_id} started child run {child.correlation_id} before step "
            f"{from_step + 1}: a fork cannot copy that part (the child is the source's); "
            "fork from an earlier step"
        )
    return [NewEvent(e.type, e.correlation_id, e.payload, e.attrs, e.created_at) for e in kept]
