"""foundations/hooks in Python: hooks, tokens, iteration, dispose, conflicts, define_hook."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pydantic
import pytest

from workflowkit import (
    FatalError,
    HookConflictError,
    HookNotFoundError,
    SerializationError,
    WorkflowRunFailedError,
    _operations,
    create_hook,
    define_hook,
    sleep,
    step,
    workflow,
)
from workflowkit.api import get_hook_by_token, resume_hook, start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.base import World
from workflowkit.worlds.postgres import PostgresWorld
from workflowkit.worlds.records import Event, EventType, StepStatus

PROCESSED: list[str] = []


async def hook_ready(runtime: Runtime, token: str) -> None:
    for _ in range(500):
        if await runtime.world.get_hook_by_token(token) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no active hook {token!r}")


@workflow
async def approval(token: str) -> str:
    hook = create_hook(token=token, metadata={"purpose": "approval"})
    result = await hook
    return f"{'approved' if result['approved'] else 'rejected'}: {result['comment']}"


async def test_first_hook(runtime: Runtime) -> None:
    token = f"approve:{uuid.uuid4().hex}"
    run = await start(approval, token)
    await hook_ready(runtime, token)
    info = await get_hook_by_token(token)
    assert info.run_id == run.run_id and info.metadata == {"purpose": "approval"}
    resumed = await resume_hook(token, {"approved": True, "comment": "ship it"})
    assert resumed.run_id == run.run_id
    assert await run.return_value(timeout=10) == "approved: ship it"
    # The token is released once the run is over.
    with pytest.raises(HookNotFoundError):
        await get_hook_by_token(token)


@workflow
async def random_token() -> str:
    hook = create_hook()
    await publish_token(hook.token)
    return str(await hook)


TOKENS: dict[str, str] = {}


@step
def publish_token(token: str) -> None:
    TOKENS["latest"] = token


async def test_default_tokens_are_random_and_stable_across_replay(runtime: Runtime) -> None:
    run = await start(random_token)
    for _ in range(500):
        if "latest" in TOKENS and await runtime.world.get_hook_by_token(TOKENS["latest"]):
            break
        await asyncio.sleep(0.01)
    token = TOKENS.pop("latest")
    assert len(token) >= 32
    await resume_hook(token, "hello")
    assert await run.return_value(timeout=10) == "hello"


@step
def process_message(text: str) -> None:
    PROCESSED.append(text)


@workflow
async def channel_bot(channel: str) -> list[str]:
    seen = []
    async for message in create_hook(token=f"slack_messages:{channel}"):
        seen.append(message["text"])
        if message["text"] == "/stop":
            break
        await process_message(message["text"])
    return seen


async def test_receiving_several_payloads_in_order(runtime: Runtime) -> None:
    channel = uuid.uuid4().hex
    token = f"slack_messages:{channel}"
    run = await start(channel_bot, channel)
    await hook_ready(runtime, token)
    for text in ["hi", "there", "/stop"]:
        await resume_hook(token, {"text": text})
    assert await run.return_value(timeout=10) == ["hi", "there", "/stop"]


@workflow
async def late_listener(token: str) -> list[int]:
    hook = create_hook(token=token)
    await sleep(0.3)  # payloads arrive while nobody awaits the hook
    return [await hook, await hook]


async def test_payloads_before_the_await_are_buffered(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(late_listener, token)
    await hook_ready(runtime, token)
    await resume_hook(token, 1)
    await resume_hook(token, 2)
    assert await run.return_value(timeout=10) == [1, 2]


@workflow
async def dispose_and_reuse(token: str) -> list[str]:
    with create_hook(token=token) as first:
        got = [await first]
    await announce(token)
    second = create_hook(token=token)  # the same token, free again
    got.append(await second)
    second.dispose()
    return got


ANNOUNCED: list[str] = []


@step
def announce(token: str) -> None:
    ANNOUNCED.append(token)


async def test_dispose_releases_the_token_for_reuse(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(dispose_and_reuse, token)
    await hook_ready(runtime, token)
    await resume_hook(token, "one")
    for _ in range(500):
        if token in ANNOUNCED and await runtime.world.get_hook_by_token(token):
            break
        await asyncio.sleep(0.01)
    await resume_hook(token, "two")
    assert await run.return_value(timeout=10) == ["one", "two"]
    kinds = [e.type for e in await runtime.world.get_events(run.run_id)]
    assert kinds.count(EventType.HOOK_DISPOSED) == 2


@step
async def echo(value: str) -> str:
    return value


@workflow
async def dispose_then_work(token: str) -> list[str]:
    with create_hook(token=token) as hook:
        got = [await hook]
    return [*got, await echo("a"), await echo("b")]


async def test_a_run_that_disposed_a_hook_replays_without_disposing_it_again(
    runtime: Runtime,
) -> None:
    """Replay re-runs the dispose after the payload; it must not record a second
    ``hook_disposed`` (the World refuses it, and the run would reload forever)."""
    token = uuid.uuid4().hex
    run = await start(dispose_then_work, token)
    await hook_ready(runtime, token)
    await resume_hook(token, "payload")
    assert await run.return_value(timeout=10) == ["payload", "a", "b"]
    kinds = [e.type for e in await runtime.world.get_events(run.run_id)]
    assert kinds.count(EventType.HOOK_DISPOSED) == 1


@workflow
async def holds(token: str) -> None:
    await create_hook(token=token)


@workflow
async def conflicting(token: str, catch: bool) -> str:
    hook = create_hook(token=token)
    if not catch:
        await hook
    try:
        await hook
    except HookConflictError as exc:
        return f"conflict on {exc.token} held by {exc.holder_run_id}"
    return "no conflict"


async def test_reused_active_token_conflicts(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    holder = await start(holds, token)
    await hook_ready(runtime, token)
    caught = await start(conflicting, token, True)
    assert await caught.return_value(timeout=10) == f"conflict on {token} held by {holder.run_id}"
    uncaught = await start(conflicting, token, False)
    with pytest.raises(WorkflowRunFailedError) as info:
        await uncaught.return_value(timeout=10)
    assert "HookConflictError" in info.value.error_type and token in info.value.error_message
    await holder.cancel()


async def test_tokens_are_released_at_failure_and_cancel(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(holds, token)
    await hook_ready(runtime, token)
    await run.cancel()
    with pytest.raises(HookNotFoundError):
        await resume_hook(token, "late")


async def test_unknown_token_and_bad_payload(runtime: Runtime) -> None:
    with pytest.raises(HookNotFoundError, match="nope"):
        await resume_hook("nope", {})
    token = uuid.uuid4().hex
    run = await start(holds, token)
    await hook_ready(runtime, token)
    with pytest.raises(SerializationError):
        await resume_hook(token, {"lock": threading.Lock()})
    kinds = [e.type for e in await runtime.world.get_events(run.run_id)]
    assert EventType.HOOK_RECEIVED not in kinds
    await resume_hook(token, "fine")
    assert await run.return_value(timeout=10) is None


@step
async def slow_echo(value: str) -> str:
    await asyncio.sleep(0.05)
    return value


@workflow
async def hook_or_timeout(token: str, seconds: float) -> str:
    hook = create_hook(token=token)
    payload = asyncio.ensure_future(_next(hook))
    timer = asyncio.ensure_future(sleep(seconds))
    done, _ = await asyncio.wait({payload, timer}, return_when=asyncio.FIRST_COMPLETED)
    if payload in done:
        return f"payload {payload.result()}"
    hook.dispose()
    return "timed out"


async def _next(hook: object) -> object:
    return await hook  # type: ignore[misc]


async def test_hook_races_a_sleep_payload_wins(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(hook_or_timeout, token, 30)
    await hook_ready(runtime, token)
    await resume_hook(token, "fast")
    assert await run.return_value(timeout=10) == "payload fast"


async def test_hook_races_a_sleep_sleep_wins(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(hook_or_timeout, token, 0.1)
    assert await run.return_value(timeout=10) == "timed out"
    with pytest.raises(HookNotFoundError):
        await get_hook_by_token(token)


class Approval(pydantic.BaseModel):
    approved: bool
    comment: str = ""


approval_hook = define_hook(schema=Approval)


@workflow
async def typed_approval(token: str) -> str:
    decision = await approval_hook.create(token=token)
    return f"{type(decision).__name__}:{decision.approved}:{decision.comment}"


async def test_define_hook_validates_before_writing(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(typed_approval, token)
    await hook_ready(runtime, token)
    with pytest.raises(pydantic.ValidationError, match="approved"):
        await approval_hook.resume(token, {"comment": "missing the flag"})
    kinds = [e.type for e in await runtime.world.get_events(run.run_id)]
    assert EventType.HOOK_RECEIVED not in kinds
    await approval_hook.resume(token, {"approved": "yes", "comment": "ok"})
    assert await run.return_value(timeout=10) == "Approval:True:ok"


untyped_hook = define_hook()


@workflow
async def untyped_approval(token: str) -> object:
    return await untyped_hook.create(token=token)


async def test_define_hook_without_a_schema_passes_payloads_as_they_are(
    runtime: Runtime,
) -> None:
    token = uuid.uuid4().hex
    run = await start(untyped_approval, token)
    await hook_ready(runtime, token)
    await untyped_hook.resume(token, {"approved": "maybe", "n": [1, 2]})
    assert await run.return_value(timeout=10) == {"approved": "maybe", "n": [1, 2]}


@step
def explode() -> None:
    raise FatalError("boom")


@workflow
async def holds_then_fails(token: str) -> None:
    create_hook(token=token)
    await explode()


async def test_tokens_are_released_when_the_run_fails(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(holds_then_fails, token)
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=10)
    with pytest.raises(HookNotFoundError):
        await get_hook_by_token(token)
    # ...so a new run can take the token at once.
    again = await start(holds, token)
    await hook_ready(runtime, token)
    await resume_hook(token, None)
    assert await again.return_value(timeout=10) is None


@workflow
async def receives_an_exception(token: str) -> str:
    payload = await create_hook(token=token)
    return f"{type(payload).__name__}: {payload}"


async def test_an_exception_is_an_ordinary_payload(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(receives_an_exception, token)
    await hook_ready(runtime, token)
    await resume_hook(token, ValueError("just data"))
    assert await run.return_value(timeout=10) == "ValueError: just data"


@workflow
async def gives_up_once(token: str) -> object:
    hook = create_hook(token=token)
    try:
        return await asyncio.wait_for(_next(hook), 0.05)
    except TimeoutError:
        pass
    await announce(token)
    return await hook  # the payload goes here, not to the abandoned await


async def test_a_cancelled_await_does_not_swallow_the_next_payload(runtime: Runtime) -> None:
    token = uuid.uuid4().hex
    run = await start(gives_up_once, token)
    for _ in range(500):
        if token in ANNOUNCED:
            break
        await asyncio.sleep(0.01)
    await resume_hook(token, "second chance")
    assert await run.return_value(timeout=10) == "second chance"


def test_default_tokens_never_look_like_a_command_line_option() -> None:
    # One URL-safe token in 64 began with "-", and `workflowkit resume-hook TOKEN` then
    # failed: argparse read the token as an option.
    from workflowkit.ids import new_token

    tokens = [new_token() for _ in range(5000)]
    assert not [t for t in tokens if t.startswith("-")]
    assert len(set(tokens)) == len(tokens) and min(map(len, tokens)) >= 32


@step
async def add_to(total: int, value: int) -> int:
    return total + value


@workflow
async def summing(token: str, n: int) -> int:
    hook = create_hook(token=token)
    total = 0
    for _ in range(n):
        total = await add_to(total, await hook)
    return total


@pytest.mark.parametrize("sender", ["this World", "another World"])
async def test_a_run_held_in_memory_takes_payloads_from_the_change_without_reading_its_log(
    cached_runtime: Runtime,
    sender: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker holding the run learns of a payload from the change the append announced
    (here at once; from another process in its NOTIFY) and delivers it as it is: no read of
    the log between the payload and the step that follows it."""
    world = cached_runtime.world
    if sender == "another World":
        if not isinstance(world, PostgresWorld):
            pytest.skip("another process's changes carry events only through NOTIFY")
        other: World = PostgresWorld(request.getfixturevalue("pg_url"), schema=world.schema)
    else:
        other = world
    token = uuid.uuid4().hex
    run = await start(summing, token, 3)
    await hook_ready(cached_runtime, token)
    driver_reads: list[int] = []
    read = world.get_events

    async def counted(run_id: str, after_seq: int = 0) -> list[Event]:
        task = asyncio.current_task()
        if task is not None and task.get_name() == f"workflowkit-run-{run_id}":
            driver_reads.append(after_seq)  # the run's driver (its pump task) read its log
        return await read(run_id, after_seq)

    monkeypatch.setattr(world, "get_events", counted)
    try:
        for done, value in enumerate([1, 2, 3], start=1):
            await _operations.resume_hook(other, token, value)
            for _ in range(1000):  # one payload at a time: its step recorded before the next
                steps = await world.list_steps(run.run_id)
                if sum(s.status is StepStatus.COMPLETED for s in steps) >= done:
                    break
                await asyncio.sleep(0.01)
        assert await run.return_value(timeout=10) == 6
    finally:
        if other is not world:
            await other.close()
    assert driver_reads == []
