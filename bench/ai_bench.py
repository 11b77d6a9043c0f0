"""The cost of durability for an agent: DurableAgent next to the plain pydantic-ai Agent.

    python bench/ai_bench.py              # 300 turns x 5 rounds, with DBOS, about 1.5 min
    python bench/ai_bench.py --turns 50   # a smoke run
    python bench/ai_bench.py --no-dbos    # workflowkit only

Both agents talk to the same FunctionModel, which answers at once (one model request per
turn), so the difference is what durability costs: per turn, one model-request step (its
arguments and response in the event log) and the agent loop run in workflow code. The
durable turns run in one workflow (a conversation), on a fresh SQLite World. DBOS's
pydantic-ai integration (``DBOSDurability``) runs the same turns in one DBOS workflow on a
SQLite system database, in a child process with the interpreter of bench/.venv-dbos
(``ai_dbos_case.py``; dbos and ``pydantic-ai-slim[dbos]`` are installed there on first use).

Each round times the plain turns and then the durable ones, in wall time and in the process's
CPU time (all threads); the overhead is the median over rounds of each round's difference, so
a burst of load on a shared machine spoils a round, not the comparison. For a figure that
load does not move at all, count instructions: bench/ai_instructions.py. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import workflowkit
from workflowkit import workflow
from workflowkit.ai import DurableAgent
from workflowkit.api import start


async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # async, as a real model client is: a sync function would run on a thread per request
    return ModelResponse(parts=[TextPart("ok")])


agent = Agent(FunctionModel(answer), name="bench")
durable = DurableAgent(agent)


@workflow(name="bench.ai_turns")
async def turns(count: int) -> int:
    history: list[ModelMessage] = []
    for _ in range(count):
        # A fresh history each turn keeps the two sides equal (no growing prompt).
        history = (await durable.run("hi")).all_messages()
    return len(history)


Timing = tuple[float, float]  # (wall, CPU) seconds per turn


async def plain(count: int) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await agent.run("hi")
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


async def durable_turns(count: int, directory: Path) -> Timing:
    workflowkit.configure(f"sqlite:///{directory / 'ai.db'}")
    try:
        await (await start(turns, 5)).return_value(timeout=60)  # warm up: imports, schema
        wall, cpu = time.perf_counter(), time.process_time()
        await (await start(turns, count)).return_value(timeout=600)
        return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count
    finally:
        workflowkit.shutdown()


HERE = Path(__file__).resolve().parent
DBOS_AI_REQUIREMENT = "pydantic-ai-slim[dbos]==2.78.0"  # the version workflowkit's [ai] tests


def dbos_turns(count: int, rounds: int, directory: Path) -> list[tuple[Timing, Timing]] | str:
    """DBOS's (plain, durable) timings per round, or why they could not be measured."""
    from core_bench import dbos_python

    python, why = dbos_python(None)
    if python is None:
        return why
    has = subprocess.run([python, "-c", "import pydantic_ai.durable_exec.dbos"], check=False)
    if has.returncode != 0:
        install = [python, "-m", "pip", "install", "--quiet", DBOS_AI_REQUIREMENT]
        if subprocess.run(install, check=False).returncode != 0:
            return f"could not install {DBOS_AI_REQUIREMENT} into bench/.venv-dbos"
    child = [python, str(HERE / "ai_dbos_case.py"), str(count), str(rounds), str(directory)]
    done = subprocess.run(child, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"the DBOS case failed: {done.stderr.strip().splitlines()[-1:]}"
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    return [(tuple(p), tuple(d)) for p, d in rows]  # type: ignore[misc]


def row(name: str, pairs: list[tuple[Timing, Timing]]) -> float:
    """Print medians (ms per turn) and return the wall overhead: the median round's."""

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1e3

    wall = [d[0] - p[0] for p, d in pairs]
    cpu = [d[1] - p[1] for p, d in pairs]
    plain_wall, durable_wall = ms([p[0] for p, _ in pairs]), ms([d[0] for _, d in pairs])
    print(
        f"{name:<34}{plain_wall:8.3f}{durable_wall:9.3f}{ms(wall):10.3f}"
        f"{ms([p[1] for p, _ in pairs]):9.3f}{ms([d[1] for _, d in pairs]):9.3f}{ms(cpu):10.3f}"
    )
    return ms(wall)


async def main(count: int, rounds: int, with_dbos: bool) -> None:
    await plain(20)  # warm up
    pairs: list[tuple[Timing, Timing]] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            directory = Path(tmp) / str(n)
            directory.mkdir()
            pairs.append((await plain(count), await durable_turns(count, directory)))
        dbos = dbos_turns(count, rounds, Path(tmp)) if with_dbos else "not asked (--no-dbos)"
    print(
        f"turns per round: {count}, rounds: {rounds}; ms per turn, medians over rounds "
        f"(overhead: of each round's difference); load average {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'wall, then CPU time':<34}{'plain':>8}{'durable':>9}{'overhead':>10}"
        f"{'plain':>9}{'durable':>9}{'overhead':>10}"
    )
    overhead = row("workflowkit DurableAgent (SQLite)", pairs)
    if isinstance(dbos, str):
        print(f"DBOS: {dbos}")
    else:
        row("DBOS DBOSDurability (SQLite)", dbos)
    verdict = "met" if overhead < 1.0 else "missed"
    print(f"target: workflowkit's overhead < 1 ms per model request (wall): {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-dbos", action="store_true", help="workflowkit only")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds, not args.no_dbos))
    sys.exit(0)
