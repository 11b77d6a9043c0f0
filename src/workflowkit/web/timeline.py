"""The run's trace: each step attempt, sleep and hook as a bar on the run's time axis.

Derived from the event log alone, so a step that was retried shows one bar per attempt
(``step_started`` opens an attempt; ``step_retrying``, ``step_failed`` or
``step_completed`` closes it), and a step started again while running (its worker died)
shows the lost attempt as ``interrupted``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..inspection import clock
from ..worlds.records import Event, EventType, RunRecord, RunStatus, from_timestamp


@dataclass(frozen=True, slots=True)
class Payload:
    label: str  # "input", "output", "error", "metadata", "payload"
    data: bytes


@dataclass(frozen=True, slots=True)
class Bar:
    item_id: str  # unique on the page: "run", "step_x-2" (attempt 2), "wait_x", "hook_x"
    kind: str  # "run" | "step" | "sleep" | "hook" | "child"
    label: str
    state: str  # completed, failed, retrying, running, pending, waiting, received, ...
    start: datetime
    end: datetime | None  # None: still open
    correlation_id: str | None = None
    attempt: int | None = None
    facts: tuple[tuple[str, str], ...] = ()
    payloads: tuple[Payload, ...] = ()


@dataclass(frozen=True, slots=True)
class Timeline:
    origin: datetime
    until: datetime  # the right end of the whole run's axis
    bars: tuple[Bar, ...]
    window: tuple[float, float] | None = None  # zoomed in: the seconds after origin shown

    @property
    def length(self) -> float:
        """Seconds from the origin (the run's creation, or its first event's time) to the right
        end of the whole axis."""
        return max(0.0, (self.until - self.origin).total_seconds())

    @property
    def shown(self) -> tuple[float, float]:
        """The seconds after origin the axis shows (all of them unless zoomed)."""
        return self.window or (0.0, self.length)

    def zoom(self, start: float, end: float) -> Timeline:
        """The same bars on an axis showing only ``[start, end]`` seconds after origin."""
        start, end = max(0.0, start), min(self.length, end)
        if end - start < _SHORTEST_WINDOW:
            return replace(self, window=None)
        return replace(self, window=(start, end))

    def offset(self, moment: datetime) -> float:
        """Where ``moment`` sits on the axis, 0..100 (percent)."""
        first, last = self.shown
        if last - first <= 0:
            return 0.0
        at = (moment - self.origin).total_seconds()
        return max(0.0, min(100.0, (at - first) / (last - first) * 100))

    def outside(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end]`` lies wholly off the axis shown."""
        first, last = self.shown
        return (end - self.origin).total_seconds() < first or (
            start - self.origin
        ).total_seconds() > last

    def ticks(self, at_most: int = 6) -> list[tuple[float, str]]:
        """Even ticks on the axis shown: (percent, label), every 1, 2 or 5 times a power of
        ten of seconds, minutes, hours or days, labelled as time since the run began."""
        first, last = self.shown
        if last - first <= 0:
            return [(0.0, "0")]
        step = tick_step((last - first) / at_most)
        ticks = []
        n = math.ceil(first / step - 1e-9)
        while n * step <= last + 1e-9:
            at = n * step
            ticks.append(((at - first) / (last - first) * 100, tick_label(at, step)))
            n += 1
        return ticks


_SHORTEST_WINDOW = 1e-6  # seconds (times are kept to the microsecond): narrower shows all

# Tick spacings: 1, 2, 5 x 10^n of each unit, up to where the next unit takes over.
_STEPS = (
    *(m * 10.0**e for e in range(-6, 0) for m in (1, 2, 5)),
    *(m * 1.0 for m in (1, 2, 5, 10, 20)),
    *(m * 60.0 for m in (1, 2, 5, 10, 20)),
    *(m * 3600.0 for m in (1, 2, 5, 10, 20)),
    *(m * 86400.0 for m in (1, 2, 5, 10, 20, 50, 100, 200, 500)),
)


def tick_step(at_least: float) -> float:
    """The smallest even tick spacing of at least ``at_least`` seconds."""
    return next((s for s in _STEPS if s >= at_least * (1 - 1e-9)), _STEPS[-1])


