"""Routing: a worker claims only runs of workflows it has registered, so workers (and
scripts) serving different workflows from one World never fail each other's runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_procs import HERE, kill_all, spawn, stop

import workflowkit
from workflowkit.api import get_run, start


@pytest.fixture
def on_path() -> Iterator[None]:
    sys.path.insert(0, str(HERE))
    yield
    workflowkit.shutdown()
    sys.path.remove(str(HERE))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_workers_of_different_modules_each_run_their_own(
    on_path: None, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import flows_a
    import flows_b

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'wk.db'}"
    else:
        url = f"{request.getfixturevalue('pg_url')}?schema={request.getfixturevalue('pg_schema')}"
    workflowkit.configure(url, embedded_worker=False)
    workers = [
        spawn(url, ["flows_a"], tmp_path / "a.log"),
        spawn(url, ["flows_b"], tmp_path / "b.log"),
    ]
    try:
        b_runs = [await start(flows_b.b_wf, i) for i in range(6)]
        a_runs = [await start(flows_a.a_wf, i) for i in range(6)]
        assert [await r.return_value(timeout=30) for r in b_runs] == [i * 2 for i in range(6)]
        assert [await r.return_value(timeout=30) for r in a_runs] == [i + 1 for i in range(6)]
        stop(workers)
    finally:
        kill_all(workers)
    logs = "".join(w.text() for w in workers)
    assert "NotRegistered" not in logs, logs


SLEEPER = """
import asyncio, sys
import workflowkit
from workflowkit import sleep, workflow
from workflowkit.api import get_run, start

@workflow
async def naps() -> str:
    await sleep("1 day")
    return "rested"

async def main() -> None:
    workflowkit.configure(sys.argv[1])
    run = await start(naps)
    while await run.status() != "running":
        await asyncio.sleep(0.05)
    print(run.run_id)

asyncio.run(main())
"""

QUICK = """
import asyncio, sys
import workflowkit
from workflowkit import workflow
from workflowkit.api import start

@workflow
async def quick() -> str:
    return "quick"

async def main() -> None:
    workflowkit.configure(sys.argv[1], poll_interval=0.1)
    run = await start(quick)
    print(await run.return_value(timeout=20))
    await asyncio.sleep(1.0)  # time enough to claim anything else that is due

asyncio.run(main())
"""


def run_script(path: Path, source: str, url: str) -> str:
    path.write_text(textwrap.dedent(source))
    done = subprocess.run(
        [sys.executable, str(path), url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
async def test_two_scripts_sharing_a_database_leave_each_others_runs_alone(
    on_path: None, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # The first script's run sleeps for a day; on exit the script hands it back, due at once.
    run_id = run_script(tmp_path / "first.py", SLEEPER, url)
    # The second script's embedded worker serves only its own __main__:quick.
    assert run_script(tmp_path / "second.py", QUICK, url) == "quick"
    workflowkit.configure(url, embedded_worker=False)
    assert await get_run(run_id).status() in {"pending", "running"}
