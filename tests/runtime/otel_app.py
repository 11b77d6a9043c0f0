"""Workflows for the OpenTelemetry tests; a worker process importing this module exports
its spans, one JSON object per line, to the file ``OTEL_TEST_SPANS`` names."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence

from workflowkit import RetryableError, sleep, step, workflow

ATTEMPTS: Counter[str] = Counter()


@step(name="otel_app.flaky")
def flaky(key: str) -> str:
    ATTEMPTS[key] += 1
    if ATTEMPTS[key] == 1:
        raise RetryableError("first attempt fails", retry_after=0.01)
    return key


@step(name="otel_app.inner")
async def inner(x: int) -> str:
    # The attempt's span is current while the step runs: the step's own spans join the trace.
    from opentelemetry import trace

    with trace.get_tracer("otel_app").start_as_current_span("inside the step"):
        return f"inner {x}"


@workflow(name="otel_app.traced")
async def traced(key: str) -> str:
    first = await flaky(key)
    await sleep(0.05)
    second = await inner(1)
    return f"{first} {second}"


def _export_to_file(path: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class FileExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with open(path, "a") as out:
                for span in spans:
                    context, parent = span.get_span_context(), span.parent
                    assert context is not None
                    record = {
                        "name": span.name,
                        "trace_id": context.trace_id,
                        "span_id": context.span_id,
                        "parent_id": parent.span_id if parent is not None else None,
                        "attributes": dict(span.attributes or {}),
                        "events": [event.name for event in span.events],
                        "status": span.status.status_code.name,
                        "pid": os.getpid(),
                    }
                    out.write(json.dumps(record) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)


if os.environ.get("OTEL_TEST_SPANS"):
    _export_to_file(os.environ["OTEL_TEST_SPANS"])
