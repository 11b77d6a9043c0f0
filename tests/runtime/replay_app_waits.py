"""A workflow that waits on a hook, so its run is still going when the check replays it
(tests/runtime/test_replay_check.py)."""

from __future__ import annotations

from workflowkit import create_hook, step, workflow


@step(name="replay.note")
def note(text: str) -> str:
    return text


@workflow(name="replay.waits")
async def waits(token: str) -> object:
    await note(token)
    return await create_hook(token=token)
