"""A SQLite World seeded by really running workflows, copied fresh for every test.

Seeding happens once per session (a few hundred milliseconds); each test gets its own copy
of the files, so commands that change runs do not disturb other tests.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cli_workflows as wf
import pytest

import workflowkit
from workflowkit.api import start
from workflowkit.runtime.runtime import get_runtime
from workflowkit.worlds.base import World
from workflowkit.worlds.records import EventType


@dataclass(frozen=True)
class Seeded:
    url: str
    path: Path
    completed: str
    failed: str
    sleeping: str
    waiting: str  # on the hook "approval:d-1"


async def _until_event(world: World, run_id: str, kind: EventType) -> None:
    for _ in range(500):
        if any(e.type is kind for e in await world.get_events(run_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} in {run_id}")


async def _seed() -> tuple[str, str, str, str]:
    completed = await start(wf.greet, "ada")
    assert await completed.return_value(timeout=10) == "HELLO ADA"
    failed = await start(wf.fail, "bob")
    with pytest.raises(workflowkit.WorkflowRunFailedError):
        await failed.return_value(timeout=10)
    world = get_runtime().world
    sleeping = await start(wf.nap, "cy")
    # Ids made in the same millisecond sort at random: start the next run only once this
    # one is under way, so the tests can rely on the newest-first order.
    await _until_event(world, sleeping.run_id, EventType.WAIT_CREATED)
    waiting = await start(wf.approve, "d-1")
    await _until_event(world, waiting.run_id, EventType.HOOK_CREATED)
    return completed.run_id, failed.run_id, sleeping.run_id, waiting.run_id


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    folder = tmp_path_factory.mktemp("seed")
    workflowkit.configure(f"sqlite:///{folder / 'wk.db'}", poll_interval=0.05)
    try:
        ids = asyncio.run(_seed())
    finally:
        workflowkit.shutdown()
    return folder, ids


@pytest.fixture
def seeded(seeded_template: tuple[Path, tuple[str, ...]], tmp_path: Path) -> Iterator[Seeded]:
    folder, ids = seeded_template
    for file in folder.glob("wk.db*"):
        shutil.copy(file, tmp_path / file.name)
    path = tmp_path / "wk.db"
    yield Seeded(f"sqlite:///{path}", path, *ids)
    workflowkit.shutdown()


@pytest.fixture(autouse=True)
def _no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are cut to ``$COLUMNS`` when it is set (pytest-xdist workers have it): the
    tests read whole cells, as a pipe gets them, unless they set a width themselves."""
    monkeypatch.delenv("COLUMNS", raising=False)
