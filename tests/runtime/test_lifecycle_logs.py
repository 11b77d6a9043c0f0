"""What a worker logs about runs and steps, and ``workflowkit.logger`` in workflow code."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import workflowkit
from workflowkit import (
    FatalError,
    RetryableError,
    WorkflowRunFailedError,
    create_hook,
    logger,
    sleep,
    step,
    workflow,
)
from workflowkit.api import get_run, resume_hook, start
from workflowkit.logs import JsonFormatter
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import wait_for_hook
from workflowkit.worlds.records import EventType, RunOptions

LIFECYCLE = ("workflowkit.runs", "workflowkit.steps", "workflowkit.hooks", "workflowkit.worker")
ATTEMPTS: Counter[str] = Counter()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="workflowkit")
    return caplog


@step(max_retries=3)
def flaky(key: str) -> str:
    ATTEMPTS[key] += 1
    if ATTEMPTS[key] <= 2:
        raise RetryableError(f"attempt {ATTEMPTS[key]} of {key} failed", retry_after=0.01)
    return "ok"


@step
def refuse(key: str) -> str:
    raise FatalError(f"no way: {key}")


@workflow
async def retried_then_failed(key: str) -> str:
    await flaky(key)
    return await refuse(key)


async def _logged(caplog: pytest.LogCaptureFixture, run_id: str, text: str) -> None:
    """Until a record of the run says ``text`` (the worker logs a run's end after storing
    it, so a client waiting on the run may learn of the end first)."""
    for _ in range(500):
        if any(text in r.getMessage() for r in _ours(caplog, run_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing logged {text!r}")


def _ours(caplog: pytest.LogCaptureFixture, run_id: str) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name in LIFECYCLE and getattr(r, "run_id", None) == run_id
    ]


async def test_retries_and_failures_are_logged_at_info_with_the_runs_ids(
    cached_runtime: Runtime, debug_logs: pytest.LogCaptureFixture
) -> None:
    key = uuid.uuid4().hex
    run = await start(retried_then_failed, key)
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=20)
    await _logged(debug_logs, run.run_id, "failed: FatalError")
    records = _ours(debug_logs, run.run_id)
    info = [r for r in records if r.levelno >= logging.INFO]
    assert [r.name for r in info] == ["workflowkit.steps"] * 3 + ["workflowkit.runs"]
    first, second, failed, run_failed = info
    for record in info:
        assert record.workflow == retried_then_failed.name  # type: ignore[attr-defined]
    assert [r.step for r in info[:3]] == [flaky.name, flaky.name, refuse.name]  # type: ignore[attr-defined]
    # A retry: the error, the attempt that failed and when the next one is due.
    assert first.attempt == 1 and second.attempt == 2  # type: ignore[attr-defined]
    assert first.error == f"RetryableError: attempt 1 of {key} failed"  # type: ignore[attr-defined]
    retry_at = datetime.fromisoformat(first.retry_at)  # type: ignore[attr-defined]
    assert retry_at.tzinfo is not None
    assert first.getMessage() == (
        f"step {first.step_id} ({flaky.name}) of run {run.run_id}: attempt 1 failed: "  # type: ignore[attr-defined]
        f"RetryableError: attempt 1 of {key} failed; retrying at {first.retry_at}"  # type: ignore[attr-defined]
    )
    # The failed step: its error and traceback; the run: the error it ended with.
    assert failed.error == f"FatalError: no way: {key}"  # type: ignore[attr-defined]
    assert failed.exc_info is not None
    assert run_failed.step_id is None  # type: ignore[attr-defined]
    assert f"no way: {key}" in run_failed.error  # type: ignore[attr-defined]
    # The happy path, at DEBUG: the run's start, each attempt's start, the completed one.
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert f"run {run.run_id} ({retried_then_failed.name}) started" in debug
    assert sum(f"({flaky.name})" in m and m.endswith("completed") for m in debug) == 1
    assert sum(f"({flaky.name})" in m and "started" in m for m in debug) == 3


@step
def add_one(x: int) -> int:
    return x + 1


@workflow
async def five_steps(x: int) -> int:
    for _ in range(5):
        x = await add_one(x)
    return x


async def test_a_run_that_goes_well_logs_nothing_at_info(
    cached_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workflowkit")
    run = await start(five_steps, 0)
    assert await run.return_value(timeout=20) == 5
    await asyncio.sleep(0.1)  # the worker logs a run's end just after storing it
    assert _ours(caplog, run.run_id) == []


async def test_a_completed_run_and_a_received_hook_are_logged_at_debug(
    cached_runtime: Runtime, debug_logs: pytest.LogCaptureFixture
) -> None:
    token = f"t-{uuid.uuid4().hex}"
    run = await start(on_hook, token)
    while await cached_runtime.world.get_hook_by_token(token) is None:
        await asyncio.sleep(0.01)
    await resume_hook(token, "payload")
    assert await run.return_value(timeout=20) == "payload"
    await _logged(debug_logs, run.run_id, "completed")
    records = _ours(debug_logs, run.run_id)
    messages = [(r.name, r.levelno, r.getMessage()) for r in records]
    completed = f"run {run.run_id} ({on_hook.name}) completed"
    assert ("workflowkit.runs", logging.DEBUG, completed) in messages
    hooks = [r for r in records if r.name == "workflowkit.hooks"]
    assert len(hooks) == 1 and hooks[0].levelno == logging.DEBUG
    assert hooks[0].workflow == on_hook.name and hooks[0].step_id is None  # type: ignore[attr-defined]
    assert token not in hooks[0].getMessage()  # a webhook's token is its secret


async def test_a_cancelled_run_is_logged(
    cached_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workflowkit")
    run = await start(on_hook, f"t-{uuid.uuid4().hex}")
    await run.cancel()
    [record] = _ours(caplog, run.run_id)
    assert record.name == "workflowkit.runs" and record.workflow == on_hook.name  # type: ignore[attr-defined]
    assert record.getMessage() == f"run {run.run_id} ({on_hook.name}) cancelled"


@workflow
async def leaves_a_child(token: str) -> str:
    child = await start(on_hook, token)
    return child.run_id


async def test_a_child_cancelled_with_its_parent_is_logged_by_whoever_ended_the_parent(
    cached_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker that recorded the parent's end, or the client that cancelled it: no one
    else knows the child was cancelled."""
    caplog.set_level(logging.INFO, logger="workflowkit")
    parent = await start(leaves_a_child, f"t-{uuid.uuid4().hex}")
    child_id = await parent.return_value(timeout=10)
    await _logged(caplog, child_id, "cancelled")
    [record] = _ours(caplog, child_id)
    assert record.workflow == on_hook.name  # type: ignore[attr-defined]
    expected = f"run {child_id} ({on_hook.name}) cancelled: its parent run {parent.run_id} ended"
    assert record.getMessage() == expected

    parent = await start(waits_on_a_child, f"t-{uuid.uuid4().hex}")
    child_id = f"{parent.run_id}.1"
    await wait_for_hook(get_run(child_id))
    await parent.cancel()
    [record] = _ours(caplog, child_id)
    assert record.getMessage().startswith(f"run {child_id} ({on_hook.name}) cancelled: its parent")