def tick_label(seconds: float, step: float) -> str:
    """``"+1h20m"``, ``"+40s"``, ``"+1.5s"``, ``"+20ms"``: time since the run began, to the unit of
    ``step`` (so labels stay short and never wrap)."""
    if seconds <= 0:
        return "0"
    if step < 1:
        digits = max(0, -math.floor(math.log10(step) + 1e-9))  # decimals of a second
        if seconds < 1:
            return f"+{seconds * 1000:.{max(0, digits - 3)}f}ms"
        return f"+{seconds:.{digits}f}s" if seconds < 60 else "+" + _parts(seconds, 1)
    return "+" + _parts(seconds, step)


def _parts(seconds: float, step: float) -> str:
    """``seconds`` in days, hours, minutes and seconds, down to the largest unit in step."""
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    smallest = next(size for _, size in units if size <= max(step, 1))
    left, parts = round(seconds / smallest) * smallest, []
    for unit, size in units:
        count, left = divmod(left, size)
        if count and size >= smallest:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0"


@dataclass
class _Step:
    """Collects one step's events while the log is read (local to ``build``)."""

    step_id: str
    name: str
    created: datetime
    input: bytes | None
    attempts: list[Bar] = field(default_factory=list)
    open: Bar | None = None


def build(run: RunRecord, events: Sequence[Event], now: datetime) -> Timeline:
    steps: dict[str, _Step] = {}
    others: list[Bar] = []  # sleeps, hooks and child runs, in order of creation
    index: dict[str, int] = {}  # correlation id -> position in ``others``
    order: list[str] = []  # step ids and other ids in order of creation

    def close(step: _Step, state: str, at: datetime, payload: Payload | None) -> None:
        if step.open is None:
            return
        extra = (payload,) if payload is not None else ()
        step.attempts.append(
            replace(step.open, state=state, end=at, payloads=step.open.payloads + extra)
        )
        step.open = None

    for e in events:
        cid = e.correlation_id or ""
        if e.type is EventType.STEP_CREATED:
            name = str(e.attrs.get("label") or e.attrs.get("name", "step"))
            steps[cid] = _Step(cid, name, e.created_at, e.payload)
            order.append(cid)
        elif e.type is EventType.STEP_STARTED and cid in steps:
            step = steps[cid]
            close(step, "interrupted", e.created_at, None)
            attempt = int(e.attrs.get("attempt", len(step.attempts) + 1))
            inputs = (Payload("input", step.input),) if step.input is not None else ()
            step.open = Bar(
                f"{cid}-{attempt}",
                "step",
                step.name,
                "running",
                e.created_at,
                None,
                cid,
                attempt,
                payloads=inputs,
            )
        elif e.type in _STEP_ENDS and cid in steps:
            state, label = _STEP_ENDS[e.type]
            payload = Payload(label, e.payload) if e.payload is not None else None
            close(steps[cid], state, e.created_at, payload)
        elif e.type is EventType.WAIT_CREATED:
            resume = from_timestamp(_number(e.attrs.get("resume_at")))
            facts = (("resumes at", resume.isoformat()),) if resume else ()
            # A long sleep's bar is mostly the future: its label says when it ends.
            label = f"sleep until {clock(resume, now)}" if resume else "sleep"
            index[cid] = len(others)
            order.append(cid)
            others.append(Bar(cid, "sleep", label, "waiting", e.created_at, None, cid, facts=facts))
        elif e.type is EventType.WAIT_COMPLETED and cid in index:
            bar = others[index[cid]]
            others[index[cid]] = replace(bar, state="completed", end=e.created_at)
        elif e.type in (EventType.HOOK_CREATED, EventType.HOOK_CONFLICT):
            token = str(e.attrs.get("token", ""))
            kind = "webhook" if e.attrs.get("webhook") else "hook"
            conflict = e.type is EventType.HOOK_CONFLICT
            payloads = (Payload("metadata", e.payload),) if e.payload is not None else ()
            index[cid] = len(others)
            order.append(cid)
            others.append(
                Bar(
                    cid,
                    "hook",
                    f"{kind} {token}",
                    "conflict" if conflict else "waiting",
                    e.created_at,
                    e.created_at if conflict else None,
                    cid,
                    facts=(("token", token), ("kind", kind)),
                    payloads=payloads,
                )
            )
        elif e.type is EventType.HOOK_RECEIVED and cid in index:
            bar = others[index[cid]]
            received = (Payload("payload", e.payload),) if e.payload is not None else ()
            others[index[cid]] = replace(
                bar,
                state="received",
                payloads=bar.payloads + received,
                facts=(*bar.facts, ("received", e.created_at.isoformat())),
            )
        elif e.type is EventType.HOOK_DISPOSED and cid in index:
            bar = others[index[cid]]
            others[index[cid]] = replace(bar, end=e.created_at)
        elif e.type is EventType.CHILD_CREATED:
            name = str(e.attrs.get("name", "workflow"))
            inputs = (Payload("input", e.payload),) if e.payload is not None else ()
            index[cid] = len(others)
            order.append(cid)
            about = (("run", cid), ("detached", "yes" if e.attrs.get("detached") else "no"))
            others.append(
                Bar(
                    cid,
                    "child",
                    f"child {name}",
                    "running",
                    e.created_at,
                    None,
                    cid,
                    facts=about,
                    payloads=inputs,
                )
            )
        elif e.type is EventType.CHILD_COMPLETED and cid in index:
            bar = others[index[cid]]
            state = str(e.attrs.get("status", "completed"))
            label = "output" if state == "completed" else "error"
            ended = (Payload(label, e.payload),) if e.payload is not None else ()
            others[index[cid]] = replace(
                bar, state=state, end=e.created_at, payloads=bar.payloads + ended
            )

    bars = [_run_bar(run)]
    for cid in order:
        if cid in steps:
            step = steps[cid]
            attempts = step.attempts + ([step.open] if step.open is not None else [])
            if not attempts:
                inputs = (Payload("input", step.input),) if step.input is not None else ()
                attempts = [
                    Bar(
                        f"{cid}-0",
                        "step",
                        step.name,
                        "pending",
                        step.created,
                        None,
                        cid,
                        None,
                        payloads=inputs,
                    )
                ]
            bars.extend(attempts)
        else:
            bars.append(others[index[cid]])
    if run.status.terminal and run.completed_at is not None:
        # What was still open when the run ended (a hook never disposed, an abandoned
        # attempt) ends with it.
        bars = [b if b.end is not None else _ended_with(b, run) for b in bars]
    ends = [b.end for b in bars if b.end is not None]
    until = run.completed_at if run.status.terminal and run.completed_at else now
    until = max([until, *ends])
    return Timeline(origin_of(run, events), until, tuple(bars))


