"""The DBOS side of the core benchmark: one case per process, SQLite system database.

Run by ``core_bench.py`` with the interpreter of the benchmark-only DBOS venv, as
``python dbos_cases.py CASE --workdir DIR --sizes JSON --style async|sync``; prints one
``BENCH_RESULT {json}`` line. The workloads mirror ``core_cases.py`` one for one: same step
bodies (``core_common``), same counts, same start → result boundaries.

``--style async`` uses ``async def`` workflows and steps on the caller's event loop (the
shape of workflowkit's API). ``--style sync`` uses plain ``def`` workflows and steps, which
DBOS runs on threads; case (d) has no sync form (a sync DBOS workflow cannot run steps
concurrently), so it always runs async.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
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
from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandle, WorkflowHandleAsync


class WalConnection(sqlite3.Connection):
    """``--sqlite wal``: DBOS's connections in WAL mode with synchronous=NORMAL, as
    workflowkit's are (commits survive a process crash, not necessarily a power cut)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA journal_mode = WAL")
        self.execute("PRAGMA synchronous = NORMAL")


# -- steps and workflows --------------------------------------------------------------------


@DBOS.step()
async def add_one(x: int) -> int:
    return step_body(x)


@DBOS.step()
def add_one_sync(x: int) -> int:
    return step_body(x)


@DBOS.step()
async def mark(path: str) -> float:
    return marker_body(path)


@DBOS.step()
def mark_sync(path: str) -> float:
    return marker_body(path)


@DBOS.workflow()
async def chain(n: int) -> int:
    value = 0
    for _ in range(n):
        value = await add_one(value)
    return value


@DBOS.workflow()
def chain_sync(n: int) -> int:
    value = 0
    for _ in range(n):
        value = add_one_sync(value)
    return value


@DBOS.workflow()
async def parallel(n: int) -> int:
    values = await asyncio.gather(*(add_one(i) for i in range(n)))
    return sum(values)


@DBOS.workflow()
async def sleeper(seconds: float) -> float:
    await DBOS.sleep_async(seconds)
    return seconds


@DBOS.workflow()
def sleeper_sync(seconds: float) -> float:
    DBOS.sleep(seconds)
    return seconds


@DBOS.workflow()
async def cold(n: int, pause: float, marker: str) -> float:
    value = 0
    for _ in range(n):
        value = await add_one(value)
    await DBOS.sleep_async(pause)
    return await mark(marker)


@DBOS.workflow()
def cold_sync(n: int, pause: float, marker: str) -> float:
    value = 0
    for _ in range(n):
        value = add_one_sync(value)
    DBOS.sleep(pause)
    return mark_sync(marker)


@DBOS.workflow()
async def child(i: int) -> int:
    return await add_one(i)


@DBOS.workflow()
def child_sync(i: int) -> int:
    return add_one_sync(i)


@DBOS.workflow()
async def parent(n: int) -> int:
    # DBOS.start_workflow_async in a workflow starts a child workflow (recorded as a step
    # of this one); get_result() there is recorded too.
    handles = [await DBOS.start_workflow_async(child, i) for i in range(n)]
    values = await asyncio.gather(*(handle.get_result() for handle in handles))
    return sum(values)


@DBOS.workflow()
def parent_sync(n: int) -> int:
    handles = [DBOS.start_workflow(child_sync, i) for i in range(n)]
    return sum(handle.get_result() for handle in handles)


# The tables a start writes to; (g) checks that starting existing ids leaves them as they are.
RUN_TABLES = ("workflow_status", "workflow_input", "workflow_output", "operation_outputs")

# -- cases ------------------------------------------------------------------------------------


