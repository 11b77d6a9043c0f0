"""Is case (b) flat in N? One chain of N steps per size, each in a fresh process on a fresh
SQLite World, timed start -> result and divided by N.

    python bench/flat_bench.py                       # 100, 1,000, 10,000, 100,000 steps
    python bench/flat_bench.py --sizes 100,1000,10000

Target (issue 23): the cost per step at 100,000 within 20 % of the cost at 1,000. Also
reports the worker's peak RSS: a run holds its whole history in memory while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(steps: int, directory: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    import workflowkit
    from workflowkit import step, workflow
    from workflowkit.api import start

    @step(name="flat.add_one")
    async def add_one(x: int) -> int:
        return x + 1

    @workflow(name="flat.chain")
    async def chain(n: int) -> int:
        value = 0
        for _ in range(n):
            value = await add_one(value)
        return value

    async def main() -> float:
        workflowkit.configure(f"sqlite:///{directory / 'flat.db'}")
        try:
            await (await start(chain, 10)).return_value(timeout=60)  # warm up
            began = time.perf_counter()
            await (await start(chain, steps)).return_value(timeout=3600)
            return time.perf_counter() - began
        finally:
            workflowkit.shutdown()

    seconds = asyncio.run(main())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"us_per_step": seconds / steps * 1e6, "rss_mib": rss_mib}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.dir)
        return 0
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[int, dict[str, float]] = {}
    for steps in sizes:
        with tempfile.TemporaryDirectory(prefix="wk-flat-") as directory:
            command = [sys.executable, __file__, "--child", str(steps), "--dir", directory]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[steps] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{steps:>8,} steps: {results[steps]['us_per_step']:7.1f} µs/step", file=sys.stderr)
    base = results.get(1000)
    print(f"\n{'steps':>9}  {'µs per step':>11}  {'vs 1,000':>8}  {'peak RSS':>9}")
    for steps, r in results.items():
        ratio = f"{r['us_per_step'] / base['us_per_step']:.2f}x" if base else "-"
        print(f"{steps:>9,}  {r['us_per_step']:>11.1f}  {ratio:>8}  {r['rss_mib']:>6.0f} MiB")
    print("\ntarget: per-step cost at 100,000 within 20 % of 1,000 (1.20x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
