"""foundations/errors-and-retries and idempotency, in Python."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from workflowkit import (
    FatalError,
    Retry,
    RetryableError,
    WorkflowRunFailedError,
    get_step_metadata,
    step,
    workflow,
)
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime

ATTEMPTS: Counter[str] = Counter()
TIMES: dict[str, list[float]] = {}


@step(max_retries=5)
def flaky(key: str, failures: int) -> str:
    ATTEMPTS[key] += 1
    TIMES.setdefault(key, []).append(time.monotonic())
    if ATTEMPTS[key] <= failures:
        raise RetryableError(f"attempt {ATTEMPTS[key]} failed", retry_after=0.01)
    return f"ok after {ATTEMPTS[key]}"


@workflow
async def call_flaky(key: str, failures: int) -> str:
    return await flaky(key, failures)


async def test_step_retries_until_success(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(call_flaky, key, 3)
    assert await run.return_value(timeout=10) == "ok after 4"
    assert ATTEMPTS[key] == 4


async def test_step_fails_after_max_retries(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(call_flaky, key, 100)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=10)
    assert ATTEMPTS[key] == 6  # max_retries=5 -> 6 attempts
    assert info.value.error_type.endswith("RetryableError")
    assert "attempt 6 failed" in info.value.error_message


DEFAULT_ATTEMPTS: Counter[str] = Counter()


@step
def always_fails(key: str) -> None:
    DEFAULT_ATTEMPTS[key] += 1
    TIMES.setdefault(key, []).append(time.monotonic())
    raise ValueError(f"boom {DEFAULT_ATTEMPTS[key]}")


@workflow
async def call_always_fails(key: str) -> None:
    await always_fails(key)


@pytest.mark.slow
async def test_default_is_three_retries_one_second_apart(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(call_always_fails, key)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=20)
    assert DEFAULT_ATTEMPTS[key] == 4
    gaps = [b - a for a, b in zip(TIMES[key], TIMES[key][1:], strict=False)]
    assert all(0.95 <= gap < 2.5 for gap in gaps), gaps
    assert info.value.error_type == "ValueError"
    assert info.value.error_message == "boom 4"
    assert "always_fails" in info.value.traceback_text


FATAL_CALLS: Counter[str] = Counter()


@step
def not_found(key: str) -> None:
    FATAL_CALLS[key] += 1
    raise FatalError("Resource not found. Skipping retries.")


@workflow
async def call_not_found(key: str) -> None:
    await not_found(key)


async def test_fatal_error_is_not_retried(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(call_not_found, key)
    with pytest.raises(WorkflowRunFailedError, match="Skipping retries"):
        await run.return_value(timeout=10)
    assert FATAL_CALLS[key] == 1


@step(max_retries=0)
def once_only(key: str) -> None:
    FATAL_CALLS[key] += 1
    raise RuntimeError("no retries")


@workflow
async def call_once_only(key: str) -> None:
    await once_only(key)


async def test_max_retries_zero_runs_once(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(call_once_only, key)
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=10)
    assert FATAL_CALLS[key] == 1


SEEN_IDS: dict[str, list[tuple[str, int]]] = {}


@step(max_retries=3)
def charge_user(key: str) -> str:
    meta = get_step_metadata()
    assert meta.step_started_at == meta.started_at  # the reference's stepStartedAt
    SEEN_IDS.setdefault(key, []).append((meta.step_id, meta.attempt))
    if meta.attempt < 3:
        raise RetryableError("transient", retry_after=0.01)
    return meta.step_id


@workflow
async def idempotent_charge(key: str) -> str:
    return await charge_user(key)


async def test_step_id_is_stable_across_retries(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(idempotent_charge, key)
    step_id = await run.return_value(timeout=10)
    assert SEEN_IDS[key] == [(step_id, 1), (step_id, 2), (step_id, 3)]


@step
def caught_error() -> None:
    raise FatalError("card declined")


@workflow
async def catches(label: str) -> str:
    try:
        await caught_error()
    except FatalError as exc:
        return f"{label}: handled {exc}"
    return "unreachable"


async def test_workflow_can_catch_a_step_error(runtime: Runtime) -> None:
    run = await start(catches, "x")
    assert await run.return_value(timeout=10) == "x: handled card declined"


LEDGER: dict[str, list[str]] = {}


@step
def reserve_inventory(order: str) -> None:
    LEDGER.setdefault(order, []).append("reserve")


@step
def charge(order: str) -> None:
    LEDGER.setdefault(order, []).append("charge")


@step
def ship(order: str) -> None:
    raise FatalError("carrier unavailable")


@step
def release_inventory(order: str) -> None:
    LEDGER.setdefault(order, []).append("release")


@step
def refund(order: str) -> None:
    LEDGER.setdefault(order, []).append("refund")


@workflow
async def place_order_saga(order: str) -> None:
    rollbacks = []
    try:
        await reserve_inventory(order)
        rollbacks.append(release_inventory)
        await charge(order)
        rollbacks.append(refund)
        await ship(order)
    except Exception:
        for rollback in reversed(rollbacks):
            await rollback(order)
        raise


async def test_saga_rolls_back_in_reverse_order(runtime: Runtime) -> None:
    order = uuid.uuid4().hex
    run = await start(place_order_saga, order)
    with pytest.raises(WorkflowRunFailedError, match="carrier unavailable"):
        await run.return_value(timeout=10)
    assert LEDGER[order] == ["reserve", "charge", "refund", "release"]


@workflow
async def raises_in_workflow() -> None:
    raise KeyError("missing")


async def test_error_in_workflow_code_fails_the_run(runtime: Runtime) -> None:
    run = await start(raises_in_workflow)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=10)
    assert info.value.error_type == "KeyError"
    assert "raises_in_workflow" in info.value.traceback_text
    assert await run.status() == "failed"


@step
def mutate(items: list[int]) -> list[int]:
    items.append(99)
    return items


@workflow
async def pass_by_value() -> tuple[list[int], list[int]]:
    mine = [1, 2]
    theirs = await mutate(mine)
    return mine, theirs


async def test_steps_get_arguments_by_value(runtime: Runtime) -> None:
    run = await start(pass_by_value)
    assert await run.return_value(timeout=10) == ([1, 2], [1, 2, 99])


BAD_AFTER: Counter[str] = Counter()


@step(retry=Retry(attempts=3, initial=0.01))
def asks_for_a_retry_it_cannot_say(key: str, after: object) -> str:
    BAD_AFTER[key] += 1
    if BAD_AFTER[key] == 1:
        raise RetryableError("try later", retry_after=after)  # type: ignore[arg-type]
    return "second time"


@workflow
async def bad_retry_after(key: str, after: object) -> str:
    return await asks_for_a_retry_it_cannot_say(key, after)


@pytest.mark.parametrize("after", ["soon", "1 fortnight", {"seconds": 1}])
async def test_a_retry_after_that_cannot_be_read_still_retries(
    runtime: Runtime, caplog: pytest.LogCaptureFixture, after: object
) -> None:
    """The attempt is recorded and retried after the policy's delay (the run used to wait
    for ever: the failed attempt was never recorded), and the log says why."""
    key = uuid.uuid4().hex
    run = await start(bad_retry_after, key, after)
    assert await run.return_value(timeout=10) == "second time"
    assert BAD_AFTER[key] == 2
    assert any("retry_after" in r.getMessage() and "ignored" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_retry_after_forms() -> None:
    from datetime import UTC, datetime, timedelta

    from workflowkit._retry_policy import DEFAULT_RETRY, next_delay

    def delay(error: BaseException) -> float | None:
        return next_delay(DEFAULT_RETRY, error, 1, datetime.now(UTC).timestamp(), 0.0)

    assert delay(ValueError("x")) == 1.0
    assert delay(RetryableError("x")) == 1.0
    assert delay(RetryableError("x", retry_after=2.5)) == 2.5
    assert delay(RetryableError("x", retry_after="1m")) == 60
    assert delay(RetryableError("x", retry_after="1 month")) == 30.4375 * 86400
    assert delay(RetryableError("x", retry_after=timedelta(seconds=3))) == 3
    soon = datetime.now(UTC) + timedelta(seconds=10)
    assert 9 < (delay(RetryableError("x", retry_after=soon)) or 0) <= 10
    past = datetime.now(UTC) - timedelta(seconds=10)
    assert delay(RetryableError("x", retry_after=past)) == 0
