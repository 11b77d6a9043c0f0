"""The World contract for runs parked because their code diverged (issue 20): every
backend, encrypted or not, parks, lists, resumes and ends them alike."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from workflowkit.ids import new_id
from workflowkit.worlds.base import World
from workflowkit.worlds.records import Divergence, EventType, NewEvent, RunStatus, WorkerInfo

FLOW = "park.flow"
OTHER = "park.other"


def a_worker() -> WorkerInfo:
    return WorkerInfo(new_id("wrkr"), socket.gethostname(), os.getpid(), (FLOW, OTHER))


async def parked_run(world: World, me: WorkerInfo, found_by: str, flow: str = FLOW) -> str:
    """A run started under code v1, claimed by ``me``, then parked by code ``found_by``."""
    run_id = new_id("wrun")
    await world.create_run(run_id, flow, b"input", {"name": flow})
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED, None, None, {"version": "v1"})])
    claimed = await world.claim_runs(me, [flow], limit=10, lease_seconds=30)
    assert run_id in [r.run_id for r in claimed]
    found = Divergence(3, "step 'a'", "step 'b'", "changed", found_by, datetime.now(UTC))
    assert not await world.park_run(run_id, "wrkr_someone_else", found)  # not its owner
    assert await world.park_run(run_id, me.worker_id, found)
    return run_id


async def test_a_parked_run_waits_for_other_code(world: World) -> None:
    me = a_worker()
    await world.register_worker(me)
    run_id = await parked_run(world, me, "v1")
    record = await world.get_run(run_id)
    assert record is not None and record.status is RunStatus.RUNNING and record.owner is None
    assert record.code_version == "v1" and record.parked
    assert record.diverged is not None
    assert (record.diverged.position, record.diverged.expected, record.diverged.actual) == (
        3,
        "step 'a'",
        "step 'b'",
    )
    assert record.diverged.version == "v1"
    assert await world.claim_runs(me, [FLOW], limit=10, lease_seconds=30) == []
    assert [r.run_id for r in await world.list_runs(diverged=True)] == [run_id]
    assert run_id not in [r.run_id for r in await world.list_runs(diverged=False)]
    # The code that parked it, or another workflow's, does not make it due again.
    assert await world.resume_diverged({FLOW: "v1"}) == []
    assert await world.resume_diverged({"other.flow": "v2"}) == []
    assert await world.resume_diverged({FLOW: "v2"}) == [run_id]
    resumed = await world.get_run(run_id)
    assert resumed is not None and resumed.diverged is None and not resumed.parked
    assert [r.run_id for r in await world.claim_runs(me, [FLOW], limit=10, lease_seconds=30)] == [
        run_id
    ]


async def test_a_run_cancelled_while_parked_is_parked_no_more(world: World) -> None:
    me = a_worker()
    await world.register_worker(me)
    run_id = await parked_run(world, me, "v2")
    await world.append(run_id, [NewEvent(EventType.RUN_CANCELLED)])
    record = await world.get_run(run_id)
    assert record is not None and record.status is RunStatus.CANCELLED
    assert record.diverged is not None and not record.parked  # the mark stays, as history
    assert await world.list_runs(diverged=True) == []
    assert [r.run_id for r in await world.list_runs(diverged=False)] == [run_id]
    assert await world.resume_diverged({FLOW: "v3"}) == []  # an ended run stays ended


async def test_one_call_resumes_the_parked_runs_of_several_workflows(world: World) -> None:
    """A worker asks for every workflow it has at once, each with its own code version:
    only the runs parked by another version than the asker's for their workflow resume."""
    me = a_worker()
    await world.register_worker(me)
    flow_run = await parked_run(world, me, "v1")
    other_run = await parked_run(world, me, "w1", flow=OTHER)
    assert await world.resume_diverged({}) == []
    assert await world.resume_diverged({FLOW: "v1", OTHER: "w1"}) == []
    assert await world.resume_diverged({FLOW: "v1", OTHER: "w2"}) == [other_run]
    assert [r.run_id for r in await world.list_runs(diverged=True)] == [flow_run]
    assert await world.resume_diverged({FLOW: "v2", OTHER: "w2"}) == [flow_run]
    claimed = await world.claim_runs(me, [FLOW, OTHER], limit=10, lease_seconds=30)
    assert {r.run_id for r in claimed} == {flow_run, other_run}
