"""Step policies: Retry (backoff, cap, jitter, non_retryable), timeouts, and the order in
which FatalError, non_retryable, RetryableError(retry_after=) and the policy decide."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import workflowkit
from workflowkit import (
    FatalError,
    Retry,
    RetryableError,
    StepOptionsError,
    StepTimeoutError,
    get_step_metadata,
    serde,
    step,
    workflow,
)
from workflowkit.api import start
from workflowkit.errors import ConfigurationError, WorkflowRunFailedError
from workflowkit.runtime.runtime import Runtime
from workflowkit.runtime.steps import OVERRUNS
from workflowkit.web import timeline
from workflowkit.worlds.records import Event, EventType, RunRecord

# -- the policy as a value ---------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = Retry(attempts=10, initial="1s", backoff=2.0, max_interval="5s")
    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, 5]


def test_default_cap_is_a_hundred_times_the_first_delay() -> None:
    policy = Retry(attempts=30, initial=timedelta(seconds=2))
    assert policy.max_interval_seconds == 200
    assert policy.delay(29) == 200  # 2 * 2**28 capped, no overflow


def test_jitter_takes_off_up_to_its_share_of_the_delay() -> None:
    policy = Retry(initial="10s", backoff=1.0, jitter=0.5)
    assert policy.delay(1, draw=0.0) == 10
    assert policy.delay(1, draw=0.999) == pytest.approx(5.005)
    assert Retry(jitter=True).jitter == 1.0


def test_max_retries_is_the_short_form_with_a_fixed_second() -> None:
    assert step(max_retries=5)(lambda: None).retry == Retry(
        attempts=6, initial=1.0, backoff=1.0, max_interval=1.0
    )


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"attempts": 0}, "at least once"),
        ({"attempts": 2.5}, "takes an int"),
        ({"initial": "soon"}, "cannot parse duration"),
        ({"initial": -1}, "zero or positive"),
        ({"backoff": 0.5}, "must not shrink"),
        ({"initial": "1 min", "max_interval": "10s"}, "at least the first delay"),
        ({"jitter": 2}, "fraction from 0 to 1"),
        ({"non_retryable": (ValueError, "KeyError")}, "tuple of exception classes"),
    ],
)
def test_a_bad_policy_is_refused_where_it_is_written(options: dict[str, Any], says: str) -> None:
    with pytest.raises(StepOptionsError, match=says):
        Retry(**options)


def test_a_lone_non_retryable_class_is_taken_as_a_tuple() -> None:
    assert Retry(non_retryable=ValueError).non_retryable == (ValueError,)  # type: ignore[arg-type]


def test_step_options_are_checked_at_definition() -> None:
    with pytest.raises(StepOptionsError, match="not both"):
        step(retry=Retry(), max_retries=2)
    with pytest.raises(StepOptionsError, match="max_retries"):
        step(max_retries=-1)
    with pytest.raises(StepOptionsError, match=r"takes a workflowkit\.Retry"):
        step(retry=3)  # type: ignore[call-overload]
    with pytest.raises(StepOptionsError, match="longer than zero"):
        step(timeout=0)
    with pytest.raises(StepOptionsError, match="timeout='half a minute'"):
        step(timeout="half a minute")


# -- retries on the virtual clock --------------------------------------------------------

CALLS: dict[str, int] = {}


def _count(key: str) -> int:
    CALLS[key] = CALLS.get(key, 0) + 1
    return CALLS[key]


@step(retry=Retry(attempts=10, initial="10 minutes", backoff=2.0, max_interval="1 hour"))
def fails_nine_times(key: str) -> int:
    calls = _count(key)
    if calls < 10:
        raise ConnectionError(f"down ({calls})")
    return calls


@workflow
async def long_backoff(key: str) -> int:
    return await fails_nine_times(key)


def _retry_gaps(events: list[Event]) -> list[float]:
    return [
        round(float(e.attrs["retry_at"]) - e.created_at.timestamp(), 3)
        for e in events
        if e.type is EventType.STEP_RETRYING
    ]


@pytest.mark.workflowkit(virtual_clock=True)
async def test_ten_attempts_with_an_hour_cap_follow_the_virtual_clock(
    workflow_runtime: Runtime,
) -> None:
    run = await start(long_backoff, "backoff")
    # Eight hours of delays: on real time this would never finish within the timeout.
    assert await run.return_value(timeout=20) == 10
    events = await workflow_runtime.world.get_events(run.run_id)
    assert _retry_gaps(events) == [600, 1200, 2400, 3600, 3600, 3600, 3600, 3600, 3600]


@step(retry=Retry(attempts=3, initial="1 hour", non_retryable=(KeyError,)))
def steered(key: str, how: str) -> str:
    calls = _count(key)
    if how == "fatal":
        raise FatalError("no point retrying")
    if how == "non-retryable":
        raise KeyError("missing")
    if how == "retry-after" and calls == 1:
        raise RetryableError("busy", retry_after="7s")
    return f"{how} after {calls}"


@workflow
async def steer(key: str, how: str) -> str:
    try:
        return await steered(key, how)
    except (FatalError, KeyError) as exc:
        return f"gave up: {type(exc).__name__}"


@pytest.mark.workflowkit(virtual_clock=True)
@pytest.mark.parametrize(
    ("how", "result", "gaps"),
    [
        ("fatal", "gave up: FatalError", []),
        ("non-retryable", "gave up: KeyError", []),
        ("retry-after", "retry-after after 2", [7.0]),  # exactly retry_after, not the hour
    ],
)
async def test_order_of_precedence(
    workflow_runtime: Runtime, how: str, result: str, gaps: list[float]
) -> None:
    key = f"precedence-{how}"
    run = await start(steer, key, how)
    assert await run.return_value(timeout=10) == result
    events = await workflow_runtime.world.get_events(run.run_id)
    assert _retry_gaps(events) == gaps


@step(retry=Retry(attempts=4, initial="1 minute", backoff=1.0, jitter=1.0))
def jittery(key: str) -> int:
    calls = _count(key)
    if calls < 4:
        raise ConnectionError("again")
    return calls


@workflow
async def with_jitter(key: str) -> int:
    return await jittery(key)


@pytest.mark.workflowkit(virtual_clock=True, cache_runs=False)
async def test_jitter_is_drawn_once_and_replay_reads_it_back(workflow_runtime: Runtime) -> None:
    # cache_runs=False rebuilds the run from its log after every event: a delay computed
    # again on replay would differ from the recorded one and diverge.
    run = await start(with_jitter, "jitter")
    assert await run.return_value(timeout=10) == 4
    gaps = _retry_gaps(await workflow_runtime.world.get_events(run.run_id))
    assert len(gaps) == 3 and all(0 <= gap <= 60 for gap in gaps)
    assert len(set(gaps)) > 1  # drawn per attempt (three equal floats: vanishingly unlikely)


@step
def default_policy_step(key: str) -> int:
    _count(key)
    raise ConnectionError("always")


@step(max_retries=0)
def short_form_step(key: str) -> int:
    _count(key)
    raise ConnectionError("always")


@workflow
async def under_default(key: str) -> list[str]:
    outcomes = []
    for call in (default_policy_step, short_form_step):
        try:
            await call(f"{key}-{call.name}")
        except ConnectionError:
            outcomes.append(f"{call.name.rsplit(':', 1)[1]}: {CALLS[f'{key}-{call.name}']}")
    return outcomes


@pytest.mark.workflowkit(virtual_clock=True, retry=Retry(attempts=6, initial="1 day"))
async def test_project_wide_default_applies_to_steps_that_name_no_policy(
    workflow_runtime: Runtime,
) -> None:
    run = await start(under_default, "default")
    assert await run.return_value(timeout=10) == ["default_policy_step: 6", "short_form_step: 1"]
    gaps = _retry_gaps(await workflow_runtime.world.get_events(run.run_id))
    assert gaps == [86400 * 2**n for n in range(5)]


async def test_workflowkit_retry_sets_the_default_of_workers_configured_by_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``workflowkit worker`` has no code to pass ``retry=``: ``WORKFLOWKIT_RETRY`` does it."""
    monkeypatch.setenv("WORKFLOWKIT_RETRY", "attempts=3, initial=10ms, backoff=1, jitter=no")
    workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    try:
        run = await start(under_default, "env")
        assert await run.return_value(timeout=10) == [
            "default_policy_step: 3",
            "short_form_step: 1",
        ]
    finally:
        workflowkit.shutdown()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("attempts=3, tries=2", "comma-separated options of workflowkit.Retry"),
        ("attempts=three", "comma-separated options of workflowkit.Retry"),
        ("attempts=0", "the step runs at least once"),
        ("initial=soon", "WORKFLOWKIT_RETRY='initial=soon' is not valid"),
    ],
)
def test_a_bad_workflowkit_retry_is_refused_at_start_up(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("WORKFLOWKIT_RETRY", value)
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}")
    workflowkit.shutdown()


