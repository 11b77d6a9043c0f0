"""Many sleeping runs: 100,000 runs that each run one step and then sleep, on one worker.

    python bench/many_runs_bench.py                         # 100,000 runs, SQLite and PostgreSQL
    python bench/many_runs_bench.py --runs 10000 --only sqlite
    python bench/many_runs_bench.py --runs 10000 --py-spy /tmp/prof   # profile the worker

For each World (SQLite in a temporary file; PostgreSQL in a fresh schema, dropped after), a
real worker process (``workflowkit worker many_runs_bench``) executes the runs; this process
is only the client (``configure(url, embedded_worker=False)`` and ``start()``). Every run is
``nap(index, due)``: one step, then ``await sleep(due)`` with the same absolute ``due`` for
all, so every sleep comes due at once.

1. Start the runs in three stages (10 %, 50 % and 100 % of ``--runs``), up to ``--batch``
   starts at once. After each stage, wait until every run started so far is asleep (status
   ``running``, no owner: it left the worker's memory), then read the worker's ``VmRSS``.
2. At ``due``, time until every run has completed.

Reported: start rate (runs started ÷ the time the starts took), the worker's RSS at each
stage and its peak (``VmHWM``), the time from due until all completed and that as runs/s, and
the worker's CPU time per run in each phase (less noisy than wall time on a busy machine).
Targets (issue "Hot paths"): RSS ≤ 200 MiB and flat past the first 10 %; ≥ 2,000 runs/s
woken on SQLite. A miss is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import workflowkit  # noqa: E402
from workflowkit import sleep, step, workflow  # noqa: E402
from workflowkit.api import start  # noqa: E402

WORKFLOW = "manyruns.nap"
STAGES = (0.1, 0.5, 1.0)  # share of --runs started before each RSS reading
TICK = os.sysconf("SC_CLK_TCK")
COUNT_SQL = (
    "SELECT "
    "sum(CASE WHEN status = 'running' AND owner IS NULL THEN 1 ELSE 0 END), "
    "sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), "
    "sum(CASE WHEN status IN ('failed', 'cancelled') THEN 1 ELSE 0 END) "
    f"FROM runs WHERE workflow_name = '{WORKFLOW}'"
)


@step(name="manyruns.touch")
async def touch(index: int) -> int:
    return index + 1


@workflow(name=WORKFLOW)
async def nap(index: int, due: float) -> int:
    value = await touch(index)
    await sleep(datetime.fromtimestamp(due, UTC))
    return value


# -- the worker process ------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    log: Path
    py_spy: Path | None  # profile each phase into this folder
    name: str
    profiler: subprocess.Popen[bytes] | None = None

    def profile(self, phase: str | None) -> None:
        """Stop profiling the last phase (py-spy writes its file on SIGINT); start ``phase``."""
        if self.profiler is not None:
            self.profiler.send_signal(signal.SIGINT)
            self.profiler.wait(60)
            self.profiler = None
        if self.py_spy is None or phase is None:
            return
        self.py_spy.mkdir(parents=True, exist_ok=True)
        output = self.py_spy / f"worker-{self.name}-{phase}.txt"
        command = [_py_spy(), "record", "-f", "raw", "-r", "100", "--gil", "-o", str(output)]
        command += ["--pid", str(self.popen.pid)]
        self.profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def status(self, key: str) -> float:
        """A ``/proc/<pid>/status`` size in MiB (``VmRSS``, ``VmHWM``)."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(key)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text()[-3000:]
            raise RuntimeError(f"the worker exited ({self.popen.returncode}):\n{tail}")


@contextmanager
def worker_process(url: str, workdir: Path, py_spy: Path | None, name: str) -> Iterator[Any]:
    env = {**os.environ, "WORKFLOWKIT_WORLD": url, "PYTHONPATH": str(HERE.parent / "src")}
    log = workdir / f"worker-{name}.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "workflowkit", "worker", "many_runs_bench"]
        popen = subprocess.Popen(command, cwd=HERE, env=env, stdout=out, stderr=out)
    worker = WorkerProcess(popen, log, py_spy, name)
    try:
        yield worker
    finally:
        popen.terminate()
        try:
            popen.wait(60)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
        worker.profile(None)


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")  # in the venv, else on PATH
    return str(beside) if beside.exists() else "py-spy"


# -- one World ----------------------------------------------------------------------------------


@dataclass
class Result:
    runs: int
    start_s: float = 0.0
    rss_mib: dict[int, float] = field(default_factory=dict)
    start_cpu_s: float = 0.0
    late_s: float = 0.0  # how long after due the last run fell asleep (0: all asleep in time)
    wake_s: float = 0.0
    wake_cpu_s: float = 0.0
    peak_mib: float = 0.0
    failed: int = 0


Counter = Callable[[], tuple[int, int, int]]


async def wait_for(
    worker: WorkerProcess, counter: Counter, done: Callable[[tuple[int, int, int]], bool]
) -> tuple[int, int, int]:
    while True:
        worker.check()
        counts = await asyncio.to_thread(counter)
        if done(counts):
            return counts
        await asyncio.sleep(0.2)


