"""The cost of durability for an agent, in instructions: a figure load does not move.

    python bench/ai_instructions.py              # about 3 minutes (valgrind)
    python bench/ai_instructions.py --turns 100

The same turns as bench/ai_bench.py (plain ``Agent.run`` and ``DurableAgent.run`` in one
workflow on SQLite, a ``FunctionModel`` answering at once), run under valgrind's callgrind,
which counts the instructions every thread of the process executes. Each phase ends with a
call to ``os.getppid``, before which callgrind writes what it counted so far, so the phases
come out separately; a phase of N turns minus one of 20 turns, over N - 20, is the cost of
one turn without the run's start and end. On a shared machine, wall time moves with what the
others run; this count does not (it misses time in the kernel: SQLite's writes, thread
wake-ups). See bench/README.md.
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

SMALL = 20


def child(turns: int) -> None:
    from ai_bench import durable_turns, plain

    async def phases() -> None:
        await plain(20)
        with tempfile.TemporaryDirectory() as tmp:
            directories = [Path(tmp) / str(n) for n in range(3)]
            for directory in directories:
                directory.mkdir()
            await durable_turns(SMALL, directories[0])  # warm up: imports, first-use costs
            os.getppid()  # 1: start-up
            await plain(SMALL)
            os.getppid()  # 2
            await plain(turns)
            os.getppid()  # 3
            await durable_turns(SMALL, directories[1])
            os.getppid()  # 4
            await durable_turns(turns, directories[2])
            os.getppid()  # 5

    asyncio.run(phases())


def total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no total in {dump}")


def main(turns: int) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg"
        command = [
            valgrind,
            "--tool=callgrind",
            "--dump-instr=no",
            "--dump-before=os_getppid",  # CPython's C function behind os.getppid()
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            str(turns),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"the run under callgrind failed: {done.stderr.strip()[-2000:]}")
        dumps = sorted(
            (p for p in Path(tmp).glob("cg.*") if p.suffix[1:].isdigit()),
            key=lambda p: int(p.suffix[1:]),
        )
        counts = [total(p) for p in dumps]
    if len(counts) < 5:
        sys.exit(f"expected 5 phases from callgrind, found {len(counts)}")
    per_turn = (turns - SMALL) * 1e6
    plain = (counts[2] - counts[1]) / per_turn
    durable = (counts[4] - counts[3]) / per_turn
    print(f"million instructions per turn ({turns} - {SMALL} turns, callgrind)")
    print(f"plain {plain:.3f}   durable {durable:.3f}   overhead {durable - plain:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=220)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        child(args.child)
    else:
        main(args.turns)
