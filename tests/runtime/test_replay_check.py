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
from workflowkit.testing import replay_runs

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def dump(path: Path) -> list[tuple[object, ...]]:
    """Every row of every table: what "nothing was written" compares."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [(t, *row) for t in sorted(tables) for row in conn.execute(f"SELECT * FROM {t}")]


def replay_cli(url: str, module: str) -> tuple[int, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    proc = subprocess.run(
        [sys.executable, "-m", "workflowkit", "--world", url, "replay", module, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
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
