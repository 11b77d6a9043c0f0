"""Failing a run from the dashboard (``POST /api/runs/{run_id}/fail``), as ``workflowkit
fail`` does: a real SQLite World, its embedded worker holding the run inside a step, and
the dashboard answering over ASGI on the same database."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import blocked_step
import httpx
import pytest
import web_workflows as wf
from dashboard_client import HTML, csrf, dashboard_client

import workflowkit
from workflowkit import RunFailedByOperatorError, WorkflowRunFailedError
from workflowkit.api import Run, start


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    world = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(world, poll_interval=0.05)
    yield world
    blocked_step.STEP_RELEASE.set()  # a test that failed early leaves no thread waiting
    workflowkit.shutdown()


@pytest.fixture
async def client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with dashboard_client(url) as c:
        yield c


async def held_run() -> Run[str]:
    blocked_step.reset()
    run = await start(blocked_step.held_in_a_step)
    assert await asyncio.to_thread(blocked_step.STEP_STARTED.wait, 10)
    return run


def operator_failure(error: WorkflowRunFailedError) -> RunFailedByOperatorError:
    assert isinstance(error.__cause__, RunFailedByOperatorError), error.__cause__
    return error.__cause__


async def test_fail_a_run_held_in_a_step(client: httpx.AsyncClient) -> None:
    run = await held_run()
    page = (await client.get(f"/runs/{run.run_id}", headers=HTML)).text
    assert re.search(r'<button[^>]*data-action="fail"[^>]*data-prompt="[^"]+"', page)

    answer = await client.post(
        f"/api/runs/{run.run_id}/fail",
        headers=await csrf(client),
        json={"reason": "stuck behind a bad deploy"},
    )
    assert answer.status_code == 200
    assert answer.json() == {"failed": [run.run_id], "skipped": []}
    blocked_step.STEP_RELEASE.set()
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=10)
    assert operator_failure(caught.value).reason == "stuck behind a bad deploy"
    assert await run.status() == "failed"
    assert blocked_step.FOLLOW_UPS == []  # the run went no further than its first step

    shown = (await client.get(f"/api/runs/{run.run_id}")).json()
    assert "stuck behind a bad deploy" in shown["failure"]["error"]
    page = (await client.get(f"/runs/{run.run_id}", headers=HTML)).text
    assert 'data-action="fail"' not in page and 'data-action="cancel"' not in page


async def test_failing_without_a_body_records_no_reason(client: httpx.AsyncClient) -> None:
    run = await held_run()
    answer = await client.post(f"/api/runs/{run.run_id}/fail", headers=await csrf(client))
    assert answer.json() == {"failed": [run.run_id], "skipped": []}
    blocked_step.STEP_RELEASE.set()
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=10)
    assert operator_failure(caught.value).reason is None


async def test_a_run_that_ended_is_left_as_it_is(client: httpx.AsyncClient) -> None:
    done = await start(wf.hostile, "done")
    assert await done.return_value(timeout=10) == "done"
    headers = await csrf(client)
    answer = await client.post(
        f"/api/runs/{done.run_id}/fail", headers=headers, json={"reason": "too late"}
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "failed": [],
        "skipped": [{"run_id": done.run_id, "status": "completed"}],
    }
    assert await done.status() == "completed"
    assert await done.return_value(timeout=10) == "done"

    run = await held_run()
    first = await client.post(f"/api/runs/{run.run_id}/fail", headers=headers, json={"reason": "a"})
    assert first.json()["failed"] == [run.run_id]
    again = await client.post(f"/api/runs/{run.run_id}/fail", headers=headers, json={"reason": "b"})
    assert again.json()["skipped"] == [{"run_id": run.run_id, "status": "failed"}]
    blocked_step.STEP_RELEASE.set()
    with pytest.raises(WorkflowRunFailedError) as caught:
        await run.return_value(timeout=10)
    assert operator_failure(caught.value).reason == "a"  # the first failure stands


async def test_bad_fail_requests(client: httpx.AsyncClient) -> None:
    headers = await csrf(client)
    missing = await client.post("/api/runs/wrun_nope/fail", headers=headers, json={})
    assert missing.status_code == 404
    assert missing.json() == {"error": "no workflow run with id 'wrun_nope'"}

    run = await held_run()
    bad = await client.post(f"/api/runs/{run.run_id}/fail", headers=headers, json={"reason": 5})
    assert bad.status_code == 400 and '"reason" must be a string' in bad.json()["error"]
    refused = await client.post(f"/api/runs/{run.run_id}/fail", json={})
    assert refused.status_code == 403  # no CSRF token
    assert await run.status() == "running"  # neither request ended it
    blocked_step.STEP_RELEASE.set()
    assert await run.return_value(timeout=10) == "finished"