async def measure(
    url: str, counter: Counter, args: argparse.Namespace, worker: Any, due_in: float
) -> Result:
    result = Result(args.runs)
    stages = sorted({max(1, round(args.runs * share)) for share in STAGES})
    workflowkit.configure(url, embedded_worker=False)
    try:
        due = time.time() + due_in
        cpu_before = worker.cpu_seconds()
        worker.profile("sleep")
        started = 0
        for stage in stages:
            began = time.perf_counter()
            while started < stage:
                batch = range(started, min(stage, started + args.batch))
                await asyncio.gather(*(start(nap, index, due) for index in batch))
                started = batch.stop
            result.start_s += time.perf_counter() - began
            await wait_for(worker, counter, lambda c, n=stage: c[0] + c[1] + c[2] >= n)
            result.rss_mib[stage] = worker.status("VmRSS")
            print(
                f"  {stage:,} asleep; worker RSS {result.rss_mib[stage]:.0f} MiB "
                f"({due - time.time():.0f} s before due)",
                file=sys.stderr,
                flush=True,
            )
        result.start_cpu_s = worker.cpu_seconds() - cpu_before
        worker.profile(None)
        result.late_s = max(0.0, time.time() - due)
        await asyncio.sleep(max(0.0, due - time.time()))
        cpu_before = worker.cpu_seconds()
        worker.profile("wake")
        counts = await wait_for(worker, counter, lambda c: c[1] + c[2] >= args.runs)
        result.wake_s = time.time() - due
        result.wake_cpu_s = worker.cpu_seconds() - cpu_before
        worker.profile(None)
        result.peak_mib = worker.status("VmHWM")
        result.failed = counts[2]
    finally:
        workflowkit.shutdown()
    return result


def sqlite_counter(path: Path) -> Counter:
    def count() -> tuple[int, int, int]:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = conn.execute(COUNT_SQL).fetchone()
        finally:
            conn.close()
        return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))

    return count


def postgres_counter(base: str, schema: str) -> Counter:
    import psycopg

    def count() -> tuple[int, int, int]:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {schema}")
            row = conn.execute(COUNT_SQL).fetchone()
        assert row is not None
        return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0))

    return count


def run_sqlite(args: argparse.Namespace, workdir: Path) -> Result:
    path = workdir / "many.db"
    url = f"sqlite:///{path}"
    workflowkit.configure(url, embedded_worker=False)  # create the file before the worker
    workflowkit.shutdown()
    with worker_process(url, workdir, args.py_spy, "sqlite") as worker:
        due_in = args.due_in or 30 + args.runs / 250
        return asyncio.run(measure(url, sqlite_counter(path), args, worker, due_in))


def run_postgres(args: argparse.Namespace, workdir: Path) -> Result:
    import psycopg

    schema = f"wk_manyruns_{os.getpid()}"
    url = f"{args.url}?schema={schema}"
    try:
        workflowkit.configure(url, embedded_worker=False)  # migrate before the worker starts
        workflowkit.shutdown()
        with worker_process(url, workdir, args.py_spy, "postgres") as worker:
            due_in = args.due_in or 60 + args.runs / 40
            counter = postgres_counter(args.url, schema)
            return asyncio.run(measure(url, counter, args, worker, due_in))
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# -- report -------------------------------------------------------------------------------------


def report(results: dict[str, Result]) -> None:
    for name, r in results.items():
        print(f"\n{name}: {r.runs:,} runs, each one step then a sleep until one shared time")
        print(f"  start rate          {r.runs / r.start_s:>9,.0f} runs/s ({r.start_s:.1f} s)")
        for count, rss in r.rss_mib.items():
            print(f"  worker RSS, {count:>7,} asleep {rss:>6.0f} MiB")
        print(f"  worker peak RSS     {r.peak_mib:>6.0f} MiB (VmHWM, wake-up included)")
        print(f"  worker CPU to sleep {r.start_cpu_s / r.runs * 1e6:>6.0f} µs per run")
        if r.late_s:
            print(f"  NOT ALL ASLEEP AT DUE (the last {r.late_s:.0f} s late): wake-up not")
            print("  measured; run again with a larger --due-in")
            continue
        rate = r.runs / r.wake_s if r.wake_s > 0 else float("inf")
        print(f"  due -> all completed {r.wake_s:>5.1f} s = {rate:,.0f} runs/s")
        print(f"  worker CPU to wake  {r.wake_cpu_s / r.runs * 1e6:>6.0f} µs per run")
        if r.failed:
            print(f"  {r.failed:,} runs FAILED or were cancelled")
    print("\ntargets: worker RSS ≤ 200 MiB and flat past the first stage; ≥ 2,000 runs/s woken")
    print("on SQLite (the machine is shared: wall times are noisy, CPU per run less so)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--batch", type=int, default=500, help="starts at once (default 500)")
    parser.add_argument(
        "--due-in",
        type=float,
        default=None,
        help="seconds from the first start to the shared due time (default: 30 + runs/250 "
        "on SQLite, 60 + runs/40 on PostgreSQL)",
    )
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--py-spy", type=Path, default=None, help="profile the worker here")
    args = parser.parse_args(argv)
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="wk-manyruns-") as root:
        if "sqlite" in args.only:
            results["SQLite"] = run_sqlite(args, Path(root))
        if "postgres" in args.only:
            results["PostgreSQL"] = run_postgres(args, Path(root))
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
