"""workflowkit.testing: the pytest fixture, waiting for pause points, virtual time, mocks."""

from __future__ import annotations

import asyncio
import threading
import time
from unittest import mock

import pytest

from workflowkit import (
    Request,
    Retry,
    RetryableError,
    StepTimeoutError,
    create_hook,
    create_webhook,
    serde,
    sleep,
    step,
    workflow,
)
from workflowkit.api import get_run, resume_hook, resume_webhook, start
from workflowkit.errors import WorkflowRunFailedError
from workflowkit.runtime.runtime import Runtime
from workflowkit.runtime.steps import OVERRUNS
from workflowkit.testing import wait_for_hook, wait_for_sleep
from workflowkit.worlds.records import EventType

PUBLISHED: list[str] = []


@step
async def publish(doc_id: str) -> None:
    PUBLISHED.append(doc_id)


@workflow
async def approval_workflow(doc_id: str) -> dict[str, str]:
    decision = await create_hook(token=f"approval:{doc_id}")
    if not decision["approved"]:
        return {"status": "rejected", "reviewer": decision["reviewer"]}
    await sleep("1 day")
    await publish(doc_id)
    return {"status": "published", "reviewer": decision["reviewer"]}


async def test_should_publish_when_approved(workflow_runtime: Runtime) -> None:
    run = await start(approval_workflow, "doc-123")
    # Wait for the hook, then resume it
    await wait_for_hook(run, token="approval:doc-123")
    await resume_hook("approval:doc-123", {"approved": True, "reviewer": "alice"})
    # Wait for sleep, then wake it up
    sleep_id = await wait_for_sleep(run)
    await get_run(run.run_id).wake_up([sleep_id])
    result = await run.return_value(timeout=10)
    assert result == {"status": "published", "reviewer": "alice"}


@workflow
async def month_of_naps() -> tuple[float, float]:
    before = time.time()
    await sleep("30 days")
    return before, time.time()


@pytest.mark.workflowkit(virtual_clock=True)
async def test_virtual_clock_skips_long_sleeps(workflow_runtime: Runtime) -> None:
    started = time.monotonic()
    run = await start(month_of_naps)
    before, after = await run.return_value(timeout=10)
    assert time.monotonic() - started < 5
    assert after - before == pytest.approx(30 * 86400, abs=1)


@step
async def takes_a_moment() -> str:
    await asyncio.sleep(0.05)
    return "done"


@workflow
async def deadline_race() -> str:
    try:
        return await asyncio.wait_for(takes_a_moment(), timeout=3600)
    except TimeoutError:
        return "timed out"


@pytest.mark.workflowkit(virtual_clock=True)
async def test_virtual_time_only_jumps_when_nothing_else_can_happen(
    workflow_runtime: Runtime,
) -> None:
    run = await start(deadline_race)
    assert await run.return_value(timeout=10) == "done"


FLAKY_CALLS: list[int] = []


@step
async def flaky_api(fail_times: int) -> int:
    FLAKY_CALLS.append(1)
    if len(FLAKY_CALLS) <= fail_times:
        raise RetryableError("rate limited", retry_after="1 hour")
    return len(FLAKY_CALLS)


@workflow
async def patient_caller() -> int:
    return await flaky_api(2)


@pytest.mark.workflowkit(virtual_clock=True)
async def test_virtual_clock_skips_retry_delays(workflow_runtime: Runtime) -> None:
    FLAKY_CALLS.clear()
    started = time.monotonic()
    run = await start(patient_caller)
    assert await run.return_value(timeout=10) == 3
    assert time.monotonic() - started < 5
    steps = await workflow_runtime.world.list_steps(run.run_id)
    assert [s.attempt for s in steps] == [3]


@workflow
async def retry_against_a_sleep() -> str:
    attempt = asyncio.ensure_future(flaky_api(1))  # its retry is due in an hour
    nap = asyncio.ensure_future(sleep("10 minutes"))
    done, _ = await asyncio.wait([attempt, nap], return_when=asyncio.FIRST_COMPLETED)
    first = "sleep" if nap in done else "step"
    await attempt
    return first


@pytest.mark.workflowkit(virtual_clock=True)
async def test_virtual_clock_fires_timers_in_due_order(workflow_runtime: Runtime) -> None:
    FLAKY_CALLS.clear()
    run = await start(retry_against_a_sleep)
    assert await run.return_value(timeout=10) == "sleep"
    assert len(FLAKY_CALLS) == 2


# -- step timeouts on the virtual clock ----------------------------------------------------


@step(retry=Retry(attempts=3, initial="1 minute"), timeout="1 hour")
async def hangs_for_two_hours() -> str:
    await asyncio.sleep(7200)
    return "never"


@workflow
async def calls_a_hanging_step() -> str:
    return await hangs_for_two_hours()


@pytest.mark.workflowkit(virtual_clock=True)
async def test_a_hanging_step_times_out_on_the_virtual_clock(workflow_runtime: Runtime) -> None:
    started = time.monotonic()
    run = await start(calls_a_hanging_step)
    with pytest.raises(WorkflowRunFailedError) as failed:
        await run.return_value(timeout=10)
    assert time.monotonic() - started < 5  # three attempts of an hour each, and two retries
    assert failed.value.error_type.endswith("StepTimeoutError")
    steps = await workflow_runtime.world.list_steps(run.run_id)
    assert [(s.status, s.attempt) for s in steps] == [("failed", 3)]
    events = await workflow_runtime.world.get_events(run.run_id)
    errors = [
        serde.decode(e.payload or b"")
        for e in events
        if e.type in (EventType.STEP_RETRYING, EventType.STEP_FAILED)
    ]
    assert [(type(e), e.timeout) for e in errors] == [(StepTimeoutError, 3600.0)] * 3


