"""Deploying new code under live runs: patched(), parked divergence, code versions."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import workflowkit
from workflowkit import (
    NotInWorkflowError,
    WorkflowRunFailedError,
    deprecate_patch,
    patched,
    sleep,
    step,
    workflow,
)
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType, RunStatus

VERSION = {"code": 1}


@step
def mark(tag: str) -> str:
    return tag


@workflow
async def evolving() -> list[str]:
    out = [await mark("a")]
    if VERSION["code"] == 1:
        out.append(await mark("b"))
    elif VERSION["code"] == 2:
        out.append(await mark("c") if patched("use-c") else await mark("b"))
    else:
        deprecate_patch("use-c")
        out.append(await mark("c"))
    await sleep(0.4)  # the new code is deployed while runs sleep here
    out.append(await mark("end"))
    return out


CHANGE = {"reordered": False}


@workflow
async def reorders() -> str:
    first = await mark("x") if not CHANGE["reordered"] else await mark("y")
    await sleep(0.3)
    return first


@pytest.fixture
def replaying(tmp_path: Path) -> Iterator[str]:
    """A runtime that replays each run from its log for every event, like a fresh process
    after a deploy would."""
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, cache_runs=False, evict_after=0, poll_interval=0.05)
    VERSION["code"], CHANGE["reordered"] = 1, False
    yield url
    workflowkit.shutdown()
    VERSION["code"], CHANGE["reordered"] = 1, False


async def sleeping(run_id: str) -> None:
    world = workflowkit.runtime.runtime.get_runtime().world
    for _ in range(500):
        if any(e.type is EventType.WAIT_CREATED for e in await world.get_events(run_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{run_id} never slept")


async def test_patched_keeps_old_runs_on_the_old_branch(replaying: str) -> None:
    old = await start(evolving)  # recorded by version 1: a, b
    await sleeping(old.run_id)
    VERSION["code"] = 2
    new = await start(evolving)
    assert await old.return_value(timeout=20) == ["a", "b", "end"]
    assert await new.return_value(timeout=20) == ["a", "c", "end"]
    world = workflowkit.runtime.runtime.get_runtime().world
    markers = [e.correlation_id for e in await world.get_events(new.run_id)]
    assert "use-c" in markers
    assert "use-c" not in [e.correlation_id for e in await world.get_events(old.run_id)]


async def test_deprecate_patch_replays_runs_that_recorded_the_marker(replaying: str) -> None:
    VERSION["code"] = 2
    marked = await start(evolving)  # records the marker, then sleeps
    await sleeping(marked.run_id)
    VERSION["code"] = 3  # no old-branch run is left: the branch goes
    fresh = await start(evolving)
    assert await marked.return_value(timeout=20) == ["a", "c", "end"]
    assert await fresh.return_value(timeout=20) == ["a", "c", "end"]


def test_patched_outside_workflow_code_is_an_error() -> None:
    with pytest.raises(NotInWorkflowError):
        patched("x")
    with pytest.raises(NotInWorkflowError):
        deprecate_patch("x")


async def test_a_diverged_run_is_parked_then_resumed_by_other_code(
    replaying: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await start(reorders)
    await sleeping(run.run_id)
    CHANGE["reordered"] = True  # a deploy that changed the workflow under the run
    world = workflowkit.runtime.runtime.get_runtime().world
    for _ in range(500):
        record = await world.get_run(run.run_id)
        if record is not None and record.diverged is not None:
            break
        await asyncio.sleep(0.01)
    assert record is not None and record.status is RunStatus.RUNNING
    assert record.diverged is not None and record.diverged.position == 1
    assert "'x'" not in record.diverged.expected  # step names, not arguments
    assert record.diverged.expected.startswith("step") and record.code_version
    assert [r.run_id for r in await world.list_runs(diverged=True)] == [run.run_id]
    await asyncio.sleep(0.5)  # the same code never takes it again
    again = await world.get_run(run.run_id)
    assert again is not None and again.diverged is not None and again.owner is None
    # A fixed deploy: the change is undone, under a new deployment name.
    CHANGE["reordered"] = False
    workflowkit.shutdown()
    monkeypatch.setenv("WORKFLOWKIT_DEPLOYMENT", "fixed-2")
    workflowkit.configure(replaying, cache_runs=False, evict_after=0, poll_interval=0.05)
    assert await run.return_value(timeout=20) == "x"
    finished = await workflowkit.runtime.runtime.get_runtime().world.get_run(run.run_id)
    assert finished is not None and finished.diverged is None


async def test_cancel_ends_a_parked_run(replaying: str) -> None:
    run = await start(reorders)
    await sleeping(run.run_id)
    CHANGE["reordered"] = True
    world = workflowkit.runtime.runtime.get_runtime().world
    for _ in range(500):
        record = await world.get_run(run.run_id)
        if record is not None and record.diverged is not None:
            break
        await asyncio.sleep(0.01)
    await run.cancel()
    assert await run.status() == "cancelled"


async def test_runs_record_the_code_version_they_started_under(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKFLOWKIT_DEPLOYMENT", raising=False)
    run = await start(reorders)
    await run.return_value(timeout=20)
    record = await runtime.world.get_run(run.run_id)
    assert record is not None and record.code_version is not None
    assert record.code_version.startswith("src-")  # a digest of the workflow's source
    monkeypatch.setenv("WORKFLOWKIT_DEPLOYMENT", "release-42")  # one name for a deploy
    named = await start(reorders)
    await named.return_value(timeout=20)
    assert (await named.info()).code_version == "release-42"
    assert (await run.info()).code_version == record.code_version  # what it started under


@step(max_retries=0)
def asks_in_a_step() -> str:
    patched("in-a-step")
    return "no error"


@step(max_retries=0)
async def asks_in_an_async_step() -> str:
    deprecate_patch("in-a-step")
    return "no error"


@workflow
async def patches_in_steps(which: str) -> str:
    return await (asks_in_a_step() if which == "sync" else asks_in_an_async_step())


async def test_patched_in_a_step_is_an_error(runtime: Runtime) -> None:
    """A step's body is not workflow code: it runs once, so a patch there would mean nothing."""
    for which in ("sync", "async"):
        run = await start(patches_in_steps, which)
        with pytest.raises(WorkflowRunFailedError) as info:
            await run.return_value(timeout=20)
        assert info.value.error_type.endswith("NotInWorkflowError")
        assert "works only in workflow code" in info.value.error_message


