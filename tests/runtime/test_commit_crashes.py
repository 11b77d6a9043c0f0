"""A worker killed just before, or just after, each kind of SQLite commit; another worker
finishes the run. Nothing is lost or recorded twice, and a step body runs a second time only
when the kill came after it finished and before its result was committed.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_worker import CRASHED_EXIT
from pg_procs import HERE, kill_all, spawn, stop

import workflowkit
from workflowkit.api import start
from workflowkit.worlds.records import EventType
from workflowkit.worlds.sqlite import SQLiteWorld

# The World method or appended event type of the commit the worker dies at; which one of
# its kind; and whether that commit also carries a finished step's result (a run's next
# events go in one commit with the result that led to them). ``chaos_app.flow`` runs its
# steps one after another on the run's owner.
COMMITS = [
    ("claim_runs", 1, False),
    ("run_started", 1, False),
    ("step_started", 1, False),
    ("step_started", 2, True),
    ("step_completed", 2, True),
    ("wait_created", 1, True),
    ("wait_completed", 1, False),
    ("run_completed", 1, True),
]
# ``chaos_app.fan`` with one step slot: its second step goes through the World's step queue.
QUEUE_COMMITS = [
    ("queue_steps", 1, False),
    ("claim_steps", 1, False),
    ("finish_step", 1, True),
]


@pytest.fixture
def app() -> Iterator[object]:
    sys.path.insert(0, str(HERE))
    try:
        import chaos_app

        yield chaos_app
    finally:
        workflowkit.shutdown()
        sys.path.remove(str(HERE))


def pids_of_bodies(directory: Path) -> dict[str, list[int]]:
    """Step (run key and index) -> the pids that finished its body, in order."""
    import chaos_app

    return {
        step: [pid for pid, _ in runs]
        for step, runs in chaos_app.finished_bodies(directory).items()
    }


@pytest.mark.slow
@pytest.mark.chaos  # the commit-point half of the chaos suite: `pytest -m chaos` runs both
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(
    ("kind", "nth", "with_result", "flow"),
    [(*commit, "flow") for commit in COMMITS] + [(*commit, "fan") for commit in QUEUE_COMMITS],
)
async def test_a_worker_killed_at_a_commit_loses_nothing(
    app: object, tmp_path: Path, kind: str, nth: int, with_result: bool, flow: str, when: str
) -> None:
    import chaos_app

    steps, expected = (
        (chaos_app.STEPS, chaos_app.EXPECTED)
        if flow == "flow"
        else (chaos_app.FAN_STEPS, chaos_app.FAN_EXPECTED)
    )
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url, embedded_worker=False)
    work = tmp_path / "work"
    work.mkdir()
    run = await start(getattr(chaos_app, flow), str(work), "r")
    crashing = spawn(
        url,
        ["chaos_app"],
        tmp_path / "crashing.log",
        lease=2,  # its runs are taken when its leases run out: no pid is asked
        chaos={"CHAOS_CRASH_AT": f"{kind}:{when}:{nth}", "WORKFLOWKIT_STEP_SLOTS": "1"},
        wait=False,
    )
    workers = [crashing]
    try:
        assert crashing.proc.wait(60) == CRASHED_EXIT, crashing.text()
        workers.append(spawn(url, ["chaos_app"], tmp_path / "after.log"))
        assert await run.return_value(timeout=60) == expected
        stop(workers)
    finally:
        kill_all(workers)

    world = SQLiteWorld(tmp_path / "wk.db")
    try:
        events = await world.get_events(run.run_id)
    finally:
        await world.close()
    completions = Counter(e.correlation_id for e in events if e.type is EventType.STEP_COMPLETED)
    assert set(completions.values()) == {1} and len(completions) == steps
    assert sum(e.type is EventType.RUN_COMPLETED for e in events) == 1
    for step, pids in pids_of_bodies(work).items():
        # A body finishes twice only if the first was the killed worker's, its result lost
        # with it: the kill fell between the body's end and its result's commit.
        assert len(pids) == 1 or (pids[0] == crashing.proc.pid and len(pids) == 2), (step, pids)
    again = [step for step, pids in pids_of_bodies(work).items() if len(pids) > 1]
    assert len(again) == (1 if with_result and when == "before" else 0), again
