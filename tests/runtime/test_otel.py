"""OpenTelemetry (the ``[otel]`` extra): one trace from the caller of ``start()`` through the
run's segments and step attempts, across worker processes; metrics; and nothing at all
without the extra."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import workflowkit
from workflowkit import step, workflow
from workflowkit.api import get_run, start
from workflowkit.testing import wait_for_hook

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        if data is None:  # nothing recorded yet
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """SDK providers for this test only. The API lets a process set its providers once;
    the globals are put back afterwards, as OpenTelemetry's own test utilities do."""
    found = Telemetry()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(found.spans))
    meter_provider = MeterProvider(metric_readers=[found.metrics])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    try:
        yield found
    finally:
        workflowkit.shutdown()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None
        import opentelemetry.metrics._internal as metrics_internal

        metrics_internal._METER_PROVIDER_SET_ONCE = Once()
        metrics_internal._METER_PROVIDER = None


def spawn_worker(db: Path, spans: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE), os.environ.get("PYTHONPATH", "")]),
        "WORKFLOWKIT_WORLD": f"sqlite:///{db}",
        "OTEL_TEST_SPANS": str(spans),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflowkit", "worker", "otel_app"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "started on" in line:
            return proc
    raise AssertionError(f"worker exited early with {proc.wait()}")


async def test_a_run_executed_by_another_process_continues_the_callers_trace(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import otel_app
    finally:
        sys.path.remove(str(HERE))
    db, spans_file = tmp_path / "wk.db", tmp_path / "spans.jsonl"
    workflowkit.configure(f"sqlite:///{db}", embedded_worker=False)
    worker = spawn_worker(db, spans_file)
    try:
        with trace.get_tracer("test").start_as_current_span("request") as request:
            run = await start(otel_app.traced, "k")
        assert await run.return_value(timeout=30) == "k inner 1"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0, errors

    request_context = request.get_span_context()
    [exported_request] = telemetry.spans.get_finished_spans()
    assert exported_request.name == "request"
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert {span["pid"] for span in spans} == {worker.pid}
    # One trace: the request's.
    assert {span["trace_id"] for span in spans} == {request_context.trace_id}
    [segment] = [s for s in spans if s["name"] == f"run {otel_app.traced.name}"]
    assert segment["parent_id"] == request_context.span_id
    assert segment["attributes"]["workflowkit.run_id"] == run.run_id
    assert segment["attributes"]["workflowkit.outcome"] == "completed"
    # The segment's events: the retry and the sleep (and its end).
    assert "retry" in segment["events"] and "sleep" in segment["events"]
    attempts = [s for s in spans if s["name"].startswith("step ")]
    assert [(s["name"], s["attributes"]["workflowkit.attempt"]) for s in attempts] == [
        (f"step {otel_app.flaky.name}", 1),
        (f"step {otel_app.flaky.name}", 2),
        (f"step {otel_app.inner.name}", 1),
    ]
    assert [s["attributes"]["workflowkit.outcome"] for s in attempts] == [
        "retrying",
        "completed",
        "completed",
    ]
    assert attempts[0]["status"] == "ERROR" and "exception" in attempts[0]["events"]
    assert {s["parent_id"] for s in attempts} == {segment["span_id"]}
    # Inside the step, the attempt's span is the current one.
    [inside] = [s for s in spans if s["name"] == "inside the step"]
    assert inside["parent_id"] == attempts[2]["span_id"]


@step
async def identity(x: int) -> int:
    return x


@workflow
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*(identity(i) for i in range(n))))


