"""``workflowkit schedules``: see, create and operate schedules from a terminal."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from workflowkit import workflow
from workflowkit._schedule_ops import create
from workflowkit.cli.main import main
from workflowkit.worlds.sqlite import SQLiteWorld


@workflow(name="cli.sched.report")
async def report(scheduled_at: datetime, team: str) -> str:
    return f"{team}@{scheduled_at.isoformat()}"


@pytest.fixture
def url(tmp_path: Path) -> str:
    async def seed() -> None:
        world = SQLiteWorld(tmp_path / "wk.db")
        try:
            await create(world, "nightly", report.name, cron="0 2 * * *", args=["ops"],
                         timezone="Europe/Berlin")  # fmt: skip
            await create(world, "weekly", report.name, cron="@weekly", args=["dev"])
        finally:
            await world.close()

    asyncio.run(seed())
    return f"sqlite:///{tmp_path / 'wk.db'}"


def cli(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = main(["--world", url, "--no-color", "schedules", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> Any:
    code, out, err = cli(capsys, url, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_list_shows_each_schedule_and_its_next_tick(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, out, _ = cli(capsys, url, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["SCHEDULE", "WORKFLOW", "CRON"]
    assert rows[0].startswith("nightly") and "0 2 * * * (Europe/Berlin)" in rows[0]
    assert "active" in rows[0] and "in " in rows[0]
    data = cli_json(capsys, url, "list")
    assert [s["schedule_id"] for s in data] == ["nightly", "weekly"]
    nightly = data[0]
    assert nightly["workflow_name"] == "cli.sched.report" and nightly["paused"] is False
    assert nightly["input"] == [["ops"], {}] and nightly["next_tick"].endswith("+00:00")
    assert nightly["catch_up"] == "none" and nightly["overlap"] == "skip"


def test_pause_resume_trigger_show_delete(capsys: pytest.CaptureFixture[str], url: str) -> None:
    assert cli_json(capsys, url, "pause", "nightly")["paused"] is True
    code, out, _ = cli(capsys, url, "list")
    assert "paused" in out.splitlines()[1]
    assert cli_json(capsys, url, "resume", "nightly")["paused"] is False
    run = cli_json(capsys, url, "trigger", "nightly")
    assert run["run_id"].startswith("nightly@manual-") and run["status"] == "pending"
    shown = cli_json(capsys, url, "show", "nightly")
    assert [r["run_id"] for r in shown["recent_runs"]] == [run["run_id"]]
    code, out, _ = cli(capsys, url, "show", "nightly")
    assert code == 0 and "Europe/Berlin" in out and run["run_id"] in out
    # The run says which schedule and tick it ran for.
    code = main(["--world", url, "inspect", "run", run["run_id"], "--json"])
    details = json.loads(capsys.readouterr().out)
    assert details["schedule_id"] == "nightly" and details["scheduled_at"].startswith("20")
    main(["--world", url, "--no-color", "inspect", "run", run["run_id"]])
    assert "schedule:" in capsys.readouterr().out
    assert cli_json(capsys, url, "delete", "nightly", "--yes") == {"deleted": "nightly"}
    code, _, err = cli(capsys, url, "show", "nightly")
    assert code == 1 and "no schedule with id 'nightly'" in err and "#schedule-not-found" in err


def test_create_makes_a_schedule_a_worker_fires(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """A schedule created from a terminal, by the workflow's durable name, starts runs in
    a process that has the workflow, with the tick's time and the arguments given."""
    code, out, err = cli(capsys, url, "create", "every-second", "cli.sched.report",
                         "--cron", "* * * * * *", "--args", '["ops"]', "--overlap", "allow",
                         "--end-at", "2099-01-01T00:00:00", "--json")  # fmt: skip
    assert code == 0 and "no live worker has registered workflow 'cli.sched.report'" in err
    created = json.loads(out)
    assert created["schedule_id"] == "every-second" and created["input"] == [["ops"], {}]
    assert created["overlap"] == "allow" and created["end_at"].startswith("2099-01-01T00:00:00")
    code, out, _ = cli(capsys, url, "list")
    assert code == 0
    assert "every-second" in out and "cli.sched.report" in out
    assert fired(url, "every-second@").startswith("ops@")


def fired(url: str, prefix: str) -> str:
    """The output of the first run of the schedule, run by an embedded worker here."""
    import workflowkit
    from workflowkit.api import get_run

    runtime = workflowkit.configure(url, poll_interval=0.2)

    async def first() -> str:
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline:
            runs = await runtime.world.list_runs(id_prefix=prefix, limit=1)
            if runs:
                return str(await get_run(runs[0].run_id).return_value(timeout=20))
            await asyncio.sleep(0.1)
        raise AssertionError(f"no run of {prefix!r} started within 20 s")

    try:
        return asyncio.run(first())
    finally:
        workflowkit.shutdown()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["nightly", "cli.sched.report", "--cron", "@daily"], 1, "exists already"),
        (["x", "cli.sched.report", "--cron", "61 * * * *"], 1, "invalid cron expression"),
        (["x", "cli.sched.report", "--cron", "@daily", "--timezone", "Mars/Base"], 1,
         "unknown time zone"),
        (["x", "cli.sched.report", "--cron", "@daily", "--args", "{}"], 2,
         "--args must be a JSON array"),
        (["x", "cli.sched.report", "--cron", "@daily", "--start-at", "2030-01-02",
          "--end-at", "2030-01-01"], 1, "end_at must be after start_at"),
        (["x", "cli.sched.report", "--cron", "@daily", "--start-at", "soon"], 2,
         "invalid ISO datetime"),
    ],
)  # fmt: skip
def test_create_refuses_bad_input_saying_what_to_fix(
    capsys: pytest.CaptureFixture[str], url: str, argv: list[str], code: int, message: str
) -> None:
    try:
        got = main(["--world", url, "--no-color", "schedules", "create", *argv])
    except SystemExit as exc:  # argparse refused a value
        got = exc.code
    err = capsys.readouterr().err
    assert got == code and message in err and "Traceback" not in err
    assert [s["schedule_id"] for s in cli_json(capsys, url, "list")] == ["nightly", "weekly"]
