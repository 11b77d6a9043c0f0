"""The workflowkit side of the core benchmark: one case per process.

Run by ``core_bench.py`` as ``python core_cases.py CASE --workdir DIR --sizes JSON``; prints
one ``BENCH_RESULT {json}`` line. Cases: a … e, f-build, f-resume, g, h (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core_common import (
    COLD_SLEEP_SECONDS,
    Sizes,
    current_rss_mib,
    emit,
    io_counters,
    marker_body,
    median,
    peak_rss_mib,
    percentile,
    read_marker,
    step_body,
    table_fingerprints,
    unchanged_or_raise,
)

import workflowkit
from workflowkit import Retry, sleep, step, workflow
from workflowkit.api import Run, get_run, start
from workflowkit.ids import new_id
from workflowkit.runtime.runtime import Runtime
from workflowkit.worlds.records import EventType, NewEvent, WorkerInfo
from workflowkit.worlds.sqlite import SQLiteWorld

RESULT_TIMEOUT = 600.0

# -- steps and workflows (explicit durable names: the same in every process) ----------------


@step(name="bench.add_one")
async def add_one(x: int) -> int:
    return step_body(x)


@step(name="bench.add_one_sync")
def add_one_sync(x: int) -> int:
    return step_body(x)


@step(name="bench.mark")
async def mark(path: str) -> float:
    return marker_body(path)


# The same steps with a retry policy and a timeout: (b) times them next to the plain ones,
# since a policy must cost next to nothing on an attempt that succeeds.
POLICY = Retry(attempts=5, initial="1s", backoff=2.0, max_interval="1 minute", jitter=0.2)


@step(name="bench.add_one_policy", retry=POLICY, timeout="30s")
async def add_one_policy(x: int) -> int:
    return step_body(x)


@step(name="bench.add_one_sync_policy", retry=POLICY, timeout="30s")
def add_one_sync_policy(x: int) -> int:
    return step_body(x)


_COMPUTE: dict[str, Callable[[int], Awaitable[int]]] = {
    "async": add_one,
    "sync": add_one_sync,
    "async+policy": add_one_policy,
    "sync+policy": add_one_sync_policy,
}


def compute(kind: str) -> Callable[[int], Awaitable[int]]:
    """The compute step: ``async def`` (runs on the loop) or ``def`` (runs in the pool),
    with ``+policy``: with a ``Retry`` policy and a timeout."""
    return _COMPUTE[kind]


@workflow(name="bench.chain")
async def chain(n: int, kind: str) -> int:
    fn = compute(kind)
    value = 0
    for _ in range(n):
        value = await fn(value)
    return value


@workflow(name="bench.parallel")
async def parallel(n: int, kind: str) -> int:
    fn = compute(kind)
    values = await asyncio.gather(*(fn(i) for i in range(n)))
    return sum(values)


@workflow(name="bench.sleeper")
async def sleeper(seconds: float) -> float:
    await sleep(seconds)
    return seconds


@workflow(name="bench.cold")
async def cold(n: int, kind: str, pause: float, marker: str) -> float:
    fn = compute(kind)
    value = 0
    for _ in range(n):
        value = await fn(value)
    await sleep(pause)
    return await mark(marker)


@workflow(name="bench.child")
async def child(i: int, kind: str) -> int:
    return await compute(kind)(i)


@workflow(name="bench.parent")
async def parent(n: int, kind: str) -> int:
    # start() in workflow code starts a child run (recorded in this run's log);
    # return_value() there is a durable wait for it.
    runs = [await start(child, i, kind) for i in range(n)]
    values = await asyncio.gather(*(run.return_value() for run in runs))
    return sum(values)


# The tables a start writes to; (g) checks that starting existing ids leaves them as they are.
RUN_TABLES = ("runs", "events", "steps")

# -- cases -----------------------------------------------------------------------------------


class Bench:
    def __init__(self, workdir: Path, sizes: Sizes, kind: str) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.kind = kind
        self.url = f"sqlite:///{workdir / 'wk.db'}"

    def configure(self) -> Runtime:
        return workflowkit.configure(self.url)

    async def latency(self) -> dict[str, Any]:
        """(a) start → result of a 1-step workflow, one run at a time."""
        self.configure()
        samples: list[float] = []
        for i in range(self.sizes.latency_warmup + self.sizes.latency_runs):
            began = time.perf_counter()
            run = await start(chain, 1, self.kind)
            await run.return_value(timeout=RESULT_TIMEOUT)
            if i >= self.sizes.latency_warmup:
                samples.append(time.perf_counter() - began)
        return {
            "p50_ms": median(samples) * 1e3,
            "p99_ms": percentile(samples, 99) * 1e3,
            "min_ms": min(samples) * 1e3,
            "runs": len(samples),
        }

    async def chain_overhead(self) -> dict[str, Any]:
        """(b) one chain of ``chain_steps`` steps, start → result, divided by the steps;
        the same with steps that have a retry policy and a timeout, runs interleaved."""
        rt = self.configure()
        n = self.sizes.chain_steps
        policy_kind = f"{self.kind}+policy"
        for kind in (self.kind, policy_kind):  # warm
            await (await start(chain, 1, kind)).return_value(timeout=RESULT_TIMEOUT)
        totals: dict[str, list[float]] = {self.kind: [], policy_kind: []}
        cpu = time.process_time()  # every thread's: the loop's, the store's, the client's
        for repeat in range(self.sizes.chain_repeats):
            # Alternate which goes first, so drift on a shared machine hits both alike.
            order = (self.kind, policy_kind) if repeat % 2 == 0 else (policy_kind, self.kind)
            for kind in order:
                began = time.perf_counter()
                run = await start(chain, n, kind)
                await run.return_value(timeout=RESULT_TIMEOUT)
                totals[kind].append(time.perf_counter() - began)
        runs = 2 * n * self.sizes.chain_repeats
        cpu_us = (time.process_time() - cpu) / runs * 1e6  # both variants, per step
        total = median(totals[self.kind])
        with_policy = median(totals[policy_kind])
        # Each repeat ran both variants back to back: the median of those pairs' ratios is
        # steadier on a shared machine than the ratio of the two medians.
        pairs = sorted(p / b for p, b in zip(totals[policy_kind], totals[self.kind], strict=True))
        world_only = world_appends(self.workdir / "world-only.db", n)
        on_worker_loop = asyncio.run_coroutine_threadsafe(world_only, rt.loop)
        world_us = await asyncio.wrap_future(on_worker_loop)
        return {
            "per_step_us": total / n * 1e6,
            "cpu_us_per_step": cpu_us,  # less sensitive than wall time to a busy machine
            "policy_per_step_us": with_policy / n * 1e6,
            "policy_ratio": median(pairs),
            "policy_ratio_of_fastest": min(totals[policy_kind]) / min(totals[self.kind]),
            "world_us_per_step": world_us,
            "total_ms": total * 1e3,
            "steps": n,
        }

    async def many(self, make: Callable[[], Awaitable[Run[Any]]], n: int) -> tuple[float, float]:
        """Start ``n`` runs at once, wait for all; (seconds to start them, seconds to done)."""
        began = time.perf_counter()
        runs = await asyncio.gather(*(make() for _ in range(n)))
        started = time.perf_counter() - began
        await asyncio.gather(*(run.return_value(timeout=RESULT_TIMEOUT) for run in runs))
        return started, time.perf_counter() - began

    async def fanout(self) -> dict[str, Any]:
        """(c) ``fanout_runs`` workflows of ``fanout_steps`` steps, all started at once."""
        self.configure()
        await (await start(chain, 1, self.kind)).return_value(timeout=RESULT_TIMEOUT)  # warm
        n, steps = self.sizes.fanout_runs, self.sizes.fanout_steps
        started, wall = await self.many(lambda: start(chain, steps, self.kind), n)
        return {
            "runs_per_s": n / wall,
            "steps_per_s": n * steps / wall,
            "wall_s": wall,
            "start_all_s": started,
        }

    async def parallel_steps(self) -> dict[str, Any]:
        """(d) one workflow gathering ``parallel_steps`` steps, start → result."""
        self.configure()
        await (await start(chain, 1, self.kind)).return_value(timeout=RESULT_TIMEOUT)  # warm
        n = self.sizes.parallel_steps
        totals: list[float] = []
        for _ in range(self.sizes.parallel_repeats):
            began = time.perf_counter()
            run = await start(parallel, n, self.kind)
            await run.return_value(timeout=RESULT_TIMEOUT)
            totals.append(time.perf_counter() - began)
        return {"total_ms": median(totals) * 1e3, "best_ms": min(totals) * 1e3, "steps": n}

    async def sleepers(self) -> dict[str, Any]:
        """(e) ``sleep_runs`` runs each sleeping durably; wall time to all done, peak RSS."""
        self.configure()
        await (await start(chain, 1, self.kind)).return_value(timeout=RESULT_TIMEOUT)  # warm
        baseline = current_rss_mib()
        seconds = self.sizes.sleep_seconds
        started, wall = await self.many(lambda: start(sleeper, seconds), self.sizes.sleep_runs)
        return {
            "wall_s": wall,
            "start_all_s": started,
            "baseline_rss_mib": baseline,
            "rss_growth_mib": peak_rss_mib() - baseline,
        }

    async def cold_build(self) -> dict[str, Any]:
        """(f), first process: a run with ``cold_steps`` completed steps, now sleeping; crash."""
        rt = self.configure()
        marker = str(self.workdir / "marker.txt")
        began = time.perf_counter()
        run = await start(cold, self.sizes.cold_steps, self.kind, COLD_SLEEP_SECONDS, marker)
        while not await rt.world.list_waits(run.run_id):
            await asyncio.sleep(0.02)
        built = time.perf_counter() - began
        (self.workdir / "run_id.txt").write_text(run.run_id, encoding="utf-8")
        steps = await rt.world.list_steps(run.run_id)
        return {"build_s": built, "steps_recorded": len(steps)}

    async def cold_resume(self) -> dict[str, Any]:
        """(f), second process: from configure() until the step after the sleep starts."""
        run_id = (self.workdir / "run_id.txt").read_text(encoding="utf-8").strip()
        marker = str(self.workdir / "marker.txt")
        began_wall, began = time.time(), time.perf_counter()
        self.configure()
        configured = time.perf_counter() - began
        await get_run(run_id).return_value(timeout=RESULT_TIMEOUT)
        done = time.perf_counter() - began
        started = read_marker(marker)
        return {
            "resume_ms": None if started is None else (started - began_wall) * 1e3,
            "configure_ms": configured * 1e3,
            "to_completed_ms": done * 1e3,
        }

    async def restarts(self) -> dict[str, Any]:
        """(g) ``idem_runs`` runs with chosen ids, all at once; then every id started again."""
        self.configure()
        await (await start(chain, 1, self.kind)).return_value(timeout=RESULT_TIMEOUT)  # warm
        n, db = self.sizes.idem_runs, str(self.workdir / "wk.db")
        ids = [f"order-{i}" for i in range(n)]

        async def start_all() -> list[Run[int]]:
            return await asyncio.gather(
                *(start(chain.options(run_id=run_id), 1, self.kind) for run_id in ids)
            )

        began = time.perf_counter()
        first = await start_all()
        started = time.perf_counter() - began
        await asyncio.gather(*(run.return_value(timeout=RESULT_TIMEOUT) for run in first))
        wall = time.perf_counter() - began
        before, io_before = table_fingerprints(db, RUN_TABLES), io_counters()

        began = time.perf_counter()
        again = await start_all()
        again_s = time.perf_counter() - began
        io_after = io_counters()
        unchanged_or_raise(before, table_fingerprints(db, RUN_TABLES), "the second pass")

        one_by_one: list[float] = []  # and once more, one start at a time: per-call latency
        for run_id in ids:
            t = time.perf_counter()
            run = await start(chain.options(run_id=run_id), 1, self.kind)
            one_by_one.append(time.perf_counter() - t)
            if run.run_id != run_id:
                raise AssertionError(f"started {run_id} again, got {run.run_id}")
        unchanged_or_raise(before, table_fingerprints(db, RUN_TABLES), "the one-by-one pass")
        if [r.run_id for r in first] != ids or [r.run_id for r in again] != ids:
            raise AssertionError("a start with a chosen id returned another run id")
        return {
            "first_runs_per_s": n / wall,
            "again_us_per_start": again_s / n * 1e6,
            "again_total_ms": again_s * 1e3,
            "first_wall_s": wall,
            "first_start_all_s": started,
            "again_seq_p50_us": median(one_by_one) * 1e6,
            "again_seq_p99_us": percentile(one_by_one, 99) * 1e6,
            "again_write_bytes": io_after.get("wchar", 0) - io_before.get("wchar", 0),
            "again_write_calls": io_after.get("syscw", 0) - io_before.get("syscw", 0),
            "runs_rows": before["runs"][0],
            "events_rows": before["events"][0],
        }

    async def children(self) -> dict[str, Any]:
        """(h) a parent starting ``children`` child runs (1 step each), start → its result."""
        self.configure()
        await (await start(parent, 1, self.kind)).return_value(timeout=RESULT_TIMEOUT)  # warm
        n = self.sizes.children
        totals: list[float] = []
        for _ in range(self.sizes.children_repeats):
            began = time.perf_counter()
            run = await start(parent, n, self.kind)
            total = await run.return_value(timeout=RESULT_TIMEOUT)
            totals.append(time.perf_counter() - began)
            if total != n * (n + 1) // 2:
                raise AssertionError(f"the parent returned {total}")
        return {"total_ms": median(totals) * 1e3, "best_ms": min(totals) * 1e3, "children": n}


async def world_appends(path: Path, n: int) -> float:
    """µs per step for the SQLite World alone recording what one chained step records.

    The same three events the runtime appends per step (the previous step's result, the
    next step's creation and start), on the worker's loop as the runtime's appends are, with
    no workflow and no step body. A file of its own, so no worker takes the run. (b) minus
    this is the runtime's share.
    """
    world = SQLiteWorld(path)
    me = WorkerInfo(new_id("wrkr"), "bench", os.getpid())
    try:
        run_id = new_id("wrun")
        await world.create_run(run_id, "bench.world_only", b"", {})
        await world.register_worker(me)
        await world.claim_runs(me, ["bench.world_only"], limit=1, lease_seconds=3600)
        owner = me.worker_id  # a worker's appends, as the runtime's are
        await world.append(run_id, [NewEvent(EventType.RUN_STARTED)], owner=owner)
        created = {"name": "bench.add_one", "digest": "0123456789abcdef"}
        previous: str | None = None
        began = time.perf_counter()
        for _ in range(n):
            step_id = new_id("step")
            events = [
                NewEvent(EventType.STEP_CREATED, step_id, b"\x01" * 16, created),
                NewEvent(EventType.STEP_STARTED, step_id, None, {"attempt": 1}),
            ]
            if previous is not None:
                events.insert(0, NewEvent(EventType.STEP_COMPLETED, previous, b"\x01" * 8))
            result = await world.append(run_id, events, owner=owner)
            if result.rejected:
                raise RuntimeError(f"world-only append refused: {result.rejected}")
            previous = step_id
        return (time.perf_counter() - began) / n * 1e6
    finally:
        await world.close()


CASES: dict[str, Callable[[Bench], Awaitable[dict[str, Any]]]] = {
    "a": Bench.latency,
    "b": Bench.chain_overhead,
    "c": Bench.fanout,
    "d": Bench.parallel_steps,
    "e": Bench.sleepers,
    "f-build": Bench.cold_build,
    "f-resume": Bench.cold_resume,
    "g": Bench.restarts,
    "h": Bench.children,
}


async def run_case(bench: Bench, case: str, engine: str) -> None:
    result = await CASES[case](bench)
    result["engine"] = engine
    emit(result)
    if case == "f-build":
        # A crash, from inside the running loop: no shutdown, no cleanup; the run keeps
        # its lease (held by a now dead process) and its sleep is pending.
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--sizes", default=Sizes().to_json())
    parser.add_argument("--steps", choices=["async", "sync"], default="async")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.workdir.resolve(), Sizes.from_json(args.sizes), args.steps)
    engine = f"workflowkit {workflowkit.__version__} ({args.steps} steps)"
    asyncio.run(run_case(bench, args.case, engine))
    workflowkit.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