def test_configure_refuses_a_default_that_is_not_a_policy(tmp_path: Any) -> None:
    with pytest.raises(StepOptionsError, match=r"Worker\(retry=\.\.\.\)"):
        workflowkit.configure(f"sqlite:///{tmp_path / 'wk.db'}", retry={"attempts": 3})
    workflowkit.shutdown()


# -- timeouts ----------------------------------------------------------------------------


@step(retry=Retry(attempts=2, initial=0.01), timeout="200ms")
async def hangs(key: str) -> str:
    _count(key)
    await asyncio.Event().wait()
    return "never"


@workflow
async def call_hangs(key: str) -> str:
    return await hangs(key)


async def test_an_async_step_past_its_timeout_is_cancelled_and_retried(
    runtime: Runtime,
) -> None:
    key = f"hangs-{time.monotonic()}"
    run = await start(call_hangs, key)
    with pytest.raises(WorkflowRunFailedError) as failed:
        await run.return_value(timeout=20)
    assert failed.value.error_type.endswith("StepTimeoutError")
    assert CALLS[key] == 2
    steps = await runtime.world.list_steps(run.run_id)
    assert [(s.status, s.attempt) for s in steps] == [("failed", 2)]


LATE: dict[str, threading.Event] = {}
LATE_RESULTS: list[str] = []


