"""OpenTelemetry traces and metrics (the ``[otel]`` extra: ``opentelemetry-api`` only).

Imported by ``workflowkit._lifecycle`` only when the API is installed; it records nothing
until the application sets a tracer provider (traces) or a meter provider (metrics), so
with the API alone a worker pays two ``isinstance`` checks per step attempt.

Trace shape: the code that calls ``start()`` stores its trace context with the run
(``run_created``'s ``traceparent`` attribute, W3C trace context). Each run segment (a
worker drives the run until it suspends or ends) is a span under that context, and each
step attempt a span under its segment, or, on a worker that claimed the step from the step
queue, directly under the stored context. So one trace holds the request, the run and its
steps, whichever workers ran them. The attempt's span is the current span while the step's
code runs, so what the step calls (an instrumented HTTP client) joins the trace too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import context, metrics, trace
from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._lifecycle import StepAttempt
from .worlds.records import Event, EventType, NewEvent

SCOPE = "workflowkit"
_PROPAGATOR = TraceContextTextMapPropagator()
_EVENT_NAMES = {
    EventType.STEP_RETRYING: "retry",
    EventType.WAIT_CREATED: "sleep",
    EventType.WAIT_COMPLETED: "wake",
    EventType.HOOK_CREATED: "hook created",
    EventType.HOOK_RECEIVED: "hook received",
    EventType.STEP_COMPLETED: "step completed",
}
_OUTCOMES = {
    EventType.STEP_COMPLETED: "completed",
    EventType.STEP_RETRYING: "retrying",
    EventType.STEP_FAILED: "failed",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("workflowkit")
    except PackageNotFoundError:  # run from a source tree
        return "unknown"


def _proxy_meter_provider() -> type[Any]:
    # The API's placeholder until the application sets a provider; private in the API, so
    # looked up defensively (an API without it: every provider counts as set).
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - API layout changed
        return type(None)
    placeholder: type[Any] = _ProxyMeterProvider
    return placeholder


_NO_METER = (metrics.NoOpMeterProvider, _proxy_meter_provider())
_NO_TRACER = (ProxyTracerProvider, trace.NoOpTracerProvider)


class _Instruments:
    """workflowkit's metric instruments, on one meter; the runs gauge reads ``telemetry``'s
    last counts of active runs."""

    def __init__(self, meter: metrics.Meter, telemetry: Telemetry) -> None:
        self.counters = {
            "runs_started": meter.create_counter(
                "workflowkit.runs.started", unit="{run}", description="Runs started"
            ),
            "runs_completed": meter.create_counter(
                "workflowkit.runs.completed", unit="{run}", description="Runs completed"
            ),
            "runs_failed": meter.create_counter(
                "workflowkit.runs.failed", unit="{run}", description="Runs failed"
            ),
            "runs_cancelled": meter.create_counter(
                "workflowkit.runs.cancelled", unit="{run}", description="Runs cancelled"
            ),
        }
        self.attempts = meter.create_counter(
            "workflowkit.step.attempts", unit="{attempt}", description="Step attempts, by outcome"
        )
        self.retries = meter.create_counter(
            "workflowkit.step.retries", unit="{attempt}", description="Step attempts retried"
        )
        self.duration = meter.create_histogram(
            "workflowkit.step.duration", unit="s", description="Duration of step attempts"
        )
        self.queue_wait = meter.create_histogram(
            "workflowkit.run.queue_wait",
            unit="s",
            description="From a run's creation until a worker started it",
        )

        def observe(options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            counts = telemetry.run_counts
            if counts is None:
                return []
            return [
                metrics.Observation(counts.get(status, 0), {"workflowkit.status": status})
                for status in ("pending", "running")
            ]

        meter.create_observable_gauge(
            "workflowkit.runs",
            callbacks=[observe],
            unit="{run}",
            description="Runs pending and running, by status (read from the World)",
        )


class Telemetry:
    """workflowkit's tracer and instruments, taken from the providers the application set
    (again if it sets other ones: tests do)."""

    def __init__(self) -> None:
        self._version = _version()
        self._tracer_provider: object = None
        self._meter_provider: object = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.instruments: _Instruments | None = None
        # Active runs by status, as a worker last read them from the World (the gauge).
        self.run_counts: dict[str, int] | None = None

    # -- is anything listening ------------------------------------------------------------

    def tracing(self) -> bool:
        provider = trace.get_tracer_provider()
        if isinstance(provider, _NO_TRACER):
            return False
        if provider is not self._tracer_provider:
            self.tracer = provider.get_tracer(SCOPE, self._version)
            self._tracer_provider = provider
        return True

    def measuring(self) -> bool:
        provider = metrics.get_meter_provider()
        if isinstance(provider, _NO_METER):
            return False
        if provider is not self._meter_provider:
            self.instruments = _Instruments(provider.get_meter(SCOPE, self._version), self)
            self._meter_provider = provider
        return True

    # -- trace context --------------------------------------------------------------------

    def traceparent(self) -> str | None:
        """The W3C ``traceparent`` of the current span, if there is a valid one."""
        if not trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    # -- spans ----------------------------------------------------------------------------

    def start_segment(self, run_id: str, workflow: str, traceparent: str | None) -> Any:
        return self.tracer.start_span(
            f"run {workflow}",
            context=_extract(traceparent),
            kind=SpanKind.INTERNAL,
            attributes={"workflowkit.run_id": run_id, "workflowkit.workflow": workflow},
        )

    def end_segment(self, span: Any, outcome: str) -> None:
        span.set_attribute("workflowkit.outcome", outcome)
        if outcome == "failed":
            span.set_status(Status(StatusCode.ERROR, "the run failed"))
        span.end()

    def span_event(self, span: Any, event: Event) -> None:
        attrs: dict[str, Any] = {}
        if event.correlation_id is not None:
            attrs["workflowkit.id"] = event.correlation_id
        for key in ("attempt", "retry_at", "resume_at"):
            value = event.attrs.get(key)
            if isinstance(value, int | float):
                attrs[f"workflowkit.{key}"] = value
        name = _EVENT_NAMES.get(event.type, str(event.type))
        span.add_event(name, attrs, int(event.created_at.timestamp() * 1e9))

    def start_attempt(
        self, attempt: StepAttempt, segment_span: Any, traceparent: str | None
    ) -> tuple[Any, object]:
        """The attempt's span, made current for the step's code; with the token that
        makes it not current again. Its parent: the run segment's span if the attempt runs
        in the run's driver, else the trace context stored with the run."""
        if segment_span is not None:
            parent_context = trace.set_span_in_context(segment_span)
        else:
            parent_context = _extract(traceparent)
        span = self.tracer.start_span(
            f"step {attempt.step.name}",
            context=parent_context,
            kind=SpanKind.INTERNAL,
            attributes={
                "workflowkit.run_id": attempt.workflow.workflow_run_id,
                "workflowkit.workflow": attempt.workflow.workflow_name,
                "workflowkit.step_id": attempt.step_id,
                "workflowkit.step": attempt.step.name,
                "workflowkit.attempt": attempt.attempt,
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        return span, token

    def end_attempt(
        self,
        attempt: StepAttempt,
        outcome: NewEvent | None,
        error: BaseException | None,
        scope: tuple[Any, object] | None,
        seconds: float | None,
    ) -> None:
        """End the attempt's span (``scope``), and measure it unless ``seconds`` is None."""
        result = "abandoned" if outcome is None else _OUTCOMES.get(outcome.type, "failed")
        if scope is not None:
            span, token = scope
            context.detach(token)  # type: ignore[arg-type]
            span.set_attribute("workflowkit.outcome", result)
            if outcome is not None and outcome.type is EventType.STEP_RETRYING:
                retry_at = outcome.attrs.get("retry_at")
                if isinstance(retry_at, int | float):
                    span.set_attribute("workflowkit.retry_at", retry_at)
            if error is not None and result != "abandoned":
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {error}"))
            span.end()
        if seconds is not None and self.measuring():
            assert self.instruments is not None
            attrs = {"workflowkit.step": attempt.step.name, "workflowkit.outcome": result}
            self.instruments.attempts.add(1, attrs)
            self.instruments.duration.record(seconds, attrs)
            if result == "retrying":
                self.instruments.retries.add(1, {"workflowkit.step": attempt.step.name})

    # -- metrics --------------------------------------------------------------------------

    def count(self, what: str, workflow: str) -> None:
        if not self.measuring():  # the segment was told yes; the provider may have changed
            return
        assert self.instruments is not None
        self.instruments.counters[what].add(1, {"workflowkit.workflow": workflow})

    def run_started(self, workflow: str, queue_wait: float | None) -> None:
        if not self.measuring():
            return
        assert self.instruments is not None
        attrs = {"workflowkit.workflow": workflow}
        self.instruments.counters["runs_started"].add(1, attrs)
        if queue_wait is not None:
            self.instruments.queue_wait.record(queue_wait, attrs)


def _extract(traceparent: str | None) -> context.Context:
    """The stored trace context; without one, an empty context (a new trace), never the
    context that happens to be current in the worker."""
    if traceparent is None:
        return context.Context()
    return _PROPAGATOR.extract({"traceparent": traceparent}, context=context.Context())
