"""The one rule for "what is this run waiting for", as the CLI and the dashboard show it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflowkit.inspection import clock, waiting_on
from workflowkit.worlds.records import (
    HookRecord,
    OpenStep,
    OpenWork,
    StepStatus,
    WaitRecord,
)

NOW = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)


def step(status: StepStatus, attempt: int, **times: datetime | None) -> OpenStep:
    return OpenStep(
        "r",
        "step_1",
        "shop.orders.charge",
        status,
        attempt,
        times.get("started"),
        times.get("retry"),
    )


def test_each_kind_of_wait_in_words() -> None:
    retry = step(StepStatus.PENDING, 2, retry=NOW + timedelta(seconds=40))
    assert waiting_on(OpenWork(steps=(retry,)), NOW) == "step `charge` attempt 3, retry in 40s"
    running = step(StepStatus.RUNNING, 1, started=NOW - timedelta(seconds=75))
    assert waiting_on(OpenWork(steps=(running,)), NOW) == "step `charge` attempt 1, running for 1m"
    fresh = step(StepStatus.PENDING, 0)
    assert waiting_on(OpenWork(steps=(fresh,)), NOW) == "step `charge` attempt 1, to start"
    hook = HookRecord("hook_1", "r", "approve:o-1", None, NOW)
    assert waiting_on(OpenWork(hooks=(hook,)), NOW) == "hook `approve:o-1`"
    sleep = WaitRecord("wait_1", "r", NOW + timedelta(hours=3), NOW, None)
    assert waiting_on(OpenWork(waits=(sleep,)), NOW) == "sleep until 14:00 UTC (in 3h)"
    assert waiting_on(OpenWork(), NOW) is None


def test_many_waits_are_counted() -> None:
    hooks = tuple(HookRecord(f"hook_{i}", "r", f"t-{i}", None, NOW) for i in range(4))
    assert waiting_on(OpenWork(hooks=hooks), NOW) == "hook `t-0`; hook `t-1`; 2 more"


def test_clock_shows_the_date_unless_today() -> None:
    assert clock(NOW + timedelta(hours=3), NOW) == "14:00 UTC"
    assert clock(NOW + timedelta(days=1, seconds=5), NOW) == "2026-12-07 11:00:05 UTC"