async def test_steps_claimed_from_the_step_queue_join_the_stored_trace(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    """A worker that runs a step of a run it does not hold parents the attempt on the trace
    context stored with the run."""
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", step_slots=1, poll_interval=0.05)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        run = await start(fan_out, 3)
    assert await run.return_value(timeout=30) == [0, 1, 2]
    workflowkit.shutdown()
    spans = telemetry.spans.get_finished_spans()
    trace_id = request.get_span_context().trace_id
    attempts = [s for s in spans if s.name.startswith("step ")]
    assert len(attempts) == 3
    assert {s.context.trace_id for s in attempts if s.context is not None} == {trace_id}
    [segment] = [s for s in spans if s.name.startswith("run ")]
    assert segment.context is not None
    parents = [s.parent.span_id for s in attempts if s.parent is not None]
    # One ran at once under the run's segment; the two queued (no free slot) were claimed
    # from the step queue, and hang under the request.
    request_id = request.get_span_context().span_id
    assert sorted(parents) == sorted([segment.context.span_id, request_id, request_id])


async def test_metrics_count_runs_attempts_and_retries(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import otel_app
    finally:
        sys.path.remove(str(HERE))
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    key = uuid.uuid4().hex
    run = await start(otel_app.traced, key)
    assert await run.return_value(timeout=30) == f"{key} inner 1"
    workflowkit.shutdown()

    def total(name: str, **attrs: str) -> float:
        points = telemetry.metric_points(name)
        wanted = {f"workflowkit.{k}": v for k, v in attrs.items()}
        return sum(
            p.value if hasattr(p, "value") else p.count
            for p in points
            if wanted.items() <= dict(p.attributes).items()
        )

    workflow_name = otel_app.traced.name
    assert total("workflowkit.runs.started", workflow=workflow_name) == 1
    assert total("workflowkit.runs.completed", workflow=workflow_name) == 1
    assert total("workflowkit.runs.failed", workflow=workflow_name) == 0
    flaky = otel_app.flaky.name
    assert total("workflowkit.step.attempts", step=flaky) == 2
    assert total("workflowkit.step.attempts", step=flaky, outcome="retrying") == 1
    assert total("workflowkit.step.retries", step=flaky) == 1
    assert total("workflowkit.step.duration", step=flaky) == 2  # a histogram: its count
    assert total("workflowkit.run.queue_wait", workflow=workflow_name) == 1


@pytest.mark.parametrize("installed", [False, True], ids=["extra missing", "otel unused"])
def test_without_opentelemetry_in_use_nothing_is_imported(tmp_path: Path, installed: bool) -> None:
    """With opentelemetry not installed (hidden here by an import hook), or installed but
    not used by the application, workflowkit runs workflows without importing it or
    anything of its own that needs it."""
    script = textwrap.dedent(
        f"""
        import sys

        class Hide:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
                return None

        if not {installed}:
            sys.meta_path.insert(0, Hide())
        import workflowkit
        from workflowkit import step, workflow
        from workflowkit.sync import start

        @step
        def add_one(x):
            return x + 1

        @workflow
        async def two(x):
            return await add_one(await add_one(x))

        workflowkit.configure("sqlite:///{tmp_path / "wk.db"}")
        assert start(two, 1).return_value(timeout=30) == 3
        workflowkit.shutdown()
        from workflowkit import _lifecycle
        assert _lifecycle.telemetry() is None
        loaded = sorted(m for m in sys.modules if "opentelemetry" in m or m.endswith("_otel"))
        assert not loaded, loaded
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@workflow
async def waits(token: str) -> object:
    from workflowkit import create_hook

    return await create_hook(token=token)


async def test_the_runs_gauge_reports_active_runs_by_status(
    telemetry: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflowkit import _lifecycle

    monkeypatch.setattr(_lifecycle, "GAUGE_EVERY", 0.05)
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    runs = [await start(waits, f"gauge-{uuid.uuid4().hex}") for _ in range(2)]

    def gauge() -> dict[str, float]:
        return {
            p.attributes["workflowkit.status"]: p.value
            for p in telemetry.metric_points("workflowkit.runs")
        }

    for _ in range(200):
        if gauge().get("running") == 2:
            break
        await asyncio.sleep(0.05)
    assert gauge() == {"pending": 0, "running": 2}
    for run in runs:
        await run.cancel()


@workflow
async def parent_of_one(x: int) -> int:
    child = await start(child_run, x)
    return int(await child.return_value())


@workflow
async def child_run(x: int) -> int:
    return await identity(x + 1)


async def test_a_child_run_joins_its_parents_trace(telemetry: Telemetry, tmp_path: Path) -> None:
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    with trace.get_tracer("test").start_as_current_span("request") as request:
        run = await start(parent_of_one, 1)
    assert await run.return_value(timeout=30) == 2
    workflowkit.shutdown()
    request_context = request.get_span_context()
    segments = {
        s.name: s for s in telemetry.spans.get_finished_spans() if s.name.startswith("run ")
    }
    child = segments[f"run {child_run.name}"]
    assert child.context is not None and child.context.trace_id == request_context.trace_id
    assert child.parent is not None and child.parent.span_id == request_context.span_id
    assert {s.context.trace_id for s in segments.values() if s.context} == {
        request_context.trace_id
    }


@pytest.mark.parametrize("evicted", [False, True], ids=["in memory", "evicted"])
async def test_hooks_are_events_of_the_runs_segments(
    telemetry: Telemetry, tmp_path: Path, evicted: bool
) -> None:
    """Sleeps and retries are covered across processes above; a hook's creation shows on
    the segment that created it, its payload on the segment it woke: the same one if the run
    stayed in memory, else the next one (which read the payload from the log)."""
    from workflowkit.api import resume_hook

    rt = workflowkit.configure(
        f"sqlite:///{tmp_path / 'wk.db'}", evict_after=0.05 if evicted else 60.0
    )
    token = f"span-{uuid.uuid4().hex}"
    run = await start(waits, token)
    while await rt.world.get_hook_by_token(token) is None:
        await asyncio.sleep(0.01)
    assert rt.worker is not None
    while evicted and run.run_id in rt.worker.drivers:
        await asyncio.sleep(0.01)
    await resume_hook(token, "payload")
    assert await run.return_value(timeout=30) == "payload"
    workflowkit.shutdown()
    segments = [s for s in telemetry.spans.get_finished_spans() if s.name.startswith("run ")]
    events = [[e.name for e in s.events] for s in segments]
    if evicted:
        assert [s.attributes["workflowkit.outcome"] for s in segments if s.attributes] == [
            "suspended",
            "completed",
        ]
        assert events == [["hook created"], ["hook received"]]
    else:
        assert events == [["hook created", "hook received"]]
    received = next(e for s in segments for e in s.events if e.name == "hook received")
    assert received.attributes is not None and received.attributes["workflowkit.id"]


async def test_a_run_failed_without_its_code_is_counted(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    """A worker fails a run past its deadline though it lacks the run's workflow: counted
    as failed like any other."""
    from datetime import UTC, datetime

    from workflowkit.worlds.records import RunOptions, RunStatus

    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.05)
    past = datetime.fromtimestamp(rt.world.now() - 1, UTC)
    await rt.world.create_run("wrun_gone", "elsewhere:gone", b"", {}, RunOptions(deadline=past))
    for _ in range(200):
        record = await rt.world.get_run("wrun_gone")
        if record is not None and record.status is RunStatus.FAILED:
            break
        await asyncio.sleep(0.05)
    workflowkit.shutdown()
    points = telemetry.metric_points("workflowkit.runs.failed")
    assert [(dict(p.attributes), p.value) for p in points] == [
        ({"workflowkit.workflow": "elsewhere:gone"}, 1)
    ]


@step
async def refuses(x: int) -> int:
    from workflowkit import FatalError

    raise FatalError(f"no {x}")


@workflow
async def fails(x: int) -> int:
    return await refuses(x)


async def test_a_failed_run_s_segment_and_step_carry_the_error(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    from workflowkit import WorkflowRunFailedError

    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    run = await start(fails, 7)
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=30)
    workflowkit.shutdown()
    spans = {s.name: s for s in telemetry.spans.get_finished_spans()}
    segment, attempt = spans[f"run {fails.name}"], spans[f"step {refuses.name}"]
    assert segment.attributes is not None and segment.attributes["workflowkit.outcome"] == "failed"
    assert segment.status.status_code.name == "ERROR"
    assert attempt.attributes is not None and attempt.attributes["workflowkit.outcome"] == "failed"
    assert attempt.status.description == "FatalError: no 7"
    [exception] = [e for e in attempt.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.message"] == "no 7"
    points = telemetry.metric_points("workflowkit.runs.failed")
    assert sum(p.value for p in points) == 1


@workflow
async def waits_for_ever() -> None:
    from workflowkit import create_hook

    await create_hook()


@workflow
async def holds_a_child() -> None:
    child = await start(waits_for_ever)
    await child.return_value()


async def test_runs_cancelled_or_failed_from_outside_are_counted(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    """``run.cancel()`` and ``run.fail()`` end a run with no worker recording it: the
    process that ended it counts it, so the counters add up to the runs that ended."""
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    cancelled, failed = await start(waits_for_ever), await start(waits_for_ever)
    await cancelled.cancel()
    await failed.fail("stuck")
    # Its child, cancelled with it, is counted too (by the process that failed the parent).
    parent = await start(holds_a_child)
    await wait_for_hook(get_run(f"{parent.run_id}.1"))
    await parent.fail("stuck too")
    workflowkit.shutdown()

    def counted(name: str) -> list[tuple[dict[str, Any], int]]:
        return [(dict(p.attributes), p.value) for p in telemetry.metric_points(name)]

    attrs = {"workflowkit.workflow": waits_for_ever.name}
    assert counted("workflowkit.runs.cancelled") == [(attrs, 2)]
    assert counted("workflowkit.runs.failed") == [
        (attrs, 1),
        ({"workflowkit.workflow": holds_a_child.name}, 1),
    ]
