"""A run held inside its first step until the test lets it go, with a second step that must
never run once the run has ended meanwhile: the cancel and fail tests share it."""

from __future__ import annotations

import threading

from workflowkit import step, workflow

STEP_STARTED = threading.Event()
STEP_RELEASE = threading.Event()
FOLLOW_UPS: list[str] = []


def reset() -> None:
    STEP_STARTED.clear()
    STEP_RELEASE.clear()
    FOLLOW_UPS.clear()


@step
def blocking_step() -> str:
    STEP_STARTED.set()
    STEP_RELEASE.wait(10)
    return "finished"


@step
def follow_up() -> None:
    FOLLOW_UPS.append("ran")


@workflow
async def held_in_a_step() -> str:
    value = await blocking_step()
    await follow_up()
    return value
