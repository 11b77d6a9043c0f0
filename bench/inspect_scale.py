"""Inspection at scale: the CLI's and the dashboard's reads with 1,000,000 runs stored.

    .venv/bin/python bench/inspect_scale.py                      # both Worlds, 1,000,000 runs
    .venv/bin/python bench/inspect_scale.py --world sqlite --runs 200000
    .venv/bin/python bench/inspect_scale.py --reseed             # seed again from scratch

Seeding writes rows directly with SQL (a run row and its ``run_created`` event, plus
``run_started`` and the ending event for runs that started and ended: what the engine
leaves behind), in big batches, then runs a few real workflows on top with a worker (a
failed run with a retried step, a sleeping run, a run waiting on a hook) so the run page
and "waiting for" have real logs to read. Seeded databases are kept (SQLite file under
``--workdir``, PostgreSQL schema ``wk_bench_inspect``) and reused when they hold the wanted
number of runs.

Each case is timed end to end as a user meets it: ``inspect runs`` through the CLI's
``main()`` in this process (Python's start-up excluded), the dashboard through HTTP to a
real uvicorn server. Reported: median and p95 over ``--repeat`` calls, after a warm-up
call. The target is 100 ms for each; a miss is reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import socket
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

import workflowkit
from workflowkit import FatalError, RetryableError, create_hook, sleep, step, workflow
from workflowkit.api import start
from workflowkit.cli.main import main as cli_main
from workflowkit.ids import ulid
from workflowkit.serde import encode
from workflowkit.web import create_app
from workflowkit.worlds import open_world

PG_BASE = os.environ.get("WORKFLOWKIT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
PG_SCHEMA = "wk_bench_inspect"
WORKFLOWS = [f"bench.wf{i:02d}" for i in range(20)]
# (status, share): most runs in a big database have ended.
STATUSES = (("completed", 0.85), ("failed", 0.08), ("running", 0.04), ("pending", 0.02))
DAYS = 30  # runs were created over the last 30 days
BATCH = 20_000
TARGET_MS = 100.0


# -- real runs on top of the seeded rows ---------------------------------------------------

_tries: dict[str, int] = {}


@step(max_retries=5)
async def bench_charge(order: str) -> str:
    _tries[order] = _tries.get(order, 0) + 1
    if _tries[order] < 3:
        raise RetryableError("card network busy", retry_after=0.05)
    raise FatalError(f"card declined for {order}")


@workflow(name="bench.checkout")
async def bench_checkout(order: str) -> str:
    return await bench_charge(order)


@workflow(name="bench.nap")
async def bench_nap() -> None:
    await sleep("3 hours")


@workflow(name="bench.approve")
async def bench_approve(order: str) -> Any:
    return await create_hook(token=f"approve:{order}")


@dataclass(frozen=True)
class RealRuns:
    failed: str
    sleeping: str
    waiting: str
    middle: str = ""  # a seeded run created half-way back: a cursor deep into the list


async def _real_runs() -> RealRuns:
    failed = await start(bench_checkout, "o-1")
    with contextlib.suppress(workflowkit.WorkflowRunFailedError):
        await failed.return_value(timeout=30)
    sleeping = await start(bench_nap)
    waiting = await start(bench_approve, "o-1")
    await asyncio.sleep(1.0)  # both reach their sleep and hook
    return RealRuns(failed.run_id, sleeping.run_id, waiting.run_id)


def real_runs(url: str) -> RealRuns:
    workflowkit.configure(url, poll_interval=0.05)
    try:
        real = asyncio.run(_real_runs())
    finally:
        workflowkit.shutdown()
    return replace(real, middle=asyncio.run(_middle(url)))


async def _middle(url: str) -> str:
    world = open_world(url)
    try:
        half_way = datetime.now(UTC) - timedelta(days=DAYS / 2)
        [run] = await world.list_runs(until=half_way, limit=1)
        return run.run_id
    finally:
        await world.close()


# -- seeding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    run: tuple[Any, ...]
    events: list[tuple[Any, ...]]


INPUT = encode([["order-123", 4200], {}])
OUTPUT = encode({"charged": 4200, "receipt": "r-123"})
try:
    raise FatalError("card declined")
except FatalError as _exc:
    ERROR = encode(_exc)


def _rows(count: int, now: float) -> Iterator[list[Row]]:
    """``count`` runs in batches, created over the last ``DAYS`` days, oldest first."""
    rng = random.Random(7)
    step_s = DAYS * 86400 / count
    batch: list[Row] = []
    cut = [0.0]
    for _, share in STATUSES:
        cut.append(cut[-1] + share)
    for i in range(count):
        created = now - DAYS * 86400 + i * step_s
        run_id = "wrun_" + ulid(int(created * 1000))
        pick = rng.random()
        status = next(
            (s for (s, _), top in zip(STATUSES, cut[1:], strict=True) if pick < top), "cancelled"
        )
        name = WORKFLOWS[rng.randrange(len(WORKFLOWS))]
        events = [
            (
                run_id,
                1,
                "evnt_" + ulid(int(created * 1000)),
                "run_created",
                None,
                INPUT,
                '{"name":"' + name + '"}',
                created,
            )
        ]
        started = completed = output_seq = error_seq = None
        wake = None
        if status == "pending":
            wake = created
        else:
            started = created + 0.01
            events.append(
                (
                    run_id,
                    2,
                    "evnt_" + ulid(int(started * 1000)),
                    "run_started",
                    None,
                    None,
                    None,
                    started,
                )
            )
        if status in ("completed", "failed", "cancelled"):
            completed = created + 0.5
            kind, payload = {
                "completed": ("run_completed", OUTPUT),
                "failed": ("run_failed", ERROR),
                "cancelled": ("run_cancelled", None),
            }[status]
            events.append(
                (
                    run_id,
                    3,
                    "evnt_" + ulid(int(completed * 1000)),
                    kind,
                    None,
                    payload,
                    None,
                    completed,
                )
            )
            output_seq = 3 if status == "completed" else None
            error_seq = 3 if status == "failed" else None
        elif status == "running":
            wake = created + 86400  # sleeping: due tomorrow
        updated = completed or started or created
        batch.append(
            Row(
                (
                    run_id,
                    name,
                    status,
                    created,
                    started,
                    completed,
                    updated,
                    output_seq,
                    error_seq,
                    wake,
                ),
                events,
            )
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


RUN_INSERT = (
    "INSERT INTO runs (run_id, workflow_name, status, created_at, started_at, completed_at, "
    "updated_at, output_seq, error_seq, wake_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EVENT_INSERT = (
    "INSERT INTO events (run_id, seq, event_id, type, correlation_id, payload, attrs, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _migrate(url: str) -> None:
    async def go() -> None:
        world = open_world(url)
        await world.list_runs(limit=1)  # opening runs the migrations
        await world.close()

    asyncio.run(go())


def seed_sqlite(path: Path, count: int) -> None:
    _migrate(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    now = time.time() - 3600
    for batch in _rows(count, now):
        with conn:
            conn.executemany(RUN_INSERT, [r.run for r in batch])
            conn.executemany(EVENT_INSERT, [e for r in batch for e in r.events])
    conn.execute("ANALYZE")
    conn.close()


def seed_postgres(url: str, count: int) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(PG_SCHEMA)))
    _migrate(url)
    now = time.time() - 3600

    def ts(value: float | None) -> Any:
        from datetime import UTC, datetime

        return None if value is None else datetime.fromtimestamp(value, UTC)

    with psycopg.connect(PG_BASE) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(PG_SCHEMA)))
        with conn.cursor() as cur:
            for batch in _rows(count, now):
                with cur.copy(
                    "COPY runs (run_id, workflow_name, status, created_at, started_at, "
                    "completed_at, updated_at, output_seq, error_seq, wake_at) FROM STDIN"
                ) as copy:
                    for r in batch:
                        v = r.run
                        copy.write_row(
                            (*v[:3], ts(v[3]), ts(v[4]), ts(v[5]), ts(v[6]), v[7], v[8], ts(v[9]))
                        )
                with cur.copy(
                    "COPY events (run_id, seq, event_id, type, correlation_id, payload, attrs, "
                    "created_at) FROM STDIN"
                ) as copy:
                    for r in batch:
                        for e in r.events:
                            copy.write_row((*e[:7], ts(e[7])))
                conn.commit()
        conn.execute("ANALYZE runs")
        conn.execute("ANALYZE events")
        conn.commit()


def stored_runs(url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return 0
        with sqlite3.connect(path) as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    import psycopg

    with psycopg.connect(PG_BASE) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'runs'",
            (PG_SCHEMA,),
        ).fetchone()
        if found is None:
            return 0
        row = conn.execute(f"SELECT count(*) FROM {PG_SCHEMA}.runs").fetchone()
        return int(row[0]) if row else 0


# -- timing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    case: str
    median_ms: float
    p95_ms: float

    @property
    def ok(self) -> bool:
        return self.p95_ms <= TARGET_MS


def timed(case: str, repeat: int, call: Callable[[], None]) -> Timing:
    call()  # warm-up: caches, the first connection
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    return Timing(case, statistics.median(samples), p95)


def cli(url: str, *argv: str) -> Callable[[], None]:
    def call() -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli_main(["--world", url, *argv])
        if code != 0:
            raise RuntimeError(f"workflowkit {' '.join(argv)} exited {code}")

    return call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(url: str) -> Iterator[str]:
    app = create_app(url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def get(client: httpx.Client, path: str) -> Callable[[], None]:
    def call() -> None:
        response = client.get(path)
        response.raise_for_status()

    return call


def measure(url: str, real: RealRuns, repeat: int) -> list[Timing]:
    wf = WORKFLOWS[3]
    results = [
        timed("cli inspect runs --limit 50", repeat, cli(url, "inspect", "runs", "--limit", "50")),
        timed(
            "cli inspect runs --limit 50 --status failed",
            repeat,
            cli(url, "inspect", "runs", "--limit", "50", "--status", "failed"),
        ),
        timed(
            f"cli inspect runs --limit 50 --workflow {wf}",
            repeat,
            cli(url, "inspect", "runs", "--limit", "50", "--workflow", wf),
        ),
        timed(
            "cli inspect runs --limit 50 --status running --workflow (both)",
            repeat,
            cli(url, "inspect", "runs", "--limit", "50", "--status", "running", "--workflow", wf),
        ),
        timed(
            "cli inspect runs --limit 50 --json",
            repeat,
            cli(url, "inspect", "runs", "--limit", "50", "--json"),
        ),
        timed(
            "cli inspect runs --limit 50 --status pending --workflow bench.checkout (no match)",
            repeat,
            cli(
                url,
                "inspect",
                "runs",
                "--limit",
                "50",
                "--status",
                "pending",
                "--workflow",
                "bench.checkout",
            ),
        ),
        timed(
            "cli inspect runs --limit 50 --cursor <half-way back>",
            repeat,
            cli(url, "inspect", "runs", "--limit", "50", "--cursor", real.middle),
        ),
        timed("cli inspect run (failed, real)", repeat, cli(url, "inspect", "run", real.failed)),
    ]
    with serve(url) as base, httpx.Client(base_url=base, timeout=30) as client:
        for case, path in (
            ("web GET /api/runs?limit=50", "/api/runs?limit=50"),
            ("web GET /api/runs?limit=50&status=failed", "/api/runs?limit=50&status=failed"),
            (f"web GET /api/runs?limit=50&workflow={wf}", f"/api/runs?limit=50&workflow={wf}"),
            ("web GET / (run list page)", "/"),
            ("web GET /?status=running (page)", "/?status=running"),
            ("web GET /?fragment=1 (live part)", "/?fragment=1"),
            ("web GET /?cursor=<half-way back> (page)", f"/?cursor={real.middle}"),
            ("web GET /?q=<id prefix> (search, a few runs)", f"/?q={real.middle[:12]}"),
            ("web GET /?q=<short prefix> (search, ~1/10 of runs)", f"/?q={real.middle[:9]}"),
            ("web GET /api/runs?only=version (list poll)", "/api/runs?only=version"),
            ("web GET /runs/<failed> (run page)", f"/runs/{real.failed}"),
            ("web GET /runs/<sleeping> (run page)", f"/runs/{real.sleeping}"),
            ("web GET /api/runs/<failed>", f"/api/runs/{real.failed}"),
            ("web GET /api/runs/<failed>/state (run poll)", f"/api/runs/{real.failed}/state"),
        ):
            results.append(timed(case, repeat, get(client, path)))
    return results


def report(name: str, count: int, results: list[Timing]) -> None:
    print(f"\n{name}: {count:,} runs")
    width = max(len(r.case) for r in results)
    print(f"  {'case'.ljust(width)}  median ms    p95 ms")
    for r in results:
        mark = "" if r.ok else f"   MISSED ({TARGET_MS:g} ms)"
        print(f"  {r.case.ljust(width)}  {r.median_ms:9.1f}  {r.p95_ms:8.1f}{mark}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path("bench/.inspect-scale"))
    parser.add_argument("--reseed", action="store_true", help="seed again even if seeded")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    worlds = ["sqlite", "postgres"] if args.world == "both" else [args.world]
    for name in worlds:
        if name == "sqlite":
            path = (args.workdir / "inspect.db").resolve()
            url = f"sqlite:///{path}"
        else:
            url = f"{PG_BASE}?schema={PG_SCHEMA}"
        have = stored_runs(url)
        if args.reseed or have < args.runs:
            began = time.perf_counter()
            if name == "sqlite":
                for file in args.workdir.glob("inspect.db*"):
                    file.unlink()
                seed_sqlite(path, args.runs)
            else:
                seed_postgres(url, args.runs)
            seconds = time.perf_counter() - began
            print(f"{name}: seeded {args.runs:,} runs in {seconds:.0f} s", flush=True)
        _migrate(url)  # indexes added since the seed
        real = real_runs(url)
        report(name, stored_runs(url), measure(url, real, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
