"""Retention benchmark: deleting many ended runs while a worker works.

    python bench/gc_bench.py                    # 100,000 runs on SQLite and PostgreSQL
    python bench/gc_bench.py --runs 20000 --only sqlite
    python bench/gc_bench.py --url postgresql://postgres@127.0.0.1/test

For each World: seed ``--runs`` ended runs (a real 3-step run, cloned in SQL with fresh ids
and an end two days ago), time case (b) — a chain of steps in an embedded worker, per step —
alone, then again while ``workflowkit gc --older-than 1d`` runs in a process of its own, and
report the slowdown and gc's deletion rate. Target (issue 21): (b) slows by no more than 20 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import workflowkit  # noqa: E402
from workflowkit import step, workflow  # noqa: E402
from workflowkit.api import start  # noqa: E402

TEMPLATE_STEPS = 3
CHAIN = 300
TWO_DAYS = 2 * 86400
RUN_TABLES = ("runs", "events", "steps", "waits", "streams", "stream_chunks")


@step(name="gcbench.one")
def one(index: int) -> int:
    return index


@workflow(name="gcbench.chain")
async def chain(count: int) -> int:
    for index in range(count):
        await one(index)
    return count


async def per_step_us() -> float:
    started = time.perf_counter()
    run = await start(chain, CHAIN)
    await run.return_value(timeout=300)
    return (time.perf_counter() - started) / CHAIN * 1e6


# -- seeding -----------------------------------------------------------------------------------


def _clone_sqlite(path: Path, template: str, runs: int) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    ended = time.time() - TWO_DAYS
    with conn:
        for table in RUN_TABLES:
            cols = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            picks = [_pick(col, "s.n || 'c'", ended) for col in cols]
            conn.execute(
                f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(picks)} "
                f"FROM {table} t, s WHERE t.run_id = ?",
                (runs, template),
            )
    conn.close()


def _clone_postgres(url: str, schema: str, template: str, runs: int) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {schema}")
        for table in RUN_TABLES:
            cols = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (schema, table),
                )
            ]
            picks = [_pick(col, "s.n::text || 'c'", "now() - interval '2 days'") for col in cols]
            conn.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(picks)} "
                f"FROM {table} t, generate_series(1, %s) AS s(n) WHERE t.run_id = %s",
                (runs, template),
            )
        conn.execute("VACUUM ANALYZE")


def _pick(column: str, suffix: str, ended: Any) -> str:
    if column == "run_id":
        return f"t.run_id || {suffix}"
    if column == "event_id":
        return f"t.event_id || {suffix}"
    if column == "completed_at":
        return f"CASE WHEN t.completed_at IS NULL THEN NULL ELSE {ended} END"
    return f"t.{column}"


# -- one World -----------------------------------------------------------------------------------


async def measure(
    world_url: str, seed: Any, runs: int, rounds: int, pace: float
) -> dict[str, float]:
    workflowkit.configure(world_url)
    try:
        template = await start(chain, TEMPLATE_STEPS)
        await template.return_value(timeout=60)
        started = time.perf_counter()
        await asyncio.to_thread(seed, template.run_id, runs)
        seeded = time.perf_counter() - started
        await per_step_us()  # warm up
        alone = sorted([await per_step_us() for _ in range(rounds)])
        print(f"  seeded {runs:,} runs in {seeded:.1f} s; (b) alone {alone}", file=sys.stderr)
        env = {**os.environ, "WORKFLOWKIT_WORLD": world_url}
        env["PYTHONPATH"] = str(HERE.parent / "src")
        started = time.perf_counter()
        gc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workflowkit",
                "gc",
                "--older-than",
                "1d",
                "--pace",
                str(pace),
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        during = []
        while gc.poll() is None:
            during.append(await per_step_us())
            print(f"  chain during gc: {during[-1]:.0f} µs/step", file=sys.stderr, flush=True)
        gc_seconds = time.perf_counter() - started
        output = gc.communicate()[0]
        assert gc.returncode == 0, output
        during.sort()
    finally:
        workflowkit.shutdown()
    median_alone = alone[len(alone) // 2]
    median_during = during[len(during) // 2] if during else float("nan")
    return {
        "seed_s": seeded,
        "alone_us": median_alone,
        "during_us": median_during,
        "slowdown_pct": (median_during / median_alone - 1) * 100,
        "chains_during": len(during),
        "gc_s": gc_seconds,
        "deleted_per_s": runs / gc_seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--pace", type=float, default=0.1, help="gc's --pace (default 0.1)")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1/test")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wk-gcbench-") as root:
        if "sqlite" in args.only:
            path = Path(root) / "wk.db"
            results["SQLite"] = asyncio.run(
                measure(
                    f"sqlite:///{path}",
                    lambda t, n: _clone_sqlite(path, t, n),
                    args.runs,
                    args.rounds,
                    args.pace,
                )
            )
        if "postgres" in args.only:
            schema = f"wk_gcbench_{os.getpid()}"
            url = f"{args.url}?schema={schema}"
            try:
                results["PostgreSQL"] = asyncio.run(
                    measure(
                        url,
                        lambda t, n: _clone_postgres(args.url, schema, t, n),
                        args.runs,
                        args.rounds,
                        args.pace,
                    )
                )
            finally:
                import psycopg

                with psycopg.connect(args.url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(f"\nDeleting {args.runs:,} ended runs with `workflowkit gc --pace {args.pace}`", end="")
    print(" while case (b) runs")
    print(f"(a chain of {CHAIN} steps in an embedded worker, µs per step, median):\n")
    header = f"{'World':<11} {'(b) alone':>10} {'(b) during gc':>14} {'slowdown':>9} "
    header += f"{'gc time':>8} {'deleted/s':>10} {'seeding':>8}"
    print(header)
    for name, r in results.items():
        print(
            f"{name:<11} {r['alone_us']:>10.0f} {r['during_us']:>14.0f} "
            f"{r['slowdown_pct']:>8.1f}% {r['gc_s']:>7.1f}s {r['deleted_per_s']:>10,.0f} "
            f"{r['seed_s']:>7.1f}s"
        )
    print("\ntarget: (b) slows by no more than 20 % while gc runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