@step(max_retries=0, timeout="1 hour")
async def hangs_for_good() -> str:
    await asyncio.Event().wait()
    return "never"


@workflow
async def hangs_beside_a_nap() -> tuple[str, str]:
    attempt = asyncio.ensure_future(hangs_for_good())
    nap = asyncio.ensure_future(sleep("30 minutes"))
    done, _ = await asyncio.wait([attempt, nap], return_when=asyncio.FIRST_COMPLETED)
    first = "nap" if nap in done else "step"
    try:
        return first, await attempt
    except StepTimeoutError:
        return first, "timed out"


@pytest.mark.workflowkit(virtual_clock=True)
async def test_a_stuck_step_lets_earlier_timers_fire_before_its_deadline(
    workflow_runtime: Runtime,
) -> None:
    run = await start(hangs_beside_a_nap)
    assert await run.return_value(timeout=10) == ("nap", "timed out")


NAPPED: dict[str, threading.Event] = {}


@step(timeout="2 days")
async def works_until_the_nap_ends(key: str) -> str:
    # Real work as far as the clock can tell: it goes on past the moment the run looks idle.
    while not NAPPED[key].is_set():
        await asyncio.sleep(0.005)
    return "finished"


@workflow
async def step_beside_a_long_sleep(key: str) -> tuple[str, float]:
    async def nap() -> float:
        before = time.time()
        await sleep("1 day")
        NAPPED[key].set()  # a test's shortcut: workflow code must not do this
        return time.time() - before

    return await asyncio.gather(works_until_the_nap_ends(key), nap())


@pytest.mark.workflowkit(virtual_clock=True)
async def test_time_jumps_past_a_running_step_without_timing_it_out(
    workflow_runtime: Runtime,
) -> None:
    key = f"nap-{time.monotonic()}"
    NAPPED[key] = threading.Event()
    run = await start(step_beside_a_long_sleep, key)
    result, napped = await run.return_value(timeout=10)
    # A day passed on the virtual clock while the step ran: within its two days, it stands.
    assert result == "finished"
    assert napped == pytest.approx(86400, abs=60)
    steps = await workflow_runtime.world.list_steps(run.run_id)
    assert [(s.status, s.attempt) for s in steps] == [("completed", 1)]


RELEASE: dict[str, threading.Event] = {}


@step(retry=Retry(attempts=2, initial=0), timeout="1 hour")
def blocks_its_thread(key: str) -> str:
    RELEASE[key].wait(30)  # released once the test has its answer
    return "late"


@workflow
async def calls_a_blocking_step(key: str) -> str:
    return await blocks_its_thread(key)


@pytest.mark.workflowkit(virtual_clock=True)
async def test_a_blocked_sync_step_times_out_on_the_virtual_clock(
    workflow_runtime: Runtime,
) -> None:
    key = f"blocks-{time.monotonic()}"
    RELEASE[key] = threading.Event()
    before = OVERRUNS.count
    try:
        run = await start(calls_a_blocking_step, key)
        with pytest.raises(WorkflowRunFailedError) as failed:
            await run.return_value(timeout=10)
        assert failed.value.error_type.endswith("StepTimeoutError")
        assert OVERRUNS.count == before + 2  # both attempts' threads, abandoned
    finally:
        RELEASE[key].set()
    for _ in range(500):
        if OVERRUNS.count == before:
            break
        await asyncio.sleep(0.01)
    assert OVERRUNS.count == before
    steps = await workflow_runtime.world.list_steps(run.run_id)
    assert [(s.status, s.attempt) for s in steps] == [("failed", 2)]  # late results ignored


@workflow
async def ingest(endpoint: str) -> object:
    request = await create_webhook()
    return {"endpoint": endpoint, "event": request.json()["event"]}


async def test_webhook_without_a_server(workflow_runtime: Runtime) -> None:
    run = await start(ingest, "ep-1")
    hook = await wait_for_hook(run)  # discovers the random webhook token
    request = Request("POST", "https://example.com/webhook", (), b'{"event": "order.created"}')
    await resume_webhook(hook.token, request)
    assert await run.return_value(timeout=10) == {"endpoint": "ep-1", "event": "order.created"}


@step
async def charge_card(cents: int) -> str:
    raise AssertionError("the real payment API must not be called in tests")


@workflow
async def checkout(cents: int) -> str:
    return await charge_card(cents)


async def test_patching_a_step_body(
    workflow_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = mock.AsyncMock(return_value="ch_test")
    monkeypatch.setattr(charge_card, "fn", fake)  # still a durable, recorded step
    run = await start(checkout, 500)
    assert await run.return_value(timeout=10) == "ch_test"
    fake.assert_awaited_once_with(500)
    (recorded,) = await workflow_runtime.world.list_steps(run.run_id)
    assert recorded.step_name.endswith(":charge_card")


async def test_patching_the_step_name_in_its_module(workflow_runtime: Runtime) -> None:
    with mock.patch(f"{__name__}.charge_card", mock.AsyncMock(return_value="ch_mock")):
        run = await start(checkout, 700)
        assert await run.return_value(timeout=10) == "ch_mock"


async def test_wait_helpers_time_out_clearly(workflow_runtime: Runtime) -> None:
    run = await start(checkout, 1)
    with pytest.raises(TimeoutError, match="created no hook"):
        await wait_for_hook(run, token="never", timeout=0.2)