class Bench:
    def __init__(self, workdir: Path, sizes: Sizes, style: str, sqlite_mode: str) -> None:
        self.workdir = workdir
        self.sizes = sizes
        self.sync = style == "sync"
        self.wal = sqlite_mode == "wal"
        self.url = f"sqlite:///{workdir / 'dbos.sqlite'}"

    def launch(self) -> None:
        config: DBOSConfig = {
            "name": "workflowkit-bench",
            "system_database_url": self.url,
            "log_level": "WARNING",
        }
        if self.wal:
            config["db_engine_kwargs"] = {"connect_args": {"factory": WalConnection}}
        DBOS(config=config)
        DBOS.launch()

    # Both styles are driven from one event loop; the sync style's blocking calls go to a
    # thread so they run exactly as they would in a sync program.

    async def run_chain(self, n: int) -> int:
        if self.sync:
            return await asyncio.to_thread(lambda: DBOS.start_workflow(chain_sync, n).get_result())
        ahandle = await DBOS.start_workflow_async(chain, n)
        return await ahandle.get_result()

    async def latency(self) -> dict[str, Any]:
        """(a) start → result of a 1-step workflow, one run at a time."""
        self.launch()
        samples: list[float] = []
        for i in range(self.sizes.latency_warmup + self.sizes.latency_runs):
            began = time.perf_counter()
            await self.run_chain(1)
            if i >= self.sizes.latency_warmup:
                samples.append(time.perf_counter() - began)
        return {
            "p50_ms": median(samples) * 1e3,
            "p99_ms": percentile(samples, 99) * 1e3,
            "min_ms": min(samples) * 1e3,
            "runs": len(samples),
        }

    async def chain_overhead(self) -> dict[str, Any]:
        """(b) one chain of ``chain_steps`` steps, start → result, divided by the steps."""
        self.launch()
        n = self.sizes.chain_steps
        await self.run_chain(1)  # warm
        totals: list[float] = []
        for _ in range(self.sizes.chain_repeats):
            began = time.perf_counter()
            await self.run_chain(n)
            totals.append(time.perf_counter() - began)
        total = median(totals)
        return {"per_step_us": total / n * 1e6, "total_ms": total * 1e3, "steps": n}

    async def many_sync(self, fn: Callable[..., Any], arg: Any, n: int) -> tuple[float, float]:
        def run() -> tuple[float, float]:
            began = time.perf_counter()
            handles = [DBOS.start_workflow(fn, arg) for _ in range(n)]
            started = time.perf_counter() - began
            for handle in handles:
                handle.get_result()
            return started, time.perf_counter() - began

        return await asyncio.to_thread(run)

    async def many_async(self, fn: Callable[..., Any], arg: Any, n: int) -> tuple[float, float]:
        began = time.perf_counter()
        handles = await asyncio.gather(*(DBOS.start_workflow_async(fn, arg) for _ in range(n)))
        started = time.perf_counter() - began
        await asyncio.gather(*(handle.get_result() for handle in handles))
        return started, time.perf_counter() - began

    async def fanout(self) -> dict[str, Any]:
        """(c) ``fanout_runs`` workflows of ``fanout_steps`` steps, all started at once."""
        self.launch()
        await self.run_chain(1)  # warm
        n, steps = self.sizes.fanout_runs, self.sizes.fanout_steps
        if self.sync:
            started, wall = await self.many_sync(chain_sync, steps, n)
        else:
            started, wall = await self.many_async(chain, steps, n)
        return {
            "runs_per_s": n / wall,
            "steps_per_s": n * steps / wall,
            "wall_s": wall,
            "start_all_s": started,
        }

    async def parallel_steps(self) -> dict[str, Any]:
        """(d) one workflow gathering ``parallel_steps`` steps, start → result (async only)."""
        self.launch()
        await self.run_chain(1)  # warm
        n = self.sizes.parallel_steps
        totals: list[float] = []
        for _ in range(self.sizes.parallel_repeats):
            began = time.perf_counter()
            handle = await DBOS.start_workflow_async(parallel, n)
            await handle.get_result()
            totals.append(time.perf_counter() - began)
        return {"total_ms": median(totals) * 1e3, "best_ms": min(totals) * 1e3, "steps": n}

    async def sleepers(self) -> dict[str, Any]:
        """(e) ``sleep_runs`` runs each sleeping durably; wall time to all done, peak RSS."""
        self.launch()
        await self.run_chain(1)  # warm
        baseline = current_rss_mib()
        seconds, n = self.sizes.sleep_seconds, self.sizes.sleep_runs
        if self.sync:
            started, wall = await self.many_sync(sleeper_sync, seconds, n)
        else:
            started, wall = await self.many_async(sleeper, seconds, n)
        return {
            "wall_s": wall,
            "start_all_s": started,
            "baseline_rss_mib": baseline,
            "rss_growth_mib": peak_rss_mib() - baseline,
        }

    async def cold_build(self) -> dict[str, Any]:
        """(f), first process: a workflow with ``cold_steps`` completed steps, now sleeping."""
        self.launch()
        n, marker = self.sizes.cold_steps, str(self.workdir / "marker.txt")
        began = time.perf_counter()
        if self.sync:
            sync_handle = await asyncio.to_thread(
                DBOS.start_workflow, cold_sync, n, COLD_SLEEP_SECONDS, marker
            )
            workflow_id = sync_handle.get_workflow_id()
        else:
            handle = await DBOS.start_workflow_async(cold, n, COLD_SLEEP_SECONDS, marker)
            workflow_id = handle.get_workflow_id()
        recorded = 0
        while recorded < n + 1:  # the n steps and the sleep
            await asyncio.sleep(0.25)
            recorded = len(await DBOS.list_workflow_steps_async(workflow_id))
        built = time.perf_counter() - began
        (self.workdir / "run_id.txt").write_text(workflow_id, encoding="utf-8")
        return {"build_s": built, "steps_recorded": recorded}

    async def cold_resume(self) -> dict[str, Any]:
        """(f), second process: from DBOS() until the step after the sleep starts."""
        workflow_id = (self.workdir / "run_id.txt").read_text(encoding="utf-8").strip()
        marker = str(self.workdir / "marker.txt")
        began_wall, began = time.time(), time.perf_counter()
        self.launch()  # recovers the pending workflow of executor "local"
        configured = time.perf_counter() - began
        handle: WorkflowHandleAsync[float] = await DBOS.retrieve_workflow_async(workflow_id)
        await handle.get_result(polling_interval_sec=0.01)
        done = time.perf_counter() - began
        started = read_marker(marker)
        return {
            "resume_ms": None if started is None else (started - began_wall) * 1e3,
            "configure_ms": configured * 1e3,
            "to_completed_ms": done * 1e3,
        }

    # (g): a start under a chosen id. DBOS returns the existing workflow's handle if the id
    # is taken. SetWorkflowID is task-local, so each of the gathered starts has its own.

    def start_with_id_sync(self, workflow_id: str) -> WorkflowHandle[int]:
        with SetWorkflowID(workflow_id):
            return DBOS.start_workflow(chain_sync, 1)

    async def start_with_id(self, workflow_id: str) -> WorkflowHandleAsync[int]:
        with SetWorkflowID(workflow_id):
            return await DBOS.start_workflow_async(chain, 1)

    async def start_all(self, ids: list[str], *, wait: bool) -> tuple[list[str], float]:
        """Start every id (all at once; sync: one after the other on a thread, as in (c)),
        then, with ``wait``, wait for each result through the handle the start returned.
        The ids of the returned handles, and the seconds the starts took."""
        if self.sync:

            def run() -> tuple[list[str], float]:
                began = time.perf_counter()
                handles = [self.start_with_id_sync(i) for i in ids]
                started = time.perf_counter() - began
                if wait:
                    for handle in handles:
                        handle.get_result()
                return [handle.get_workflow_id() for handle in handles], started

            return await asyncio.to_thread(run)
        began = time.perf_counter()
        ahandles = await asyncio.gather(*(self.start_with_id(i) for i in ids))
        started = time.perf_counter() - began
        if wait:
            await asyncio.gather(*(handle.get_result() for handle in ahandles))
        return [handle.get_workflow_id() for handle in ahandles], started

    async def start_each(self, ids: list[str]) -> list[float]:
        """Every id, one start at a time: each start's seconds."""

        def check(workflow_id: str, got: str) -> None:
            if got != workflow_id:
                raise AssertionError(f"started {workflow_id} again, got {got}")

        def timed_sync() -> list[float]:
            times = []
            for workflow_id in ids:
                t = time.perf_counter()
                handle = self.start_with_id_sync(workflow_id)
                times.append(time.perf_counter() - t)
                check(workflow_id, handle.get_workflow_id())
            return times

        if self.sync:
            return await asyncio.to_thread(timed_sync)
        times = []
        for workflow_id in ids:
            t = time.perf_counter()
            ahandle = await self.start_with_id(workflow_id)
            times.append(time.perf_counter() - t)
            check(workflow_id, ahandle.get_workflow_id())
        return times

    async def restarts(self) -> dict[str, Any]:
        """(g) ``idem_runs`` workflows with chosen ids, all at once; then every id again."""
        self.launch()
        await self.run_chain(1)  # warm
        n, db = self.sizes.idem_runs, str(self.workdir / "dbos.sqlite")
        ids = [f"order-{i}" for i in range(n)]

        began = time.perf_counter()
        first, started = await self.start_all(ids, wait=True)
        wall = time.perf_counter() - began
        before, io_before = table_fingerprints(db, RUN_TABLES), io_counters()

        began = time.perf_counter()
        again, _ = await self.start_all(ids, wait=False)
        again_s = time.perf_counter() - began
        io_after = io_counters()
        unchanged_or_raise(before, table_fingerprints(db, RUN_TABLES), "the second pass")
        one_by_one = await self.start_each(ids)  # and once more: per-call latency
        unchanged_or_raise(before, table_fingerprints(db, RUN_TABLES), "the one-by-one pass")
        if first != ids or again != ids:
            raise AssertionError("a start with a chosen id returned another workflow id")
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
            "workflow_status_rows": before["workflow_status"][0],
            "operation_outputs_rows": before["operation_outputs"][0],
        }

    async def run_parent(self, n: int) -> int:
        if self.sync:
            return await asyncio.to_thread(lambda: DBOS.start_workflow(parent_sync, n).get_result())
        handle = await DBOS.start_workflow_async(parent, n)
        return await handle.get_result()

    async def children(self) -> dict[str, Any]:
        """(h) a parent starting ``children`` child workflows (1 step each), start → result."""
        self.launch()
        await self.run_parent(1)  # warm
        n = self.sizes.children
        totals: list[float] = []
        for _ in range(self.sizes.children_repeats):
            began = time.perf_counter()
            total = await self.run_parent(n)
            totals.append(time.perf_counter() - began)
            if total != n * (n + 1) // 2:
                raise AssertionError(f"the parent returned {total}")
        return {"total_ms": median(totals) * 1e3, "best_ms": min(totals) * 1e3, "children": n}


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
        # A crash, from inside the running loop (asyncio.run returning would cancel the
        # workflow's task first): the workflow stays PENDING on executor "local".
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--sizes", default=Sizes().to_json())
    parser.add_argument("--style", choices=["async", "sync"], default="async")
    parser.add_argument(
        "--sqlite",
        choices=["default", "wal"],
        default="default",
        help="DBOS's own SQLite settings, or WAL + synchronous=NORMAL like workflowkit",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.workdir.resolve(), Sizes.from_json(args.sizes), args.style, args.sqlite)
    style = "async" if args.case == "d" else args.style
    mode = "WAL+NORMAL" if args.sqlite == "wal" else "default journal"
    engine = f"DBOS {version('dbos')} ({style}, SQLite {mode})"
    asyncio.run(run_case(bench, args.case, engine))
    DBOS.destroy()
    sys.exit(0)


if __name__ == "__main__":
    main()
