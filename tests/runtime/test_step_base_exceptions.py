"""A step that calls sys.exit() or raises KeyboardInterrupt fails its attempt; it never ends
the worker, which would leave every other run of the process stuck (and, retried by every
worker that claims the run, take the whole fleet down one worker at a time)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections import Counter

import pytest

from workflowkit import StepExitError, WorkflowRunFailedError, step, workflow
from workflowkit.api import get_run, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType

ATTEMPTS: Counter[str] = Counter()


@step(max_retries=1)
def sync_exits(key: str) -> None:
    ATTEMPTS[key] += 1
    sys.exit(3)


@step(max_retries=1)
async def async_interrupts(key: str) -> None:
    ATTEMPTS[key] += 1
    raise KeyboardInterrupt


@step(max_retries=1)
def parses_bad_arguments(key: str) -> None:
    ATTEMPTS[key] += 1
    # argparse reports a bad argument with sys.exit(2): a step that parses options the way a
    # command-line tool does fails like any other.
    argparse.ArgumentParser(prog="tool").parse_args(["--no-such-option"])


@step(max_retries=0)
async def cancels_itself(key: str) -> None:
    ATTEMPTS[key] += 1
    raise asyncio.CancelledError


@step
def plain(value: int) -> int:
    return value


@workflow
async def survives_a_step_exit(kind: str, key: str) -> str:
    steps = {
        "exit": sync_exits,
        "interrupt": async_interrupts,
        "argparse": parses_bad_arguments,
        "cancel": cancels_itself,
    }
    try:
        await steps[kind](key)
    except StepExitError as exc:
        return f"caught {exc.type_name}"
    return "no error"


@workflow
async def exits_itself() -> None:
    sys.exit("workflow code gave up")


@workflow
async def one_step(value: int) -> int:
    return await plain(value)


@pytest.mark.parametrize(
    ("kind", "type_name"),
    [
        ("exit", "SystemExit"),
        ("interrupt", "KeyboardInterrupt"),
        ("argparse", "SystemExit"),
        ("cancel", "CancelledError"),
    ],
)
async def test_a_step_base_exception_is_a_failed_attempt(
    runtime: Runtime, kind: str, type_name: str
) -> None:
    key = uuid.uuid4().hex
    run = await start(survives_a_step_exit, kind, key)
    assert await run.return_value(timeout=10) == f"caught {type_name}"
    retries = 0 if kind == "cancel" else 1
    assert ATTEMPTS[key] == retries + 1
    events = await runtime.world.get_events(run.run_id)
    assert [e.type for e in events].count(EventType.STEP_RETRYING) == retries
    assert [e.type for e in events].count(EventType.STEP_FAILED) == 1
    # The worker lived on: it runs the next run as usual.
    assert await (await start(one_step, 7)).return_value(timeout=10) == 7


async def test_workflow_code_calling_sys_exit_fails_its_run(runtime: Runtime) -> None:
    run = await start(exits_itself)
    with pytest.raises(WorkflowRunFailedError) as info:
        await run.return_value(timeout=10)
    assert info.value.error_type == "SystemExit"
    assert "gave up" in info.value.error_message
    assert await get_run(run.run_id).status() == "failed"
    assert await (await start(one_step, 8)).return_value(timeout=10) == 8
