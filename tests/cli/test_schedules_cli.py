"""``workflowkit schedules``: list, show, pause, resume, trigger and delete from a terminal."""

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
            await create(world, "nightly", report, cron="0 2 * * *", args=["ops"],
                         timezone="Europe/Berlin")  # fmt: skip
            await create(world, "weekly", report, cron="@weekly", args=["dev"])
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
