"""What the runtime tells the outside world about runs and steps: logs, and OpenTelemetry.

The runtime calls this module at a few lifecycle points, once each: a worker's driver
holds one ``RunSegment`` per stay of a run in its memory (``loaded``, ``appended``,
``delivered``, ``lease_lost``, ``ended``); ``runtime.steps.run_attempt`` calls
``attempt_started`` and ``attempt_ended`` around every step attempt, wherever it runs; the
client calls ``start_attrs`` when it creates a run, ``run_cancelled``,
``run_failed_by_operator`` and ``hook_received``;
a worker that fails a run it has no code for (past its deadline) calls ``ended_undriven``.

Logs go through ``logging`` under four names (docs/observability.md lists them, with the
``extra`` fields each record carries): failures and retries at INFO, the happy path at
DEBUG, and nothing per step at INFO when nothing fails. DEBUG records on the per-step path
are built only when DEBUG is enabled for their logger.

OpenTelemetry is used only when ``opentelemetry-api`` is installed (the ``[otel]`` extra)
and the application uses it: otherwise this module never imports it, and every hook is a
couple of attribute reads.
With it, spans and metrics are recorded only once the application has set a tracer
(meter) provider, checked once per run segment, and per step claimed from the step queue
(``workflowkit._otel``): a provider set later applies from the run's next segment.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from .context import DurableStep, WorkflowMetadata
from .worlds.records import Event, EventType, NewEvent

if TYPE_CHECKING:
    from ._otel import Telemetry
    from .worlds.base import World

runs_log = logging.getLogger("workflowkit.runs")
steps_log = logging.getLogger("workflowkit.steps")
hooks_log = logging.getLogger("workflowkit.hooks")
worker_log = logging.getLogger("workflowkit.worker")

_DEBUG = logging.DEBUG
_RUN_STARTED = EventType.RUN_STARTED
_RUN_COMPLETED = EventType.RUN_COMPLETED
_RUN_FAILED = EventType.RUN_FAILED
_STEP_COMPLETED = EventType.STEP_COMPLETED
_STEP_RETRYING = EventType.STEP_RETRYING
# What a run segment's span shows as events: retries, sleeps and hooks; and, among events
# others appended, steps other workers ran (those run here have spans of their own).
_SPAN_EVENTS = frozenset(
    {
        EventType.STEP_RETRYING,
        EventType.WAIT_CREATED,
        EventType.WAIT_COMPLETED,
        EventType.HOOK_CREATED,
        EventType.HOOK_RECEIVED,
    }
)
_DELIVERED_SPAN_EVENTS = _SPAN_EVENTS | {EventType.STEP_COMPLETED}
# What others append for a run that is not in memory and makes it due again (a hook's
# payload, a sleep's end, a queued step's attempts): the tail of the log a segment loads
# after the previous segment left, shown on the new segment's span.
_WAKING = frozenset(
    {
        EventType.WAIT_COMPLETED,
        EventType.HOOK_RECEIVED,
        EventType.STEP_STARTED,
        EventType.STEP_RETRYING,
        EventType.STEP_COMPLETED,
    }
)
# The run_created attribute holding the W3C trace context of the code that called start().
TRACEPARENT = "traceparent"


# -- OpenTelemetry, if installed ---------------------------------------------------------------

_telemetry: Telemetry | None = None


def telemetry() -> Telemetry | None:
    """workflowkit's OpenTelemetry instruments, once the application uses OpenTelemetry.

    An application that set a tracer or meter provider has imported the API's ``trace``
    or ``metrics`` module: until one of them is imported, there is nothing to record to,
    and workflowkit imports nothing (with or without the ``[otel]`` extra installed).
    """
    global _telemetry
    if _telemetry is None:
        modules = sys.modules
        if "opentelemetry.trace" not in modules and "opentelemetry.metrics" not in modules:
            return None
        try:
            from ._otel import Telemetry
        except ImportError:  # a partial or broken install: go without
            return None
        _telemetry = Telemetry()
    return _telemetry


def start_attrs(name: str) -> dict[str, Any]:
    """The ``run_created`` attributes of a run the caller starts: its workflow's name and,
    when the caller is inside an OpenTelemetry span, that span's trace context.

    Code in a span has imported ``opentelemetry.context``: if it is not imported, there is
    no span to record, and nothing is looked up.
    """
    attrs: dict[str, Any] = {"name": name}
    if "opentelemetry.context" in sys.modules:
        otel = telemetry()
        traceparent = otel.traceparent() if otel is not None else None
        if traceparent is not None:
            attrs[TRACEPARENT] = traceparent
    return attrs


# -- a run's stay in a worker's memory ---------------------------------------------------------


class RunSegment:
    """One run segment: a worker drives the run from claiming (or loading) it until it
    leaves memory (suspended, ended, handed back or lost). Its driver reports to it."""

    __slots__ = (
        "_created_at",
        "_ended",
        "_outcome",
        "_span",
        "measuring",
        "run_id",
        "traceparent",
        "tracing",
        "workflow",
    )

    def __init__(self, run_id: str, workflow: str) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.traceparent: str | None = None  # stored with the run at its start
        self._span: Any = None  # the segment's span, while tracing
        self._created_at: datetime | None = None
        self._outcome = "suspended"
        self._ended = False
        # Whether the application had set OpenTelemetry providers when the segment began:
        # asked once per segment rather than once per step (a lookup in os.environ each).
        self.tracing = False
        self.measuring = False

    def loaded(self, events: Sequence[Event]) -> None:
        """The driver read the run's log (its first event is ``run_created``)."""
        if self._ended or not events:
            return
        first = events[0]
        self._created_at = first.created_at
        traceparent = first.attrs.get(TRACEPARENT)
        self.traceparent = traceparent if isinstance(traceparent, str) else None
        otel = telemetry()
        if otel is not None:
            self.tracing, self.measuring = otel.tracing(), otel.measuring()
            if self._span is None and self.tracing:
                self._span = otel.start_segment(self.run_id, self.workflow, self.traceparent)
                self.delivered(_woke_it(events))

    @property
    def span(self) -> Any:
        """The segment's span (step attempts here are its children), or None."""
        return self._span

    def appended(self, events: Sequence[Event]) -> None:
        """Events this worker appended for the run (its code's and its steps' outcomes)."""
        for event in events:
            kind = event.type
            if kind is _RUN_STARTED:
                self._run_started(event)
            elif kind is _RUN_COMPLETED:
                self._outcome = "completed"
                if runs_log.isEnabledFor(_DEBUG):
                    runs_log.debug(
                        "run %s (%s) completed", self.run_id, self.workflow, extra=self._extra()
                    )
                self._count("runs_completed")
            elif kind is _RUN_FAILED:
                self._outcome = "failed"
                error = _error_text(event.payload)
                runs_log.info(
                    "run %s (%s) failed: %s",
                    self.run_id,
                    self.workflow,
                    error,
                    extra=self._extra(error=error),
                )
                self._count("runs_failed")
            elif self._span is not None and kind in _SPAN_EVENTS:
                self._span_event(event)

    def delivered(self, events: Sequence[Event]) -> None:
        """Events others appended, as the driver catches up with them (hook payloads,
        wake-ups, results of steps other workers ran)."""
        if self._span is None:
            return
        for event in events:
            kind = event.type
            if kind in _DELIVERED_SPAN_EVENTS:
                self._span_event(event)

    def lease_lost(self) -> None:
        self._outcome = "lease_lost"
        worker_log.warning(
            "run %s (%s): lease lost to another worker; dropping it",
            self.run_id,
            self.workflow,
            extra=self._extra(),
        )

    def ended(self) -> None:
        """The run left this worker's memory (called again: nothing more)."""
        if self._ended:
            return
        self._ended = True
        if self._span is not None:
            otel = telemetry()
            assert otel is not None
            otel.end_segment(self._span, self._outcome)
            self._span = None

    def _run_started(self, event: Event) -> None:
        if runs_log.isEnabledFor(_DEBUG):
            runs_log.debug("run %s (%s) started", self.run_id, self.workflow, extra=self._extra())
        otel = telemetry()
        if otel is not None and self.measuring:
            wait = None
            if self._created_at is not None:
                wait = max(0.0, (event.created_at - self._created_at).total_seconds())
            otel.run_started(self.workflow, wait)

    def _span_event(self, event: Event) -> None:
        if self._span is not None:
            otel = telemetry()
            assert otel is not None
            otel.span_event(self._span, event)

    def _count(self, what: str) -> None:
        otel = telemetry()
        if otel is not None and self.measuring:
            otel.count(what, self.workflow)

    def _extra(self, **more: Any) -> dict[str, Any]:
        return {"run_id": self.run_id, "step_id": None, "workflow": self.workflow, **more}


