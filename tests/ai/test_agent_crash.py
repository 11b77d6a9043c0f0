"""kill -9 in the middle of an agent run: the run resumes at the request it was in, and the
model is never asked again for the requests whose responses were recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import workflowkit
from workflowkit.api import get_run

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"

STARTER = """
import asyncio, sys
sys.path.insert(0, {here!r})
import workflowkit, ai_agents
from workflowkit.api import start

workflowkit.configure({url!r})

async def main():
    run = await start(ai_agents.crash_run, "go")
    print(run.run_id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def requests_made(directory: Path, messages: int) -> int:
    """Real model requests that saw ``messages`` messages (1, 3, 5: the first, second, third)."""
    return len(list(directory.glob(f"request.{messages}.*")))


@pytest.fixture
def crash_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("WK_AI_CRASH_DIR", str(tmp_path))
    yield tmp_path
    workflowkit.shutdown()


@pytest.mark.slow
async def test_killed_at_the_third_request_resumes_there(crash_dir: Path) -> None:
    url = f"sqlite:///{crash_dir / 'wk.db'}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        # A killed worker's runs are taken when its leases run out (no pid is asked).
        "WORKFLOWKIT_LEASE_SECONDS": "2",
    }
    code = STARTER.format(here=str(HERE), url=url)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while not (crash_dir / "at-third-request").exists():
            assert time.monotonic() < deadline, "the run never reached its third model request"
            assert proc.poll() is None, "the starter process died on its own"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (crash_dir / "killed").write_text("x")
    assert [requests_made(crash_dir, n) for n in (1, 3, 5)] == [1, 1, 1]

    import ai_agents  # noqa: F401  - registers the workflow and the agent's steps here

    workflowkit.configure(url)
    assert await get_run(run_id).return_value(timeout=30) == "done after three requests"
    # Two responses were recorded before the kill: only the third request ran again.
    assert [requests_made(crash_dir, n) for n in (1, 3, 5)] == [1, 1, 2]