@step(retry=Retry(attempts=3, initial=0.01), timeout=0.3)
def slow_then_fast(key: str) -> str:
    attempt = get_step_metadata().attempt
    if attempt == 1:
        LATE[key].wait(10)  # held past the timeout; released once the run has ended
        LATE_RESULTS.append(key)
        return "late"
    return f"attempt {attempt}"


@workflow
async def call_slow(key: str) -> str:
    return await slow_then_fast(key)


async def test_a_sync_step_past_its_timeout_is_abandoned_and_its_late_result_ignored(
    runtime: Runtime,
) -> None:
    key = f"slow-{time.monotonic()}"
    LATE[key] = threading.Event()
    before = OVERRUNS.count
    run = await start(call_slow, key)
    assert await run.return_value(timeout=20) == "attempt 2"
    assert OVERRUNS.count == before + 1  # the first attempt's thread, still running
    LATE[key].set()
    for _ in range(200):
        if OVERRUNS.count == before:
            break
        await asyncio.sleep(0.01)
    assert OVERRUNS.count == before and key in LATE_RESULTS
    events = await runtime.world.get_events(run.run_id)
    kinds = [e.type for e in events if e.correlation_id and e.correlation_id.startswith("step_")]
    assert kinds == [
        EventType.STEP_CREATED,
        EventType.STEP_STARTED,
        EventType.STEP_RETRYING,
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
    ]
    retrying = next(e for e in events if e.type is EventType.STEP_RETRYING)
    error = serde.decode(retrying.payload or b"")
    assert isinstance(error, StepTimeoutError) and error.timeout == 0.3


# -- no step left running after its run ends ---------------------------------------------

HELD: dict[str, threading.Event] = {}
FINISHED_LATE: list[str] = []


@step(max_retries=0)
def held(key: str) -> str:
    HELD[key].wait(10)  # a sync step: its thread runs on after the run ends
    FINISHED_LATE.append(key)
    return "late"


