"""Many processes start the same run ids at the same moment: each id is one run, started
(and its step run) once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workflowkit.worlds import open_world
from workflowkit.worlds.records import EventType, RunStatus

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
PROCESSES, IDS = 8, 200


def race(url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "start_race.py"), url, str(IDS), str(go)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode(errors="replace")


async def check(url: str) -> None:
    world = open_world(url)
    try:
        runs = await world.list_runs(workflow_name="race.flow", limit=1000)
        assert sorted(r.run_id for r in runs) == sorted(f"race-{n}" for n in range(IDS))
        assert all(r.status is RunStatus.COMPLETED for r in runs)
        for run in runs:
            kinds = [e.type for e in await world.get_events(run.run_id)]
            assert kinds.count(EventType.RUN_CREATED) == 1, run.run_id
            assert kinds.count(EventType.RUN_STARTED) == 1, run.run_id
            assert kinds.count(EventType.STEP_COMPLETED) == 1, run.run_id
    finally:
        await world.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_processes_racing_to_start_the_same_ids(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'race.db'}"
    else:
        url = f"{request.getfixturevalue('pg_url')}?schema={request.getfixturevalue('pg_schema')}"
    race(url, tmp_path)
    await check(url)
