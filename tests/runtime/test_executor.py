"""The run executor's one door: events in, effects out, with no storage in between.

What a worker relies on: a new run asks for its first step; a step that failed and will be
retried is started again as its next attempt once its ``retry_at`` comes, whether the
failure happened a moment ago or is found in the log after a restart.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workflowkit import serde, sleep, step, workflow
from workflowkit.runtime.executor import Effects, RunExecutor, StepStart
from workflowkit.worlds.records import Event, EventType, NewEvent

T0 = 1_700_000_000.0


@step(name="test_executor.double")
async def double(x: int) -> int:
    return 2 * x


@workflow(name="test_executor.twice")
async def twice(x: int) -> int:
    return await double(await double(x))


@workflow(name="test_executor.step_then_nap")
async def step_then_nap(x: int) -> int:
    value = await double(x)
    await sleep(3600)
    return value


class Log:
    """A run's event log as the World would store it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, new: NewEvent, at: float = T0) -> Event:
        created = new.created_at or datetime.fromtimestamp(at, UTC)
        event = Event(
            "wrun_test",
            len(self.events) + 1,
            f"evnt_{len(self.events) + 1}",
            new.type,
            new.correlation_id,
            new.payload,
            dict(new.attrs),
            created,
        )
        self.events.append(event)
        return event

    def extend(self, news: Sequence[NewEvent]) -> None:
        for new in news:
            self.add(new)


def started_run(log: Log) -> tuple[RunExecutor, Effects]:
    log.add(NewEvent(EventType.RUN_CREATED, payload=serde.encode([[3], {}])))
    executor = RunExecutor("wrun_test", twice, log.events[0].payload or b"")
    effects = executor.activate(log.events, T0)
    log.extend(effects.events)
    return executor, effects


def retrying(start: StepStart, retry_at: float) -> NewEvent:
    attrs: dict[str, Any] = {"attempt": start.attempt, "retry_at": retry_at}
    error = serde.encode(RuntimeError("flaky"))
    return NewEvent(EventType.STEP_RETRYING, start.step_id, error, attrs)


def test_a_new_run_starts_and_asks_for_its_first_step() -> None:
    executor, effects = started_run(Log())
    kinds = [e.type for e in effects.events]
    assert kinds == [EventType.RUN_STARTED, EventType.STEP_CREATED]
    (first,) = effects.steps
    assert (first.step, first.attempt, first.due_at, first.replayed) == (double, 1, 0.0, False)
    assert executor.pending().steps == (first.step_id,)
    executor.discard()


def test_a_live_failure_is_started_again_as_the_next_attempt_when_due() -> None:
    executor, effects = started_run(Log())
    (first,) = effects.steps
    again = executor.activate([retrying(first, T0 + 5)], T0 + 1)
    assert again.events == []
    (second,) = again.steps
    assert (second.step_id, second.attempt, second.due_at) == (first.step_id, 2, T0 + 5)
    executor.discard()


def test_a_retry_found_in_the_log_waits_for_its_retry_at() -> None:
    log = Log()
    executor, effects = started_run(log)
    (first,) = effects.steps
    executor.discard()
    log.add(NewEvent(EventType.STEP_STARTED, first.step_id, None, {"attempt": 1}))
    log.add(retrying(first, T0 + 5))
    cold = RunExecutor("wrun_test", twice, log.events[0].payload or b"")
    resumed = cold.activate(log.events, T0 + 2)  # a restart, before the retry is due
    assert resumed.events == []  # nothing new: the log already holds it all
    (second,) = resumed.steps
    assert (second.attempt, second.due_at, second.replayed) == (2, T0 + 5, True)
    cold.discard()


def test_a_result_runs_the_code_on_to_its_next_step() -> None:
    executor, effects = started_run(Log())
    (first,) = effects.steps
    done = NewEvent(EventType.STEP_COMPLETED, first.step_id, serde.encode(6))
    after = executor.activate([done], T0 + 1)
    assert [e.type for e in after.events] == [EventType.STEP_CREATED]
    (second,) = after.steps
    assert second.step_id != first.step_id and second.attempt == 1
    finished = executor.activate(
        [NewEvent(EventType.STEP_COMPLETED, second.step_id, serde.encode(12))], T0 + 2
    )
    (completed,) = finished.events
    assert completed.type is EventType.RUN_COMPLETED and completed.payload is not None
    assert serde.decode(completed.payload) == 12
    assert executor.finished and executor.pending().steps == ()


def test_a_discarded_run_is_freed_without_the_cycle_collector() -> None:
    """A worker discards a run's executor each time the run leaves memory (a sleep, a
    hook, its end); with 100,000 runs passing through, what they leave for the cycle
    collector's full passes costs both memory and time. Reference counting frees them."""
    log = Log()
    log.add(NewEvent(EventType.RUN_CREATED, payload=serde.encode([[3], {}])))
    executor = RunExecutor("wrun_test", step_then_nap, log.events[0].payload or b"")
    effects = executor.activate(log.events, T0)
    log.extend(effects.events)
    (first,) = effects.steps
    asleep = executor.activate(
        [NewEvent(EventType.STEP_COMPLETED, first.step_id, serde.encode(6))], T0 + 1
    )
    assert [e.type for e in asleep.events] == [EventType.WAIT_CREATED]
    assert len(executor.pending().timers) == 1  # the code waits on a step, then a timer
    loop = weakref.ref(executor._loop)  # type: ignore[arg-type]
    gone = weakref.ref(executor)
    gc.disable()
    try:
        executor.discard()
        del executor, effects, asleep
        assert gone() is None and loop() is None
    finally:
        gc.enable()