def test_a_version_is_the_deployment_name_else_a_digest_of_the_workflow_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workflowkit.runtime.versions import code_version

    monkeypatch.delenv("WORKFLOWKIT_DEPLOYMENT", raising=False)
    first, second = code_version(evolving), code_version(reorders)
    assert first.startswith("src-") and second.startswith("src-") and first != second
    assert code_version(evolving) == first  # the same source, the same version
    monkeypatch.setenv("WORKFLOWKIT_DEPLOYMENT", "release-43")
    assert code_version(evolving) == code_version(reorders) == "release-43"


def test_a_change_beside_the_workflow_in_its_module_makes_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fix in a helper the workflow calls must let the fixed code retry runs the old code
    # parked, so the version covers the workflow's module, not only the function.
    import importlib.util
    import types

    from workflowkit.runtime.versions import code_version

    monkeypatch.delenv("WORKFLOWKIT_DEPLOYMENT", raising=False)
    workflow_source = "async def flow():\n    return helper()\n"
    versions = []
    for name, helper in (("v_old", "return 1"), ("v_new", "return 2")):
        path = tmp_path / f"{name}.py"
        path.write_text(f"def helper():\n    {helper}\n\n\n{workflow_source}")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        versions.append(code_version(types.SimpleNamespace(fn=module.flow)))
    assert versions[0] != versions[1]
