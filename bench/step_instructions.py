"""The cost of one step on SQLite, in instructions: a figure load does not move.

    python bench/step_instructions.py                  # about 2 minutes (valgrind)
    PYTHONPATH=/tmp/old/src python bench/step_instructions.py   # an older checkout
    python bench/step_instructions.py --profile DIR    # keep the dumps for callgrind_annotate

One process, one fresh SQLite World, an embedded worker: a chain of ``SHORT`` steps, then
one of ``LONG`` steps (the ``async def`` steps of bench/core_bench.py's case (b)), start ->
result each. Under valgrind's callgrind, which counts the instructions of every thread;
each phase ends with a call to ``os.getppid``, before which callgrind writes what it counted
so far (as bench/ai_instructions.py does). ``(I_LONG - I_SHORT) / (LONG - SHORT)`` is one
step without the run's start and end.

Work done on a timer is held off, since its count grows with the wall time, and so with the
machine's load (under valgrind a phase takes 20-40 s): the WAL checkpointer (a thread copying
the WAL back into the database file every second; SQLite's own auto-checkpoint is off in
every version measured, the writer sets ``wal_autocheckpoint = 0``), the writer's look for
other processes' commits (every 10 ms), the worker's poll for due runs (every second) and
its lease renewals. With them on, the same code measured 850k-970k a step as the load moved.
The count misses time in the kernel (fsync, thread wake-ups). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SHORT = 300
LONG = 1300
HOUR = 3600.0  # the timers held off (see above)


def child(world_only: bool) -> None:
    # Only names every version since 8d89398 has, so an older checkout runs it too.
    import workflowkit
    from workflowkit import step, workflow
    from workflowkit.api import start
    from workflowkit.worlds.sqlite import SQLiteWorld

    @step(name="bench.add_one")
    async def add_one(x: int) -> int:
        return x + 1

    @workflow(name="bench.chain")
    async def chain(n: int) -> int:
        value = 0
        for _ in range(n):
            value = await add_one(value)
        return value

    async def run(n: int) -> None:
        result = await (await start(chain, n)).return_value(timeout=3600)
        assert result == n, result

    async def phases(directory: Path) -> None:
        world = SQLiteWorld(directory / "wk.db", poll_interval=HOUR, checkpoint_interval=HOUR)
        if world_only:
            await world_phases(world)
            return
        workflowkit.configure(world, poll_interval=HOUR, lease_seconds=HOUR)
        await run(20)  # warm up: imports, first-use costs, prepared statements
        os.getppid()  # 1: start-up
        await run(SHORT)
        os.getppid()  # 2
        await run(LONG)
        os.getppid()  # 3

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(phases(Path(tmp)))
        workflowkit.shutdown()


async def world_phases(world: Any) -> None:
    """``--world``: the World's share alone, the appends a chained step makes (its
    predecessor's result, its creation and start) on one run, no workflow, no step body."""
    from workflowkit.ids import new_id

    try:
        from workflowkit.worlds.records import EventType, NewEvent, WorkerInfo
    except ImportError:  # before the storage redesign (8d89398)
        from workflowkit.worlds.base import EventType, NewEvent, WorkerInfo  # type: ignore

    me = WorkerInfo(new_id("wrkr"), "bench", os.getpid())
    run_id = new_id("wrun")
    await world.create_run(run_id, "bench.world_only", b"", {})
    await world.register_worker(me)
    await world.claim_runs(me, ["bench.world_only"], limit=1, lease_seconds=3600)
    await world.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=me.worker_id)
    created = {"name": "bench.add_one", "digest": "0123456789abcdef"}
    previous: list[str | None] = [None]

    async def steps(n: int) -> None:
        for _ in range(n):
            step_id = new_id("step")
            events = [
                NewEvent(EventType.STEP_CREATED, step_id, b"\x01" * 16, created),
                NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}),
            ]
            if previous[0] is not None:
                events.insert(0, NewEvent(EventType.STEP_COMPLETED, previous[0], b"\x01" * 8))
            result = await world.append(run_id, events, owner=me.worker_id)
            assert not result.rejected, result.rejected
            previous[0] = step_id

    await steps(20)
    os.getppid()  # 1
    await steps(SHORT)
    os.getppid()  # 2
    await steps(LONG)
    os.getppid()  # 3
    await world.close()


def total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no total in {dump}")


def measure(keep: Path | None, world_only: bool) -> list[int]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        where = keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        out = where / "cg"
        command = [
            valgrind,
            "--tool=callgrind",
            "--dump-instr=no",
            "--dump-before=os_getppid",  # CPython's C function behind os.getppid()
            "--compress-strings=no",  # each dump names its functions (callgrind_annotate)
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            *(["--world"] if world_only else []),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"the run under callgrind failed: {done.stderr.strip()[-2000:]}")
        dumps = sorted(
            (p for p in where.glob("cg.*") if p.suffix[1:].isdigit()),
            key=lambda p: int(p.suffix[1:]),
        )
        return [total(p) for p in dumps]


def main(keep: Path | None, world_only: bool) -> None:
    counts = measure(keep, world_only)
    if len(counts) < 3:
        sys.exit(f"expected 3 phases from callgrind, found {len(counts)}")
    per_step = (counts[2] - counts[1]) / (LONG - SHORT)
    what = "the World's appends alone" if world_only else "SQLite chain"
    print(f"instructions per step, {what} ({LONG} - {SHORT} steps, callgrind)")
    print(f"{per_step / 1e3:.1f}k   ({SHORT} steps: {counts[1] / SHORT / 1e3:.1f}k a step)")
    if keep is not None:
        print(f"dumps in {keep}: phase 3 (cg.3) is the long chain")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, help="keep callgrind's dumps in this directory")
    parser.add_argument(
        "--world", action="store_true", help="the World's appends alone (no runtime)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.world)
    else:
        main(args.profile, args.world)