@step(max_retries=0)
async def held_async(key: str) -> str:
    await asyncio.sleep(30)
    return "never"


@workflow
async def stuck(key: str) -> str:
    await held_async(key)
    return await held(key)


@workflow
async def races_a_step(key: str) -> str:
    try:
        return await asyncio.wait_for(held(key), 0.2)
    except TimeoutError:
        return "raced away"


async def _step_started(runtime: Runtime, run_id: str) -> None:
    for _ in range(1000):
        steps = await runtime.world.list_steps(run_id)
        if steps and steps[-1].status == "running":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no running step in {run_id}")


async def test_cancelling_a_run_ends_its_running_step(runtime: Runtime) -> None:
    key = f"cancel-{time.monotonic()}"
    run = await start(stuck, key)
    await _step_started(runtime, run.run_id)
    await run.cancel()
    steps = await runtime.world.list_steps(run.run_id)
    assert [(s.status, s.completed_at is not None) for s in steps] == [("cancelled", True)]
    events = await runtime.world.get_events(run.run_id)
    assert not any(e.type is EventType.STEP_COMPLETED for e in events)
    assert _step_bars(await runtime.world.get_run(run.run_id), events) == [
        ("cancelled", "its run was cancelled")
    ]


async def test_a_step_raced_away_is_abandoned_and_its_late_result_ignored(
    runtime: Runtime,
) -> None:
    key = f"race-{time.monotonic()}"
    HELD[key] = threading.Event()
    run = await start(races_a_step, key)
    assert await run.return_value(timeout=20) == "raced away"
    steps = await runtime.world.list_steps(run.run_id)
    assert [s.status for s in steps] == ["abandoned"]
    HELD[key].set()  # the step's thread now finishes; its result has nowhere to go
    for _ in range(500):
        if key in FINISHED_LATE:
            break
        await asyncio.sleep(0.01)
    assert key in FINISHED_LATE
    await asyncio.sleep(0.2)  # time for a (wrong) late step_completed to be recorded
    steps = await runtime.world.list_steps(run.run_id)
    assert [s.status for s in steps] == ["abandoned"]
    events = await runtime.world.get_events(run.run_id)
    assert [e.type for e in events][-1] is EventType.RUN_COMPLETED
    assert _step_bars(await runtime.world.get_run(run.run_id), events) == [
        ("abandoned", "its run completed first; a late result is ignored")
    ]


def _step_bars(record: RunRecord | None, events: list[Event]) -> list[tuple[str, str]]:
    """The dashboard timeline's step attempts: their state and why they ended."""
    assert record is not None
    bars = timeline.build(record, events, datetime.now(UTC)).bars
    return [(b.state, dict(b.facts).get("ended", "")) for b in bars if b.kind == "step"]


@step(timeout="1 hour")
async def slow_but_within(key: str) -> str:
    await asyncio.sleep(0.05)
    return key


CLEANED_UP: list[str] = []


@step(timeout=0.2, max_retries=0)
async def swallows_cancellation(key: str) -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        CLEANED_UP.append(key)
        return "finished anyway"  # cleaning up is fine; the attempt still timed out
    return "slept"


@workflow
async def timeouts_that_do_not_fire(key: str) -> list[str]:
    within = await asyncio.gather(*(slow_but_within(f"{key}-{i}") for i in range(5)))
    try:
        return [*within, await swallows_cancellation(key)]
    except StepTimeoutError as exc:
        return [*within, f"timed out after {exc.timeout} s"]


async def test_steps_within_their_timeout_and_one_that_swallows_its_cancel(
    runtime: Runtime,
) -> None:
    """DESIGN §9: an attempt past its timeout fails with StepTimeoutError, even if it caught
    the cancellation (to clean up) and returned a value."""
    key = uuid.uuid4().hex
    run = await start(timeouts_that_do_not_fire, key)
    expected = [f"{key}-{i}" for i in range(5)] + ["timed out after 0.2 s"]
    assert await run.return_value(timeout=20) == expected
    assert CLEANED_UP.count(key) == 1
