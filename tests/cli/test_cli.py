"""The workflowkit CLI against a SQLite World seeded by real runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import cli_workflows as wf
import pytest
from parked import park_a_run

import workflowkit
from conftest import Seeded
from workflowkit.api import HookInfo, get_run, start
from workflowkit.cli import control
from workflowkit.cli.main import main
from workflowkit.testing import wait_for_hook


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], seeded: Seeded, *argv: str) -> Any:
    code, out, err = run_cli(capsys, "--world", seeded.url, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def finish(seeded: Seeded, run_id: str) -> Any:
    """Start a runtime on the database and wait for the run to end; its return value."""
    workflowkit.configure(seeded.url, poll_interval=0.05)

    async def wait() -> Any:
        return await get_run(run_id).return_value(timeout=10)

    return asyncio.run(wait())


# -- inspect -------------------------------------------------------------------------------


def test_inspect_runs_json(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    data = cli_json(capsys, seeded, "inspect", "runs")
    runs = {r["run_id"]: r for r in data["runs"]}
    assert list(runs) == [seeded.waiting, seeded.sleeping, seeded.failed, seeded.completed]
    assert data["next_cursor"] is None
    done = runs[seeded.completed]
    assert done["workflow_name"] == "cli.greet" and done["status"] == "completed"
    assert done["input"] == [["ada"], {}]  # the encoded (args, kwargs)
    assert done["output"] == "HELLO ADA" and done["error"] is None
    failed = runs[seeded.failed]
    assert failed["status"] == "failed"
    assert "boom: bob" in json.dumps(failed["error"])
    assert runs[seeded.sleeping]["status"] == "running"
    assert set(done) >= {"created_at", "started_at", "completed_at", "updated_at"}


def test_inspect_runs_filters_and_paging(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    data = cli_json(capsys, seeded, "inspect", "runs", "--status", "failed")
    assert [r["run_id"] for r in data["runs"]] == [seeded.failed]
    data = cli_json(capsys, seeded, "inspect", "runs", "--workflow", "cli.nap")
    assert [r["run_id"] for r in data["runs"]] == [seeded.sleeping]

    page1 = cli_json(capsys, seeded, "inspect", "runs", "--limit", "3")
    assert len(page1["runs"]) == 3 and page1["next_cursor"] == page1["runs"][-1]["run_id"]
    page2 = cli_json(
        capsys, seeded, "inspect", "runs", "--limit", "3", "--cursor", page1["next_cursor"]
    )
    assert [r["run_id"] for r in page2["runs"]] == [seeded.completed]
    assert page2["next_cursor"] is None

    assert len(cli_json(capsys, seeded, "inspect", "runs", "--since", "1h")["runs"]) == 4
    assert cli_json(capsys, seeded, "inspect", "runs", "--until", "1h")["runs"] == []
    assert cli_json(capsys, seeded, "inspect", "runs", "--since", "2999-01-01")["runs"] == []
    until = cli_json(capsys, seeded, "inspect", "runs", "--until", "2999-01-01T00:00:00Z")
    assert len(until["runs"]) == 4


def test_inspect_runs_human(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "runs", "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    # (a last column, WAITING FOR, says no live worker has these workflows)
    assert lines[0].split()[:6] == ["RUN", "ID", "WORKFLOW", "STATUS", "CREATED", "DURATION"]
    assert seeded.waiting in lines[1] and "cli.approve" in lines[1]
    assert "ago" in lines[1] or "just now" in lines[1]
    # columns are aligned: every row puts WORKFLOW at the same offset
    col = lines[0].index("WORKFLOW")
    assert lines[1][col:].startswith("cli.approve") and lines[2][col:].startswith("cli.nap")
    assert "--cursor" in lines[-1]


def test_inspect_run(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    data = cli_json(capsys, seeded, "inspect", "run", seeded.failed)
    assert data["run_id"] == seeded.failed and data["status"] == "failed"
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "run", seeded.failed)
    assert code == 0 and "boom: bob" in out and "FatalError" in out
    assert all(len(line) < 140 for line in out.splitlines())
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "run", seeded.sleeping)
    assert re.search(r"sleeping: +wait_\w+ resumes in \d+m", out), out


def test_inspect_steps_events_sleeps_hooks(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    steps = cli_json(capsys, seeded, "inspect", "steps", seeded.completed)
    assert steps["run_id"] == seeded.completed
    [step] = steps["steps"]
    assert step["step_name"].endswith("shout") and step["status"] == "completed"
    assert step["output"] == "HELLO ADA" and step["attempt"] == 1

    events = cli_json(capsys, seeded, "inspect", "events", seeded.completed)["events"]
    types = [e["type"] for e in events]
    assert types[0] == "run_created" and types[-1] == "run_completed"
    assert "step_completed" in types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["payload"] == "HELLO ADA"

    sleeps = cli_json(capsys, seeded, "inspect", "sleeps", seeded.sleeping)["sleeps"]
    assert len(sleeps) == 1 and sleeps[0]["status"] == "waiting"
    assert sleeps[0]["wait_id"].startswith("wait_") and sleeps[0]["completed_at"] is None

    hooks = cli_json(capsys, seeded, "inspect", "hooks")["hooks"]
    assert [(h["run_id"], h["token"]) for h in hooks] == [(seeded.waiting, "approval:d-1")]
    assert hooks[0]["metadata"] == {"doc": "d-1"} and hooks[0]["is_webhook"] is False
    assert cli_json(capsys, seeded, "inspect", "hooks", seeded.completed)["hooks"] == []

    for what in ("steps", "events", "sleeps", "hooks"):
        code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", what, seeded.sleeping)
        assert code == 0 and out.strip()


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "run", "wrun_NOPE"],
        ["inspect", "steps", "wrun_NOPE"],
        ["inspect", "events", "wrun_NOPE"],
        ["inspect", "sleeps", "wrun_NOPE"],
        ["inspect", "hooks", "wrun_NOPE"],
        ["cancel", "wrun_NOPE"],
        ["wake-up", "wrun_NOPE"],
    ],
)
def test_unknown_run(capsys: pytest.CaptureFixture[str], seeded: Seeded, argv: list[str]) -> None:
    code, out, err = run_cli(capsys, "--world", seeded.url, *argv)
    assert code == 1 and out == ""
    assert "no workflow run with id 'wrun_NOPE'" in err and "Traceback" not in err


def test_missing_database_is_an_error_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    code, _, err = run_cli(capsys, "--world", url, "inspect", "runs")
    assert code == 1 and "no workflowkit database" in err
    assert not (tmp_path / "absent.db").exists()


def test_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--world", seeded.url, "inspect", "runs", "--since", "yesterday-ish"])
    assert exc.value.code == 2
    assert "neither an ISO datetime nor a duration" in capsys.readouterr().err


# -- control -------------------------------------------------------------------------------


def test_cancel_one(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    data = cli_json(capsys, seeded, "cancel", seeded.sleeping)
    assert data == {"cancelled": [seeded.sleeping], "skipped": []}
    again = cli_json(capsys, seeded, "cancel", seeded.sleeping, seeded.completed)
    assert again["cancelled"] == []
    assert {s["status"] for s in again["skipped"]} == {"cancelled", "completed"}
    with pytest.raises(workflowkit.WorkflowRunCancelledError):
        finish(seeded, seeded.sleeping)
    # An ended run sleeps no more, whatever its sleep's row still says.
    code, out, _ = run_cli(capsys, "--world", seeded.url, "--no-color", "inspect", "run",
                           seeded.sleeping)  # fmt: skip
    assert code == 0 and re.search(r"^sleeping:\s+-$", out, re.MULTILINE), out


def test_bulk_cancel_needs_confirmation(
    capsys: pytest.CaptureFixture[str], seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(capsys, "--world", seeded.url, "cancel", "--status", "running")
    assert code == 2 and "--yes" in err
    assert cli_json(capsys, seeded, "inspect", "run", seeded.sleeping)["status"] == "running"

    monkeypatch.setattr(control, "interactive", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _prompt: "n")
    code, _, err = run_cli(capsys, "--world", seeded.url, "cancel", "--workflow", "cli.nap")
    assert code == 1 and "nothing cancelled" in err
    monkeypatch.setattr("builtins.input", lambda _prompt: "y")
    code, out, _ = run_cli(capsys, "--world", seeded.url, "cancel", "--workflow", "cli.nap")
    assert code == 0 and out.splitlines()[-1] == f"cancelled {seeded.sleeping}"
    assert cli_json(capsys, seeded, "inspect", "run", seeded.waiting)["status"] == "running"


def test_bulk_cancel_yes(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    data = cli_json(capsys, seeded, "cancel", "--status", "running", "--yes")
    assert sorted(data["cancelled"]) == sorted([seeded.sleeping, seeded.waiting])
    runs = cli_json(capsys, seeded, "inspect", "runs")["runs"]
    statuses = {r["run_id"]: r["status"] for r in runs}
    assert statuses == {
        seeded.completed: "completed",
        seeded.failed: "failed",
        seeded.sleeping: "cancelled",
        seeded.waiting: "cancelled",
    }
    assert cli_json(capsys, seeded, "inspect", "hooks")["hooks"] == []


def test_cancel_usage(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    code, _, err = run_cli(capsys, "--world", seeded.url, "cancel")
    assert code == 2 and "cancel what?" in err


def test_wake_up(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    [wait] = cli_json(capsys, seeded, "inspect", "sleeps", seeded.sleeping)["sleeps"]
    code, _, err = run_cli(
        capsys, "--world", seeded.url, "wake-up", seeded.sleeping, "--id", "wait_OTHER"
    )
    assert code == 1 and "wait_OTHER" in err
    data = cli_json(capsys, seeded, "wake-up", seeded.sleeping, "--id", wait["wait_id"])
    assert data == {
        "run_id": seeded.sleeping,
        "woken": [wait["wait_id"]],
        "not_pending": [],
        "started": False,
    }
    assert finish(seeded, seeded.sleeping) == "AWAKE CY"
    workflowkit.shutdown()
    data = cli_json(capsys, seeded, "wake-up", seeded.sleeping)
    assert data["woken"] == []


def test_resume_hook(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    code, out, _ = run_cli(
        capsys, "--world", seeded.url, "resume-hook", "approval:d-1", "--payload", '{"ok": true}'
    )
    assert code == 0 and seeded.waiting in out
    assert finish(seeded, seeded.waiting) == {"doc": "d-1", "decision": {"ok": True}}


def test_resume_hook_errors(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    code, _, err = run_cli(
        capsys, "--world", seeded.url, "resume-hook", "approval:d-1", "--payload", "{nope"
    )
    assert code == 2 and "invalid JSON" in err and "Traceback" not in err
    code, _, err = run_cli(
        capsys, "--world", seeded.url, "resume-hook", "no-such-token", "--payload", "1"
    )
    assert code == 1 and "no active hook with token 'no-such-token'" in err


def test_resume_hook_refuses_a_webhook_token(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    hook = waiting_webhook(seeded)
    code, out, err = run_cli(
        capsys, "--world", seeded.url, "resume-hook", hook.token, "--payload", '{"ok": true}'
    )
    assert code == 1 and out == ""
    assert f"token {hook.token!r} belongs to a webhook" in err and "Traceback" not in err
    events = cli_json(capsys, seeded, "inspect", "events", hook.run_id)["events"]
    assert "hook_received" not in [e["type"] for e in events]


def waiting_webhook(seeded: Seeded) -> HookInfo:
    """Start a run that waits on a webhook; its hook, once the run is parked there."""
    workflowkit.configure(seeded.url, poll_interval=0.05)

    async def hook() -> HookInfo:
        return await wait_for_hook(await start(wf.webhook))

    try:
        return asyncio.run(hook())
    finally:
        workflowkit.shutdown()


# -- health and db -------------------------------------------------------------------------


def test_health(capsys: pytest.CaptureFixture[str], seeded: Seeded, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "--world", seeded.url, "health")
    assert code == 0 and out.startswith("ok SQLiteWorld(")
    data = cli_json(capsys, seeded, "health")
    assert data["ok"] is True and "SQLiteWorld" in data["world"]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out, err = run_cli(capsys, "--world", f"sqlite:///{blocker}/wk.db", "health")
    assert code == 1 and "unreachable" in err and out == ""
    code, out, _ = run_cli(capsys, "--world", f"sqlite:///{blocker}/wk.db", "health", "--json")
    assert code == 1 and json.loads(out)["ok"] is False


def test_db_migrate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'wk.db'}"
    code, out, _ = run_cli(capsys, "--world", url, "db", "migrate")
    assert code == 0 and "applied migration 0001_initial" in out
    assert (tmp_path / "new" / "wk.db").exists()
    code, out, _ = run_cli(capsys, "--world", url, "db", "migrate", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["applied"] == [] and data["schema_version"] >= 1
    code, out, _ = run_cli(capsys, "--world", url, "inspect", "runs")
    assert code == 0 and out.strip() == "no runs"


def test_unknown_world_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "--world", "mongo://x/y", "inspect", "runs")
    assert code == 1 and "unknown world URL scheme" in err and "Traceback" not in err


def test_subprocess_with_env_world(seeded: Seeded) -> None:
    env = {**os.environ, "WORKFLOWKIT_WORLD": seeded.url}
    result = subprocess.run(
        [sys.executable, "-m", "workflowkit", "inspect", "runs", "--status", "completed", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["run_id"] for r in data["runs"]] == [seeded.completed]
    assert wf.greet.name == data["runs"][0]["workflow_name"]


def test_start_by_name(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    data = cli_json(capsys, seeded, "start", "cli.greet", "--args", '["eve"]')
    assert data["status"] == "pending" and data["workflow_name"] == "cli.greet"
    assert finish(seeded, data["run_id"]) == "HELLO EVE"
    code, _, err = run_cli(capsys, "--world", seeded.url, "start", "cli.greet", "--args", "{}")
    assert code == 2 and "JSON array" in err
    code, _, err = run_cli(capsys, "--world", seeded.url, "start", "cli.greet", "--args", "[")
    assert code == 2 and "invalid JSON" in err


def test_start_warns_when_no_live_worker_has_the_workflow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from workflowkit.worlds.records import WorkerInfo
    from workflowkit.worlds.sqlite import SQLiteWorld

    url = f"sqlite:///{tmp_path / 'w.db'}"
    code, out, err = run_cli(capsys, "--world", url, "start", "nobody.has.this")
    assert code == 0 and out.startswith("started ")
    assert "no live worker has registered workflow 'nobody.has.this'" in err
    run_id = out.split()[1]
    code, out, _ = run_cli(capsys, "--world", url, "inspect", "run", run_id)
    assert "no worker has workflow `nobody.has.this`" in out

    async def register() -> None:
        world = SQLiteWorld(tmp_path / "w.db")
        await world.register_worker(WorkerInfo("wrkr_x", "h", 1, ("nobody.has.this",)))
        await world.close()

    asyncio.run(register())
    code, _, err = run_cli(capsys, "--world", url, "start", "nobody.has.this")
    assert code == 0 and "warning" not in err
    data = json.loads(run_cli(capsys, "--world", url, "inspect", "run", run_id, "--json")[1])
    assert data["waiting_for"] is None


def test_inspect_queues_and_runs_by_queue(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    import asyncio

    from workflowkit.worlds import open_world
    from workflowkit.worlds.records import QueueLimits, RunOptions

    async def seed() -> None:
        world = open_world(seeded.url)
        try:
            await world.register_queues([QueueLimits("emails", concurrency=2, per_key=1)])
            options = RunOptions(queue="emails", key="cust-1")
            await world.create_run("q-run-1", "nobody.has.this", b"", {}, options)
        finally:
            await world.close()

    asyncio.run(seed())
    data = cli_json(capsys, seeded, "inspect", "queues")
    (queue,) = [q for q in data["queues"] if q["name"] == "emails"]
    assert (queue["name"], queue["concurrency"], queue["per_key"]) == ("emails", 2, 1)
    assert queue["waiting"] == 1 and queue["oldest_waiting_seconds"] >= 0
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "queues")
    assert code == 0 and "emails" in out and "concurrency 2, per key 1" in out
    runs = cli_json(capsys, seeded, "inspect", "runs", "--queue", "emails", "--key", "cust-1")
    assert [r["run_id"] for r in runs["runs"]] == ["q-run-1"]
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "runs", "--queue", "emails")
    assert "QUEUE" in out and "cust-1" in out


def test_gc_deletes_ended_runs_only(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    before = cli_json(capsys, seeded, "inspect", "runs", "--limit", "100")["runs"]
    ended = [r["run_id"] for r in before if r["status"] in ("completed", "failed", "cancelled")]
    going = [r["run_id"] for r in before if r["run_id"] not in ended]
    assert ended and going
    dry = cli_json(capsys, seeded, "gc", "--older-than", "0s", "--dry-run")
    assert dry["runs"] == len(ended) and dry["dry_run"] is True
    done = cli_json(capsys, seeded, "gc", "--older-than", "0s", "--status", "completed,failed")
    after = cli_json(capsys, seeded, "inspect", "runs", "--limit", "100")["runs"]
    left = {r["run_id"]: r["status"] for r in after}
    assert done["runs"] == len([r for r in before if r["status"] in ("completed", "failed")])
    assert all(run_id in left for run_id in going)
    assert set(left.values()) <= {"pending", "running", "cancelled"}
    code, _, err = run_cli(capsys, "--world", seeded.url, "gc", "--older-than", "soon")
    assert code == 2 and "--older-than" in err
    code, _, err = run_cli(
        capsys, "--world", seeded.url, "gc", "--older-than", "1d", "--status", "running"
    )
    assert code == 2 and "not an ended status" in err
    code, _, err = run_cli(capsys, "--world", seeded.url, "gc", "--older-than", "1d", "--pace", "0")
    assert code == 2 and "--pace" in err


def test_fork_and_diverged_runs(capsys: pytest.CaptureFixture[str], seeded: Seeded) -> None:
    runs = cli_json(capsys, seeded, "inspect", "runs", "--status", "completed")["runs"]
    source = runs[0]["run_id"]
    fork = cli_json(capsys, seeded, "fork", source, "--from-step", "0")
    assert fork["forked_from"] == source and fork["status"] == "pending"
    shown = cli_json(capsys, seeded, "inspect", "run", source)
    assert shown["forks"] == [fork["run_id"]]
    code, _, err = run_cli(capsys, "--world", seeded.url, "fork", source, "--from-step", "99")
    assert code == 2 and "cannot keep the first 99" in err
    assert cli_json(capsys, seeded, "inspect", "runs", "--diverged")["runs"] == []


def test_a_parked_run_is_listed_shown_and_cancelled(
    capsys: pytest.CaptureFixture[str], seeded: Seeded
) -> None:
    """``inspect runs --diverged`` finds a parked run, ``inspect run`` shows where its code
    stopped matching and the code version it started under, ``cancel`` ends it."""
    park_a_run(seeded.url, "parked-cli")
    listed = cli_json(capsys, seeded, "inspect", "runs", "--diverged")["runs"]
    assert [r["run_id"] for r in listed] == ["parked-cli"]
    assert listed[0]["status"] == "running" and listed[0]["code_version"] == "deploy-7"
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "runs", "--diverged")
    assert code == 0 and "parked-cli" in out and seeded.completed not in out
    shown = cli_json(capsys, seeded, "inspect", "run", "parked-cli")
    assert shown["diverged"]["position"] == 2 and shown["diverged"]["version"] == "deploy-8"
    assert shown["diverged"]["expected"] == "step 'a'" and shown["diverged"]["actual"] == "step 'b'"
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "run", "parked-cli")
    assert re.search(r"code version:\s+deploy-7", out) and "operation #2" in out
    # A run the seeding ran records the digest of its workflow's source.
    done = cli_json(capsys, seeded, "inspect", "run", seeded.completed)
    assert re.fullmatch(r"src-[0-9a-f]{12}", done["code_version"])
    code, out, _ = run_cli(capsys, "--world", seeded.url, "inspect", "run", seeded.completed)
    assert done["code_version"] in out
    code, _, err = run_cli(capsys, "--world", seeded.url, "cancel", "parked-cli")
    assert code == 0, err
    assert cli_json(capsys, seeded, "inspect", "run", "parked-cli")["status"] == "cancelled"
    assert cli_json(capsys, seeded, "inspect", "runs", "--diverged")["runs"] == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["inspect", "runs", "--status", "bogus"], "workflowkit inspect runs: argument --status"),
        (["health", "--timeout", "0"], "workflowkit health: argument --timeout: expected a number"),
        (["worker", "--grace", "-1", "m"], "workflowkit worker: argument --grace: expected"),
        (["inspect"], "workflowkit inspect: the following arguments are required"),
    ],
)
def test_a_usage_error_is_one_line_that_says_where_help_is(
    capsys: pytest.CaptureFixture[str], seeded: Seeded, argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--world", seeded.url, *argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.startswith(says) and err.count("\n") == 1, err
    assert err.rstrip().endswith(f"(see {' '.join(says.split(':')[0].split())} --help)")
