"""The cross-run rules: children created, parents told of an end, children cancelled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ._plan_state import ENDS_RUN, RunState
from ._plan_writes import CreateChild, Deliver, FollowUp
from ._planner import AppendPlan, plan_append, plan_create_run
from .records import AppendResult, EventType, NewEvent, RunOptions, RunRecord, RunStatus


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
        self._cancelled: dict[str, str] = {}  # child cancelled with its parent -> the parent

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
        if follow_up.child_of is not None and plan.result.events:
            self._cancelled[follow_up.run_id] = follow_up.child_of

    def with_cancelled(self, run_id: str, result: AppendResult) -> AppendResult:
        """``result`` of the append to ``run_id``, naming the runs cancelled because it
        ended (its children, and theirs in turn)."""
        cancelled = [c for c in self._cancelled if self._descends(c, run_id)]
        return replace(result, cancelled_children=tuple(cancelled)) if cancelled else result

    def _descends(self, run_id: str, ancestor: str) -> bool:
        parent = self._cancelled.get(run_id)
        while parent is not None and parent != ancestor:
            parent = self._cancelled.get(parent)
        return parent == ancestor

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
    return event.type in ENDS_RUN


def _moment(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value), UTC)
