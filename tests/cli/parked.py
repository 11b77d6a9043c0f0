"""A run parked because its code diverged, written straight into a World for the CLI tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from workflowkit.worlds import open_world
from workflowkit.worlds.records import Divergence, EventType, NewEvent, WorkerInfo


def park_a_run(url: str, run_id: str) -> None:
    """A run of a workflow no worker has, started under code version ``deploy-7``, claimed,
    then parked by ``deploy-8`` (its code no longer replayed the log)."""

    async def park() -> None:
        world = open_world(url)
        try:
            await world.create_run(run_id, "nobody.has.this", b"", {})
            started = NewEvent(EventType.RUN_STARTED, None, None, {"version": "deploy-7"})
            await world.append(run_id, [started])
            me = WorkerInfo("wrkr_cli", "h", 1, ("nobody.has.this",))
            await world.claim_runs(me, ["nobody.has.this"], limit=10, lease_seconds=30)
            found = Divergence(2, "step 'a'", "step 'b'", "changed", "deploy-8", datetime.now(UTC))
            assert await world.park_run(run_id, "wrkr_cli", found)
        finally:
            await world.close()

    asyncio.run(park())
