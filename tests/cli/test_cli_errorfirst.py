"""The CLI error first: whole errors and tracebacks, what runs wait for, ISO times, and the
same argument conventions in every command (issue 21)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import cli_workflows as wf
import pytest

import workflowkit
from conftest import Seeded, _until_event
from workflowkit.api import start
from workflowkit.cli.completion import script
from workflowkit.cli.main import _subparsers, build_parser, main
from workflowkit.runtime.runtime import get_runtime
from workflowkit.worlds.records import EventType

AT = r"(\d{4}-\d\d-\d\d )?\d\d:\d\d(:\d\d)? UTC"  # a time on a later day than now carries its date


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def started(seeded: Seeded, workflow: Any, arg: str, until: EventType | None = None) -> str:
    """Start a run on the database with a worker; its id, once ``until`` is in its log (or
    it has ended). The worker stops before the test goes on (at once: it would otherwise
    wait its grace period for a run whose step retries in an hour)."""
    runtime = workflowkit.configure(seeded.url, poll_interval=0.05)

    async def go() -> str:
        run = await start(workflow, arg)
        if until is None:
            with contextlib.suppress(workflowkit.WorkflowRunFailedError):
                await run.return_value(timeout=10)
        else:
            await _until_event(get_runtime().world, run.run_id, until)
        return run.run_id

    try:
        return asyncio.run(go())
    finally:
        runtime.close(grace=0.1)
        workflowkit.shutdown()


# -- errors ----------------------------------------------------------------------------------


def test_inspect_run_prints_the_whole_error_and_the_user_code_traceback(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    long_name = "x" * 300
    run_id = started(seeded, wf.fail, long_name)
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "run", run_id)
    assert code == 0
    error = out.split("\nerror:\n", 1)[1]
    assert f"  FatalError: boom: {long_name}\n" in error  # not cut at 80 characters
    trace = error.split("\ntraceback:\n", 1)[1]
    assert trace.lstrip().startswith("Traceback (most recent call last):")
    assert 'cli_workflows.py", line' in trace and "in explode" in trace
    assert "workflowkit/runtime" not in trace  # workflowkit's own frames are left out

    data = cli_json(capsys, "--world", seeded.url, "inspect", "run", run_id)
    failure = data["failure"]
    assert failure["error"] == f"FatalError: boom: {long_name}"
    assert (
        "in explode" in failure["traceback"] and "workflowkit/runtime" not in failure["traceback"]
    )
    # The raw error is what was stored: a step's traceback is stored from the user's frames.
    assert "in explode" in data["error"]["traceback"]


def test_a_run_that_did_not_fail_has_no_failure(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    data = cli_json(capsys, "--world", seeded.url, "inspect", "run", seeded.completed)
    assert data["failure"] is None


# -- what runs wait for ----------------------------------------------------------------------


def test_run_lists_say_what_each_run_waits_for(
    capsys: pytest.CaptureFixture[str], seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    retrying = started(seeded, wf.retry, "r-1", until=EventType.STEP_RETRYING)
    data = cli_json(capsys, "--world", seeded.url, "inspect", "runs")
    waiting = {r["run_id"]: r["waiting_for"] for r in data["runs"]}
    assert re.match(
        r"sleep until " + AT + r" \(in (59|60)m\)",
        waiting[seeded.sleeping],
    )
    assert waiting[seeded.waiting].startswith("hook `approval:d-1`")
    # No worker runs here: a run that waits on something says that too, sleeping or not.
    for run_id, workflow in ((seeded.sleeping, "cli.nap"), (seeded.waiting, "cli.approve")):
        assert waiting[run_id].endswith(f"; a worker: no worker has workflow `{workflow}`")
    assert re.match(r"step `flaky` attempt 2, retry in (59|60)m", waiting[retrying])
    assert waiting[seeded.completed] is None and waiting[seeded.failed] is None

    monkeypatch.setenv("COLUMNS", "400")
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "runs")
    assert code == 0 and "WAITING FOR" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith(seeded.waiting))
    assert "hook `approval:d-1`" in row

    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "run", retrying)
    assert re.search(r"waiting for: +step `flaky` attempt 2, retry in", out)


def test_times_in_json_are_iso_8601(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    events = cli_json(capsys, "--world", seeded.url, "inspect", "events", seeded.sleeping)
    [created] = [e for e in events["events"] if e["type"] == "wait_created"]
    resume_at = created["attrs"]["resume_at"]
    assert isinstance(resume_at, str) and datetime.fromisoformat(resume_at).tzinfo is not None
    sleeps = cli_json(capsys, "--world", seeded.url, "inspect", "sleeps", seeded.sleeping)
    assert sleeps["sleeps"][0]["resume_at"] == resume_at


# -- the same conventions everywhere ---------------------------------------------------------


def test_world_is_accepted_after_the_command(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    data = cli_json(capsys, "inspect", "runs", "--world", seeded.url, "--status", "failed")
    assert [r["run_id"] for r in data["runs"]] == [seeded.failed]
    data = cli_json(capsys, "inspect", "run", seeded.failed, "--world", seeded.url)
    assert data["run_id"] == seeded.failed


def test_run_ids_are_positional_and_the_old_option_still_works(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    for what in ("steps", "events", "sleeps", "streams"):
        code, out, err = run_cli(capsys, "--world", seeded.url, "inspect", what, seeded.sleeping)
        assert code == 0 and out.strip() and err == ""
    code, out, err = run_cli(
        capsys, "--world", seeded.url, "inspect", "steps", "--run", seeded.completed
    )
    assert code == 0 and "shout" in out
    assert "warning: --run RUN_ID is deprecated" in err
    hooks = cli_json(capsys, "--world", seeded.url, "inspect", "hooks", seeded.waiting)
    assert [h["token"] for h in hooks["hooks"]] == ["approval:d-1"]


def test_resume_hook_takes_payload_and_json_is_the_output_switch(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    data = cli_json(
        capsys, "--world", seeded.url, "resume-hook", "approval:d-1", "--payload", '{"ok": 1}'
    )
    assert data["run_id"] == seeded.waiting and data["token"] == "approval:d-1"
    code, _, err = run_cli(
        capsys, "--world", seeded.url, "resume-hook", "approval:d-1", "--payload", "{nope"
    )
    assert code == 2 and "--payload: invalid JSON" in err


def test_resume_hook_old_json_payload_still_works_with_a_warning(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    code, out, err = run_cli(
        capsys, "--world", seeded.url, "resume-hook", "approval:d-1", "--json", '{"ok": 1}'
    )
    assert code == 0 and seeded.waiting in out
    assert "resume-hook --json PAYLOAD is deprecated: use --payload" in err


def test_help_has_no_rest_markup() -> None:
    parser = build_parser()
    for each in (parser, *_subparsers(parser)):
        text = each.format_help()
        assert "``" not in text, each.prog


def test_tables_fit_the_terminal_width(
    capsys: pytest.CaptureFixture[str], seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "90")
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "runs")
    assert code == 0
    lines = [line for line in out.splitlines() if line.startswith(("RUN ID", "wrun_"))]
    assert all(len(line) <= 90 for line in lines), lines
    assert any(line.endswith("…") for line in lines)  # WAITING FOR, the widest, was cut
    for run_id in (seeded.completed, seeded.failed, seeded.sleeping, seeded.waiting):
        assert any(line.startswith(run_id + " ") for line in lines)  # ids are never cut
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "runs")
    assert "…" not in out  # not a terminal, no $COLUMNS: whole cells (for grep, cut, ...)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("typed", "offered"),
    [
        (["insp"], {"inspect"}),
        (["inspect", ""], {"runs", "run", "steps", "hooks", "streams"}),
        (["inspect", "runs", "--st"], {"--status"}),
        (["inspect", "runs", "--status", "fa"], {"failed"}),
        (["resume-hook", "--pa"], {"--payload"}),
        (["fa"], {"fail"}),
        (["fail", "--re"], {"--reason"}),
        (["completion", ""], {"bash", "zsh"}),
    ],
)
def test_bash_completion(tmp_path: Path, typed: list[str], offered: set[str]) -> None:
    completion = tmp_path / "workflowkit.bash"
    completion.write_text(script(build_parser(), "bash"))
    words = " ".join(f"'{w}'" for w in ["workflowkit", *typed])
    test = (
        f"source {completion}; COMP_WORDS=({words}); COMP_CWORD={len(typed)}; "
        'complete -p workflowkit >/dev/null && _workflowkit && printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "-c", test], capture_output=True, text=True, timeout=10, check=False
    )
    assert result.returncode == 0, result.stderr
    assert offered <= set(result.stdout.split()), result.stdout


def test_completion_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "completion", "zsh")
    assert code == 0 and "bashcompinit" in out and "complete -o default -F _workflowkit" in out


def test_the_docs_use_the_current_argument_conventions() -> None:
    """Run ids positional, the payload as --payload: no page teaches the deprecated forms
    (cli.md names them once, as deprecated, in a form these patterns do not match)."""
    docs = Path(__file__).parents[2] / "docs"
    old_forms = [
        re.compile(r"inspect\s+(steps|events|sleeps|streams|hooks)\s+--run\b"),
        re.compile(r"resume-hook\s+\S+\s+--json\s+['\"{]"),
    ]
    found = [
        f"{page.relative_to(docs)}: {match.group(0)!r}"
        for page in sorted(docs.rglob("*.md"))
        for pattern in old_forms
        for match in pattern.finditer(page.read_text())
    ]
    assert found == []
