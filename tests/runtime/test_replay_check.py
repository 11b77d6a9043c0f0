"""``workflowkit replay`` and ``workflowkit.testing.replay_runs``: recorded runs checked
against changed code, with nothing written."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import workflowkit
from workflowkit.api import start
from workflowkit.testing import replay_runs, wait_for_hook

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def dump(path: Path) -> list[tuple[object, ...]]:
    """Every row of every table: what "nothing was written" compares."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [(t, *row) for t in sorted(tables) for row in conn.execute(f"SELECT * FROM {t}")]


def replay(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``workflowkit replay`` in a process of its own: each version of the code registers
    the same workflow names."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    return subprocess.run(
        [sys.executable, "-m", "workflowkit", "--world", url, "replay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def replay_cli(url: str, *args: str) -> tuple[int, dict[str, object]]:
    proc = replay(url, *args, "--json")
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.slow
async def test_replay_passes_unchanged_code_and_names_the_runs_that_diverge(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(HERE))
    import replay_app_v1

    recorded = tmp_path / "wk.db"
    url = f"sqlite:///{recorded}"
    workflowkit.configure(url)
    try:
        runs = [await start(replay_app_v1.flow.options(run_id=f"r-{n}"), n) for n in range(200)]
        for run in runs:
            await run.return_value(timeout=60)
    finally:
        workflowkit.shutdown()
        sys.path.remove(str(HERE))
    before = dump(recorded)
    code, unchanged = replay_cli(url, "replay_app_v1")
    assert code == 0 and unchanged["ok"] is True and len(unchanged["runs"]) == 200  # type: ignore[arg-type]
    code, changed = replay_cli(url, "replay_app_v2")
    assert code == 1 and changed["ok"] is False
    diverged = {r["run_id"] for r in changed["runs"] if r["diverged"]}  # type: ignore[union-attr, index]
    assert diverged == {f"r-{n}" for n in range(1, 200, 2)}
    assert dump(recorded) == before  # nothing was written


async def test_replay_runs_from_pytest(
    workflow_runtime: workflowkit.runtime.runtime.Runtime, tmp_path: Path
) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import replay_app_v1

        run = await start(replay_app_v1.flow, 3)
        assert await run.return_value(timeout=20) == 9
        url = f"sqlite:///{tmp_path / 'workflowkit.db'}"  # the plugin's World
        report = await replay_runs(url, workflow="replay.flow")
    finally:
        sys.path.remove(str(HERE))
    assert report.ok and [r.run_id for r in report.runs] == [run.run_id]


async def test_replay_chooses_runs_by_workflow_status_and_limit(tmp_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    import replay_app_v1
    import replay_app_waits

    recorded = tmp_path / "wk.db"
    url = f"sqlite:///{recorded}"
    workflowkit.configure(url, poll_interval=0.05)
    try:
        for n in range(4):  # r-1 and r-3 take the steps in the other order under v2
            run = await start(replay_app_v1.flow.options(run_id=f"r-{n}"), n)
            await run.return_value(timeout=20)
        going = await start(replay_app_waits.waits.options(run_id="w-1"), "tok-w-1")
        await wait_for_hook(going, "tok-w-1")  # still running when the check replays it
    finally:
        workflowkit.shutdown()
        sys.path.remove(str(HERE))
    before = dump(recorded)
    both = ("replay_app_v2", "replay_app_waits")

    text = replay(url, *both)
    assert text.returncode == 1, text.stderr
    assert text.stdout.startswith("replayed 5 run(s): 2 diverged")
    named = {line.split()[0] for line in text.stdout.splitlines()[1:] if line.startswith("  ")}
    assert named == {"r-1", "r-3"} and "(replay.flow, completed)" in text.stdout
    first = "  r-1 (replay.flow, completed): operation #1: the event log has step 'replay.first'"
    assert first in text.stdout  # the run id once, then where it stopped matching

    code, report = replay_cli(url, *both, "--workflow", "replay.waits")
    assert code == 0 and report["ok"] is True
    assert [(r["run_id"], r["status"]) for r in report["runs"]] == [("w-1", "running")]  # type: ignore[attr-defined]

    code, report = replay_cli(url, *both, "--status", "running")
    assert code == 0 and [r["run_id"] for r in report["runs"]] == ["w-1"]  # type: ignore[attr-defined]

    code, report = replay_cli(url, *both, "--status", "completed,failed", "--limit", "2")
    assert code == 1 and [r["run_id"] for r in report["runs"]] == ["r-3", "r-2"]  # type: ignore[attr-defined]

    alone = replay(url, "replay_app_v1")  # replay.waits is not in this code: skipped
    assert alone.returncode == 0, alone.stderr
    assert "replayed 4 run(s): 0 diverged" in alone.stdout
    assert "skipped 1 run(s)" in alone.stdout

    for wrong in (("--status", "asleep"), ("--limit", "0")):
        refused = replay(url, *both, *wrong)
        assert refused.returncode == 2 and wrong[0] in refused.stderr
    assert dump(recorded) == before  # nothing was written by any of them


async def test_replaying_a_workflow_the_code_does_not_define_is_refused(tmp_path: Path) -> None:
    # A misspelt --workflow, or a module not passed, would skip every run: a check before a
    # deploy that checked nothing must not pass.
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    with pytest.raises(workflowkit.WorkflowNotRegisteredError, match=r"replay\.flwo"):
        await replay_runs(url, workflow="replay.flwo")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflowkit",
            "replay",
            "--world",
            url,
            "--workflow",
            "nope.x",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "nope.x" in done.stderr and "Traceback" not in done.stderr