def ended_undriven(run_id: str, workflow: str, events: Sequence[Event]) -> None:
    """A worker ended a run it never drove (past its deadline, its code not here): logged
    and counted as any run's end is."""
    segment = RunSegment(run_id, workflow)
    otel = telemetry()
    if otel is not None:
        segment.measuring = otel.measuring()
    segment.appended(events)


def _woke_it(events: Sequence[Event]) -> Sequence[Event]:
    """The events at the end of a run's log appended since its code last ran (what made it
    due again); none for a run that starts or ended."""
    start = len(events)
    while start > 0 and events[start - 1].type in _WAKING:
        start -= 1
    return events[start:] if start > 0 else ()


# -- step attempts -----------------------------------------------------------------------------


class StepAttempt(Protocol):
    """A step attempt as reported here (``runtime.steps.Attempt`` is one)."""

    @property
    def step(self) -> DurableStep: ...

    @property
    def step_id(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def workflow(self) -> WorkflowMetadata: ...

    @property
    def parent(self) -> RunSegment | str | None:
        """The driver's run segment, or the stored trace context of a claimed step."""
        ...


class AttemptTrace:
    """What ``attempt_started`` hands ``attempt_ended``: when it began, and its span."""

    __slots__ = ("began", "measuring", "scope")

    def __init__(self, began: float, scope: Any, measuring: bool) -> None:
        self.began = began
        self.scope = scope  # the attempt's span, current while the step runs; or None
        self.measuring = measuring


def attempt_started(attempt: StepAttempt) -> AttemptTrace | None:
    """Around every step attempt, here or on a worker that claimed it. None when neither
    tracing nor metrics are on (the usual case without the ``[otel]`` extra)."""
    if steps_log.isEnabledFor(_DEBUG):
        steps_log.debug(
            "step %s (%s) of run %s: attempt %d started",
            attempt.step_id,
            attempt.step.name,
            attempt.workflow.workflow_run_id,
            attempt.attempt,
            extra=_step_extra(attempt),
        )
    otel = telemetry()
    if otel is None:
        return None
    parent = attempt.parent
    if isinstance(parent, RunSegment):
        tracing, measuring = parent.tracing, parent.measuring
    else:  # claimed from the step queue: no segment here
        tracing, measuring = otel.tracing(), otel.measuring()
    if not tracing and not measuring:
        return None
    scope = None
    if tracing:
        if isinstance(parent, RunSegment):
            scope = otel.start_attempt(attempt, parent.span, parent.traceparent)
        else:
            scope = otel.start_attempt(attempt, None, parent)
    return AttemptTrace(time.perf_counter(), scope, measuring)


def attempt_ended(
    attempt: StepAttempt,
    outcome: NewEvent | None,
    error: BaseException | None,
    trace: AttemptTrace | None,
) -> None:
    """The attempt's outcome is known: the event to record (``error``: what the step
    raised, if it failed); None: the worker stopped it (shutting down, or the run left
    memory), and it will run again."""
    kind = None if outcome is None else outcome.type
    if kind is _STEP_COMPLETED or kind is None:
        if steps_log.isEnabledFor(_DEBUG):
            steps_log.debug(
                "step %s (%s) of run %s: attempt %d %s",
                attempt.step_id,
                attempt.step.name,
                attempt.workflow.workflow_run_id,
                attempt.attempt,
                "completed" if kind is not None else "stopped by the worker",
                extra=_step_extra(attempt),
            )
    elif kind is _STEP_RETRYING:
        assert outcome is not None
        retry_at = _iso(outcome.attrs.get("retry_at"))
        text = _exception_text(error)
        steps_log.info(
            "step %s (%s) of run %s: attempt %d failed: %s; retrying at %s",
            attempt.step_id,
            attempt.step.name,
            attempt.workflow.workflow_run_id,
            attempt.attempt,
            text,
            retry_at,
            extra=_step_extra(attempt, error=text, retry_at=retry_at),
        )
    else:
        text = _exception_text(error)
        steps_log.info(
            "step %s (%s) of run %s failed after %d attempt(s): %s",
            attempt.step_id,
            attempt.step.name,
            attempt.workflow.workflow_run_id,
            attempt.attempt,
            text,
            extra=_step_extra(attempt, error=text),
            exc_info=error if isinstance(error, Exception) else None,
        )
    if trace is not None:
        otel = telemetry()
        assert otel is not None
        seconds = time.perf_counter() - trace.began
        otel.end_attempt(attempt, outcome, error, trace.scope, seconds if trace.measuring else None)


# How often a worker reads the counts of active runs for the runs gauge (metrics on only).
GAUGE_EVERY = 30.0


def runs_gauge(world: World) -> Coroutine[Any, Any, None] | None:
    """A worker's task feeding the ``workflowkit.runs`` gauge; None without the extra."""
    return _read_run_counts(world) if telemetry() is not None else None


async def _read_run_counts(world: World) -> None:
    while True:
        otel = telemetry()
        if otel is not None and otel.measuring():
            try:
                counts = await world.count_active_runs()
            except Exception:  # the worker's own loop reports the World being away
                worker_log.debug("could not count active runs", exc_info=True)
            else:
                otel.run_counts = {str(status): count for status, count in counts.items()}
        await asyncio.sleep(GAUGE_EVERY)


# The stored trace context of runs whose steps this process claimed lately: a run's steps
# are often claimed by the same worker one after another, and reading it costs a read of
# the run's log. Bounded; the oldest entry goes first.
_claimed_runs: dict[str, str | None] = {}
_CLAIMED_RUNS_KEPT = 1024


async def claimed_parent(world: World, run_id: str) -> str | None:
    """The trace context stored with a run, for a worker running one of its steps from
    the step queue (the run's driver is elsewhere); looked up only while tracing."""
    otel = telemetry()
    if otel is None or not otel.tracing():
        return None
    if run_id in _claimed_runs:
        return _claimed_runs[run_id]
    events = await world.get_events(run_id)
    stored = events[0].attrs.get(TRACEPARENT) if events else None
    traceparent = stored if isinstance(stored, str) else None
    if len(_claimed_runs) >= _CLAIMED_RUNS_KEPT:
        del _claimed_runs[next(iter(_claimed_runs))]
    _claimed_runs[run_id] = traceparent
    return traceparent


# -- client-side points ------------------------------------------------------------------------


def run_cancelled(run_id: str, workflow: str) -> None:
    """A client cancelled the run: logged and counted by its process."""
    runs_log.info(
        "run %s (%s) cancelled",
        run_id,
        workflow,
        extra={"run_id": run_id, "step_id": None, "workflow": workflow},
    )
    _count_ended("runs_cancelled", workflow)


def run_failed_by_operator(run_id: str, workflow: str, failure: BaseException) -> None:
    """A client failed the run with ``failure`` (``workflowkit fail``, ``run.fail()``):
    logged and counted by its process as a worker does the failures it records."""
    error = _exception_text(failure)
    runs_log.info(
        "run %s (%s) failed: %s",
        run_id,
        workflow,
        error,
        extra={"run_id": run_id, "step_id": None, "workflow": workflow, "error": error},
    )
    _count_ended("runs_failed", workflow)


async def children_cancelled(world: World, parent_id: str, child_ids: Sequence[str]) -> None:
    """Runs cancelled because ``parent_id`` ended (``AppendResult.cancelled_children``):
    logged and counted by the process that ended it, as a client's cancel is."""
    for child_id in child_ids:
        try:
            record = await world.get_run(child_id)
        except Exception:  # the log line must not fail the end it reports
            record = None
        workflow = record.workflow_name if record is not None else "?"
        runs_log.info(
            "run %s (%s) cancelled: its parent run %s ended",
            child_id,
            workflow,
            parent_id,
            extra={"run_id": child_id, "step_id": None, "workflow": workflow},
        )
        _count_ended("runs_cancelled", workflow)


def _count_ended(what: str, workflow: str) -> None:
    otel = telemetry()
    if otel is not None:
        otel.count(what, workflow)


async def hook_received(world: World, run_id: str, hook_id: str) -> None:
    """A payload was recorded for the hook (never its token in logs: a webhook's token is
    what lets anyone post to it). The run's workflow is read only when the record is
    wanted: a hook's record does not name it."""
    if hooks_log.isEnabledFor(_DEBUG):
        run = await world.get_run(run_id)
        workflow = run.workflow_name if run is not None else None
        hooks_log.debug(
            "hook %s of run %s (%s) received a payload",
            hook_id,
            run_id,
            workflow,
            extra={
                "run_id": run_id,
                "step_id": None,
                "workflow": workflow,
                "hook_id": hook_id,
            },
        )


# -- helpers -----------------------------------------------------------------------------------


def _step_extra(attempt: StepAttempt, **more: Any) -> dict[str, Any]:
    return {
        "run_id": attempt.workflow.workflow_run_id,
        "step_id": attempt.step_id,
        "workflow": attempt.workflow.workflow_name,
        "step": attempt.step.name,
        "attempt": attempt.attempt,
        **more,
    }


def _iso(timestamp: object) -> str | None:
    if not isinstance(timestamp, int | float):
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _exception_text(error: BaseException | None) -> str:
    if error is None:
        return "(no exception)"
    text = str(error)
    return f"{type(error).__qualname__}: {text}" if text else type(error).__qualname__


def _error_text(payload: bytes | None) -> str:
    """A run's stored error, in one line, for its log record (only ever on failure)."""
    if payload is None:
        return "(no error recorded)"
    from . import serde
    from .errors import SerializationError

    try:
        error = serde.decode(payload)
    except SerializationError as exc:
        return f"(error not decodable: {exc})"
    return _exception_text(error) if isinstance(error, BaseException) else repr(error)
