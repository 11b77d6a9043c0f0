"""A SQLite World seeded by really running workflows, and a real server for the dashboard.

Seeding happens once per session; each test (or browser module) gets its own copy of the
files, so actions taken from the dashboard do not disturb other tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import web_workflows as wf

import workflowkit
from workflowkit.api import start
from workflowkit.runtime.runtime import get_runtime
from workflowkit.worlds.base import World
from workflowkit.worlds.records import EventType


@dataclass(frozen=True)
class Seeded:
    url: str
    path: Path
    order: str  # completed; its charge step took three attempts
    hostile: str  # completed with the output "<script>alert(1)</script>"
    failed: str
    sleeping: str  # on a 1-hour sleep
    waiting: str  # on the hook "approval:d-1"


async def until_event(world: World, run_id: str, kind: EventType) -> None:
    for _ in range(500):
        if any(e.type is kind for e in await world.get_events(run_id)):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind} in {run_id}")


async def seed() -> tuple[str, ...]:
    ids = []
    for workflow, arg in ((wf.order, "book"), (wf.hostile, wf.HOSTILE), (wf.fail, "bob")):
        run = await start(workflow, arg)  # one at a time: the list's order is then known
        with contextlib.suppress(workflowkit.WorkflowRunFailedError):
            await run.return_value(timeout=10)
        ids.append(run.run_id)
    sleeping = await start(wf.nap, "cy")
    await until_event(get_runtime().world, sleeping.run_id, EventType.WAIT_CREATED)
    waiting = await start(wf.approve, "d-1")
    await until_event(get_runtime().world, waiting.run_id, EventType.HOOK_CREATED)
    return (*ids, sleeping.run_id, waiting.run_id)


def copy_seed(template: tuple[Path, tuple[str, ...]], into: Path) -> Seeded:
    folder, ids = template
    for file in folder.glob("wk.db*"):
        shutil.copy(file, into / file.name)
    path = into / "wk.db"
    return Seeded(f"sqlite:///{path}", path, *ids)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