@workflow
async def waits_on_a_child(token: str) -> None:
    child = await start(on_hook, token)
    await child.return_value()


# -- workflowkit.logger ------------------------------------------------------------------------


@workflow
async def chatty(token: str) -> str:
    logger.info("begin %s", token)
    try:
        await sleep(0.3)  # the run leaves memory here (evict_after is shorter)...
        logger.info("woke up")
        value = await add_one(1)
        logger.info("step gave %d", value)
        payload = await create_hook(token=token)  # ...and here
        logger.warning("hook gave %s", payload)
        value = await add_one(value)
        logger.info("done with %d", value)
        return str(payload)
    finally:
        # Runs when the run ends, and also when its code is dropped from memory: only
        # the end is the run's.
        logger.info("finally")


@pytest.fixture(params=["cached", "replay"])
def evicting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    rt = workflowkit.configure(
        f"sqlite:///{tmp_path / 'wk.db'}",
        evict_after=0.05,
        cache_runs=request.param == "cached",
        poll_interval=0.2,
    )
    yield rt
    workflowkit.shutdown()


async def test_workflowkit_logger_logs_each_line_once_across_eviction_and_replay(
    evicting: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workflowkit.workflow")
    token = f"t-{uuid.uuid4().hex}"
    run = await start(chatty, token)
    while await evicting.world.get_hook_by_token(token) is None:
        await asyncio.sleep(0.01)
    assert evicting.worker is not None
    while run.run_id in evicting.worker.drivers:  # evicted while it waits on the hook
        await asyncio.sleep(0.01)
    await resume_hook(token, "hi")
    assert await run.return_value(timeout=20) == "hi"
    lines = [r for r in caplog.records if r.name == "workflowkit.workflow"]
    assert [r.getMessage() for r in lines] == [
        f"begin {token}",
        "woke up",
        "step gave 2",
        "hook gave hi",
        "done with 3",
        "finally",
    ]
    for record in lines:
        assert record.run_id == run.run_id  # type: ignore[attr-defined]
        assert record.workflow == chatty.name  # type: ignore[attr-defined]
        assert record.filename == "test_lifecycle_logs.py"  # the caller, not the adapter


@step
def step_that_logs() -> str:
    logger.info("inside the step")
    return "ok"


@workflow
async def logs_in_a_step() -> str:
    return await step_that_logs()


async def test_workflowkit_logger_in_a_step_adds_the_step_ids(
    cached_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="workflowkit.workflow")
    run = await start(logs_in_a_step)
    assert await run.return_value(timeout=20) == "ok"
    [record] = [r for r in caplog.records if r.name == "workflowkit.workflow"]
    assert record.run_id == run.run_id and record.step == step_that_logs.name  # type: ignore[attr-defined]
    assert record.attempt == 1 and record.step_id  # type: ignore[attr-defined]


def test_workflowkit_logger_outside_a_run_is_a_plain_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workflowkit.workflow")
    logger.info("hello %s", "world", extra={"order": 7})
    [record] = caplog.records
    assert record.getMessage() == "hello world" and record.order == 7  # type: ignore[attr-defined]
    assert not hasattr(record, "run_id")


# -- JSON lines ----------------------------------------------------------------------------------


def test_json_formatter_writes_one_object_per_line_with_the_extra_fields() -> None:
    record = logging.LogRecord(
        "workflowkit.steps", logging.INFO, __file__, 1, "step %s\nfailed", ("s1",), None
    )
    record.run_id, record.step_id, record.when = "wrun_1", "step_1", datetime(2026, 1, 2)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["logger"] == "workflowkit.steps" and data["level"] == "INFO"
    assert data["message"] == "step s1\nfailed"
    assert data["run_id"] == "wrun_1" and data["step_id"] == "step_1"
    assert data["when"] == "2026-01-02 00:00:00"  # not JSON: its str()
    assert "ValueError: boom" in data["exc_info"]
    assert datetime.fromisoformat(data["time"]).tzinfo is not None


@workflow
async def on_hook(token: str) -> object:
    return await create_hook(token=token)


def test_worker_log_format_json_writes_one_object_per_line(tmp_path: Path) -> None:
    """``workflowkit worker --log-format json``: every line on stderr is a JSON object; a
    step's retry carries the run's ids."""
    import os
    import signal
    import subprocess
    import sys

    here = Path(__file__).parent
    sys.path.insert(0, str(here))
    try:
        import otel_app
    finally:
        sys.path.remove(str(here))
    db = tmp_path / "wk.db"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(here.parents[1] / "src"), str(here)]),
        "WORKFLOWKIT_WORLD": f"sqlite:///{db}",
    }
    env.pop("OTEL_TEST_SPANS", None)
    worker = subprocess.Popen(
        [sys.executable, "-m", "workflowkit", "worker", "otel_app", "--log-format", "json"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stderr is not None
        for raw in worker.stderr:  # until the worker is up; every line is JSON meanwhile
            if "started on" in json.loads(raw)["message"]:
                break
        from workflowkit.sync import start as start_sync

        workflowkit.configure(f"sqlite:///{db}", embedded_worker=False)
        try:
            run = start_sync(otel_app.traced, "json")
            assert run.return_value(timeout=30) == "json inner 1"
        finally:
            workflowkit.shutdown()
    finally:
        worker.send_signal(signal.SIGTERM)
        _, rest = worker.communicate(timeout=30)
    assert worker.returncode == 0, rest
    lines = [json.loads(line) for line in rest.splitlines()]  # each line parses alone
    [retry] = [line for line in lines if line["logger"] == "workflowkit.steps"]
    assert retry["level"] == "INFO" and retry["run_id"] == run.run_id
    assert retry["workflow"] == otel_app.traced.name and retry["attempt"] == 1
    assert retry["error"] == "RetryableError: first attempt fails" and retry["retry_at"]
    assert retry["step_id"].startswith("step")


# -- leases ------------------------------------------------------------------------------------

HOLD = threading.Event()


@step
def held_step() -> str:
    HOLD.wait(20)
    return "late"


@workflow
async def one_held_step() -> str:
    return await held_step()


async def test_a_lost_lease_is_logged_with_the_runs_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another worker takes the run while its step runs (written here as that worker's claim
    would write it): the driver's next write is refused, and it says so, with the run's ids."""
    caplog.set_level(logging.INFO, logger="workflowkit.worker")
    db = tmp_path / "wk.db"
    rt = workflowkit.configure(f"sqlite:///{db}", poll_interval=0.05)
    HOLD.clear()
    try:
        run = await start(one_held_step)
        assert rt.worker is not None
        while not any(
            e.type is EventType.STEP_STARTED for e in await rt.world.get_events(run.run_id)
        ):
            await asyncio.sleep(0.01)
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE runs SET owner = 'wrkr_other', lease_until = ? WHERE run_id = ?",
                (time.time() + 3600, run.run_id),
            )
        HOLD.set()
        while run.run_id in rt.worker.drivers:  # dropped once its write is refused
            await asyncio.sleep(0.01)
    finally:
        HOLD.set()
        workflowkit.shutdown()
    [lost] = [r for r in _ours(caplog, run.run_id) if "lease lost" in r.getMessage()]
    assert lost.name == "workflowkit.worker" and lost.levelno == logging.WARNING
    assert lost.workflow == one_held_step.name and lost.step_id is None  # type: ignore[attr-defined]


async def test_a_run_failed_by_its_deadline_without_its_code_is_logged(
    cached_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker fails a run past its deadline even when it does not have the run's workflow
    (no driver, no replay): that failure is logged like any other."""
    caplog.set_level(logging.INFO, logger="workflowkit")
    run_id = f"wrun_{uuid.uuid4().hex}"
    past = datetime.fromtimestamp(cached_runtime.world.now() - 1, UTC)
    await cached_runtime.world.create_run(
        run_id, "elsewhere:gone", b"", {"name": "elsewhere:gone"}, RunOptions(deadline=past)
    )
    await _logged(caplog, run_id, "failed: WorkflowTimeoutError")
    [record] = _ours(caplog, run_id)
    assert record.name == "workflowkit.runs" and record.levelno == logging.INFO
    assert record.workflow == "elsewhere:gone" and record.step_id is None  # type: ignore[attr-defined]


class _Fatal(BaseException):
    """Beyond what the worker's loop catches (it rides out any ``Exception``)."""


async def test_an_embedded_worker_that_stops_on_its_own_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing of this process runs once its worker's loop ends: that is an error in the
    log, not silence (a closed runtime stopping it says nothing)."""
    caplog.set_level(logging.ERROR, logger="workflowkit.worker")
    rt = workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", poll_interval=0.05)
    assert rt.worker is not None

    async def fatal() -> bool:
        raise _Fatal("out of the blue")

    try:
        rt.worker._claim = fatal  # type: ignore[method-assign]
        deadline = time.monotonic() + 10
        while not any("embedded worker stopped" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the worker's end was not logged"
            await asyncio.sleep(0.02)
    finally:
        workflowkit.shutdown()
    [record] = [r for r in caplog.records if "embedded worker stopped" in r.getMessage()]
    assert record.levelno == logging.ERROR and "_Fatal: out of the blue" in record.getMessage()
    caplog.clear()
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    workflowkit.shutdown()
    assert not [r for r in caplog.records if "embedded worker stopped" in r.getMessage()]