def origin_of(run: RunRecord, events: Sequence[Event]) -> datetime:
    """Where a run's axis begins: its creation, or earlier for a fork, whose log begins
    with its source's events at their own times (the steps it reused are shown where they
    ran, not hidden before the axis)."""
    return min([run.created_at, *(e.created_at for e in events)])


def _ended_with(bar: Bar, run: RunRecord) -> Bar:
    """An open bar of an ended run ends with it; a step attempt still running then was
    cancelled with the run, or abandoned by it (its late result is ignored)."""
    state, facts = bar.state, bar.facts
    if bar.kind == "step" and state == "running":
        if run.status is RunStatus.CANCELLED:
            state, why = "cancelled", "its run was cancelled"
        else:
            state, why = "abandoned", f"its run {run.status} first; a late result is ignored"
        facts = (*facts, ("ended", why))
    return replace(bar, end=run.completed_at, state=state, facts=facts)


_STEP_ENDS = {
    EventType.STEP_RETRYING: ("retrying", "error"),
    EventType.STEP_FAILED: ("failed", "error"),
    EventType.STEP_COMPLETED: ("completed", "output"),
}


def _run_bar(run: RunRecord) -> Bar:
    payloads = [Payload("input", run.input)]
    if run.output is not None:
        payloads.append(Payload("output", run.output))
    if run.error is not None:
        payloads.append(Payload("error", run.error))
    end = run.completed_at if run.status.terminal else None
    return Bar(
        "run",
        "run",
        run.workflow_name,
        str(run.status),
        run.created_at,
        end,
        payloads=tuple(payloads),
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
