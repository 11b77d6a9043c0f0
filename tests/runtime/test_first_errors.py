"""The first errors a user meets: a missing extra, a bug in a step, an empty hook token,
and the one shape of ``text`` on requests and responses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import workflowkit
from workflowkit import (
    HookTokenError,
    MissingExtraError,
    Request,
    Response,
    WorkflowRunFailedError,
    create_hook,
    fetch,
    serde,
    step,
    sync,
    workflow,
)
from workflowkit.api import start
from workflowkit.cli.main import main
from workflowkit.runtime.runtime import Runtime


@workflow
async def fetches() -> int:
    reply = await fetch("http://127.0.0.1:9/")
    return reply.status


async def test_fetch_without_httpx_fails_at_once_with_the_install_command(
    cached_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)  # what `import httpx` meets uninstalled
    run = await start(fetches)
    with pytest.raises(WorkflowRunFailedError) as failed:
        await run.return_value(timeout=10)
    assert failed.value.error_type.endswith(MissingExtraError.__name__)
    assert "pip install 'workflowkit[http]'" in failed.value.error_message
    steps = await cached_runtime.world.list_steps(run.run_id)
    assert [(s.status, s.attempt) for s in steps] == [("failed", 1)]  # no retries


@step(max_retries=1)
def has_a_typo() -> int:
    return undefined_name  # type: ignore[name-defined]  # noqa: F821


@workflow
async def calls_the_typo() -> int:
    return await has_a_typo()


async def test_a_bug_in_a_step_is_retried_and_shown_with_the_users_traceback_only(
    cached_runtime: Runtime,
) -> None:
    run = await start(calls_the_typo)
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=10)
    (stored,) = await cached_runtime.world.list_steps(run.run_id)
    assert (stored.status, stored.attempt) == ("failed", 2)  # retried, like Temporal
    error = serde.decode(stored.error or b"")
    assert isinstance(error, NameError)
    trace = serde.exception_traceback(error)
    assert "in has_a_typo" in trace and "undefined_name" in trace
    assert "workflowkit/runtime" not in trace and "asyncio" not in trace
    assert "concurrent/futures" not in trace


@step(max_retries=0)
def broken() -> int:
    return {}["missing"]  # type: ignore[no-any-return]


@workflow
async def calls_broken() -> int:
    return await broken()


def test_inspect_steps_shows_the_last_errors_type_and_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, poll_interval=0.2)
    try:
        run = sync.start(calls_broken)
        with pytest.raises(WorkflowRunFailedError):
            run.return_value(timeout=10)
    finally:
        workflowkit.shutdown()
    capsys.readouterr()
    assert main(["--world", url, "--no-color", "inspect", "steps", "--run", run.run_id]) == 0
    shown = capsys.readouterr().out
    assert "last error: KeyError: 'missing'" in shown
    assert 'return {}["missing"]' in shown and "in broken" in shown
    assert "workflowkit/runtime" not in shown


@workflow
async def empty_token() -> None:
    create_hook(token="")


async def test_an_empty_hook_token_is_an_error(cached_runtime: Runtime) -> None:
    run = await start(empty_token)
    with pytest.raises(WorkflowRunFailedError) as failed:
        await run.return_value(timeout=10)
    assert failed.value.error_type.endswith(HookTokenError.__name__)
    assert "non-empty str" in failed.value.error_message


def test_request_and_response_text_are_both_properties() -> None:
    request = Request("POST", "http://x/", (), "héllo".encode())
    response = Response(200, (), "héllo".encode())
    assert request.text == response.text == "héllo"
    with pytest.warns(DeprecationWarning, match="property now"):
        assert request.text() == "héllo"  # type: ignore[operator]  # the old spelling
