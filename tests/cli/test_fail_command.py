"""``workflowkit fail``: end runs as failed from outside, against a SQLite World seeded by
real runs (a worker holding the run while it is failed: tests/runtime/test_operator_failure.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from parked import park_a_run

import workflowkit
from conftest import Seeded
from workflowkit.api import get_run
from workflowkit.cli.main import main


def run_cli(capsys: pytest.CaptureFixture[str], seeded: Seeded, *argv: str) -> tuple[int, str, str]:
    code = main(["--world", seeded.url, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], seeded: Seeded, *argv: str) -> Any:
    code, out, err = run_cli(capsys, seeded, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def status_of(capsys: pytest.CaptureFixture[str], seeded: Seeded, run_id: str) -> str:
    status: str = cli_json(capsys, seeded, "inspect", "run", run_id)["status"]
    return status


def failure_of(seeded: Seeded, run_id: str) -> workflowkit.WorkflowRunFailedError:
    """What ``await run.return_value()`` raises for the run, read by a fresh runtime."""
    workflowkit.configure(seeded.url, poll_interval=0.05)

    async def wait() -> Any:
        return await get_run(run_id).return_value(timeout=10)

    try:
        with pytest.raises(workflowkit.WorkflowRunFailedError) as caught:
            asyncio.run(wait())
    finally:
        workflowkit.shutdown()
    return caught.value


def test_fail_a_sleeping_run_with_a_reason(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    code, out, err = run_cli(capsys, seeded, "fail", seeded.sleeping, "--reason", "bad deploy")
    assert (code, out, err) == (0, f"failed {seeded.sleeping}\n", "")
    assert status_of(capsys, seeded, seeded.sleeping) == "failed"
    events = cli_json(capsys, seeded, "inspect", "events", seeded.sleeping)["events"]
    assert events[-1]["type"] == "run_failed"

    error = failure_of(seeded, seeded.sleeping)
    cause = error.__cause__
    assert isinstance(cause, workflowkit.RunFailedByOperatorError)
    assert (cause.run_id, cause.reason) == (seeded.sleeping, "bad deploy")
    assert str(cause) == f"run {seeded.sleeping} was failed by an operator: bad deploy"
    assert error.error_type == "workflowkit.errors.RunFailedByOperatorError"
    assert error.error_message == str(cause)
    code, out, _ = run_cli(capsys, seeded, "inspect", "run", seeded.sleeping)
    assert code == 0 and f"RunFailedByOperatorError: {cause}" in out


def test_fail_a_pending_run_without_a_reason(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    started = cli_json(capsys, seeded, "start", "cli.greet", "--args", '["eve"]', "--delay", "1h")
    run_id = started["run_id"]
    assert started["status"] == "pending"
    assert cli_json(capsys, seeded, "fail", run_id) == {"failed": [run_id], "skipped": []}
    assert status_of(capsys, seeded, run_id) == "failed"
    cause = failure_of(seeded, run_id).__cause__
    assert isinstance(cause, workflowkit.RunFailedByOperatorError)
    assert cause.reason is None and str(cause) == f"run {run_id} was failed by an operator"


def test_fail_a_run_waiting_on_a_hook_releases_the_hook(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    assert cli_json(capsys, seeded, "fail", seeded.waiting, "--reason", "") == {
        "failed": [seeded.waiting],
        "skipped": [],
    }
    assert cli_json(capsys, seeded, "inspect", "hooks")["hooks"] == []
    code, _, err = run_cli(capsys, seeded, "resume-hook", "approval:d-1", "--payload", "{}")
    assert code == 1 and "no active hook" in err
    cause = failure_of(seeded, seeded.waiting).__cause__
    assert isinstance(cause, workflowkit.RunFailedByOperatorError) and cause.reason is None


def test_ended_runs_are_skipped_and_reported(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    code, out, err = run_cli(
        capsys, seeded, "fail", seeded.completed, seeded.failed, seeded.sleeping
    )
    assert code == 0, err
    assert out.splitlines() == [
        f"failed {seeded.sleeping}",
        f"{seeded.completed} is already completed: not failed",
        f"{seeded.failed} is already failed: not failed",
    ]
    again = cli_json(capsys, seeded, "fail", seeded.sleeping, seeded.completed, "--reason", "x")
    assert again == {
        "failed": [],
        "skipped": [
            {"run_id": seeded.sleeping, "status": "failed"},
            {"run_id": seeded.completed, "status": "completed"},
        ],
    }
    assert status_of(capsys, seeded, seeded.completed) == "completed"
    # The run that had failed by itself keeps its own error; the second fail changed nothing.
    first = failure_of(seeded, seeded.failed)
    assert isinstance(first.__cause__, workflowkit.FatalError)
    assert first.error_message == "boom: bob"
    cause = failure_of(seeded, seeded.sleeping).__cause__
    assert isinstance(cause, workflowkit.RunFailedByOperatorError) and cause.reason is None


def test_an_unknown_run_id_fails_none(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    code, out, err = run_cli(capsys, seeded, "fail", seeded.sleeping, "wrun_NOPE", "--reason", "r")
    assert code == 1 and out == ""
    assert err.startswith("workflowkit fail: no workflow run with id 'wrun_NOPE'")
    assert "Traceback" not in err
    assert status_of(capsys, seeded, seeded.sleeping) == "running"
    assert status_of(capsys, seeded, seeded.waiting) == "running"


def test_fail_needs_a_run_id(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--world", seeded.url, "fail", "--reason", "why"])
    assert exc.value.code == 2 and "RUN_ID" in capsys.readouterr().err


def test_a_parked_run_can_be_failed(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    park_a_run(seeded.url, "parked-fail")
    listed = cli_json(capsys, seeded, "inspect", "runs", "--diverged")["runs"]
    assert [r["run_id"] for r in listed] == ["parked-fail"]
    code, out, err = run_cli(capsys, seeded, "fail", "parked-fail", "--reason", "will not fix")
    assert (code, out) == (0, "failed parked-fail\n"), err
    shown = cli_json(capsys, seeded, "inspect", "run", "parked-fail")
    assert shown["status"] == "failed"
    assert shown["error"]["$type"] == "workflowkit.errors:RunFailedByOperatorError"
    assert shown["error"]["$error"] == "run parked-fail was failed by an operator: will not fix"
    assert cli_json(capsys, seeded, "inspect", "runs", "--diverged")["runs"] == []
    cause = failure_of(seeded, "parked-fail").__cause__
    assert isinstance(cause, workflowkit.RunFailedByOperatorError)
    assert cause.reason == "will not fix"
