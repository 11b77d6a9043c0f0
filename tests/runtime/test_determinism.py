"""Workflow code is replayed; the guard rails keep it deterministic, divergence is caught."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import workflowkit
from workflowkit import (
    ReplayDivergenceError,
    WorkflowIOError,
    WorkflowRunFailedError,
    sleep,
    step,
    workflow,
)
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime

RECORDED: dict[str, list[object]] = {}


@step
def record_values(key: str, values: list[object]) -> None:
    RECORDED[key] = values


@workflow
async def nondeterministic_looking(key: str) -> list[object]:
    values: list[object] = [
        random.random(),
        random.randint(0, 10**9),
        time.time(),
        str(uuid.uuid4()),
        datetime.now(UTC).isoformat(),
    ]
    await record_values(key, values)
    await sleep(0.05)
    await record_values(key + "-after", [time.time()])
    return values


async def test_random_time_uuid_are_stable_across_replays(runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    run = await start(nondeterministic_looking, key)
    values = await run.return_value(timeout=10)
    assert values == RECORDED[key]
    started = await run.started_at()
    assert started is not None
    assert values[2] == pytest.approx(started.timestamp(), abs=0.001)
    assert datetime.fromisoformat(str(values[4])).timestamp() == pytest.approx(values[2])
    # Time advances with the log: after the sleep it is at least 50 ms later.
    assert RECORDED[key + "-after"][0] >= values[2] + 0.05  # type: ignore[operator]


async def test_each_run_gets_its_own_randomness(runtime: Runtime) -> None:
    a, b = uuid.uuid4().hex, uuid.uuid4().hex
    run_a = await start(nondeterministic_looking, a)
    run_b = await start(nondeterministic_looking, b)
    va, vb = await run_a.return_value(timeout=10), await run_b.return_value(timeout=10)
    assert va[0] != vb[0] and va[3] != vb[3]


def test_shims_leave_code_outside_workflows_alone() -> None:
    before = time.time()
    assert abs(time.time() - before) < 1
    assert random.random() != random.random()
    assert uuid.uuid4() != uuid.uuid4()
    time.sleep(0)  # blocking is fine outside workflow code


CHOICE = {"step": "a"}


@step
def step_a() -> str:
    return "a"


@step
def step_b() -> str:
    return "b"


@pytest.fixture
def replaying_runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = workflowkit.configure(
        f"sqlite:///{tmp_path / 'wk.db'}", cache_runs=False, poll_interval=0.1
    )
    yield rt
    workflowkit.shutdown()


@workflow(on_divergence="fail")
async def fails_when_changed() -> str:
    first = await (step_a() if CHOICE["step"] == "a" else step_b())
    await sleep(0.3)
    second = await step_a()
    return first + second


async def test_code_change_under_a_run_fails_it_by_policy(replaying_runtime: Runtime) -> None:
    CHOICE["step"] = "a"
    run = await start(fails_when_changed)
    for _ in range(200):
        if any(
            e.type == "wait_created" for e in await replaying_runtime.world.get_events(run.run_id)
        ):
            break
        await asyncio.sleep(0.01)
    CHOICE["step"] = "b"  # a "deploy" that changed the workflow
    try:
        with pytest.raises(WorkflowRunFailedError) as info:
            await run.return_value(timeout=10)
    finally:
        CHOICE["step"] = "a"
    assert info.value.error_type.endswith("ReplayDivergenceError")
    assert "step_a" in info.value.error_message and "step_b" in info.value.error_message
    assert ReplayDivergenceError.__name__ in info.value.error_type


@workflow
async def writes_a_file(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("nope")


@workflow
async def opens_a_socket() -> None:
    socket.create_connection(("127.0.0.1", 9))


@workflow
async def starts_a_thread() -> None:
    threading.Thread(target=lambda: None).start()


@workflow
async def blocks_in_time_sleep() -> None:
    time.sleep(0.01)


@pytest.mark.parametrize(
    ("wf", "args", "what"),
    [
        (writes_a_file, ("/tmp/workflowkit-should-not-exist",), "open files"),
        (opens_a_socket, (), "network"),
        (starts_a_thread, (), "threads"),
        (blocks_in_time_sleep, (), "time.sleep()"),
    ],
)
async def test_io_in_workflow_code_fails_with_a_hint(
    cached_runtime: Runtime,
    wf: workflowkit.Workflow[..., None],
    args: tuple[object, ...],
    what: str,
) -> None:
    run = await start(wf, *args)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=10)
    assert info.value.error_type.endswith(WorkflowIOError.__name__)
    assert what in info.value.error_message
    assert "@step" in info.value.error_message
