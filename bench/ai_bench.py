"""The cost of durability for an agent: DurableAgent next to the plain pydantic-ai Agent.

    python bench/ai_bench.py              # 400 turns x 3 rounds, with DBOS, about 1 min
    python bench/ai_bench.py --turns 50   # a smoke run
    python bench/ai_bench.py --no-dbos    # workflowkit only

Both agents talk to the same FunctionModel, which answers at once (one model request per
turn), so the difference is what durability costs: per turn, one model-request step (its
arguments and response in the event log) and the agent loop run in workflow code. The
durable turns run in one workflow (a conversation), on a fresh SQLite World. DBOS's
pydantic-ai integration (``DBOSDurability``) runs the same turns in one DBOS workflow on a
SQLite system database, in a child process with the interpreter of bench/.venv-dbos
(``ai_dbos_case.py``; dbos and ``pydantic-ai-slim[dbos]`` are installed there on first use).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def plain(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await agent.run("hi")
    return (time.perf_counter() - started) / count


async def durable_turns(count: int, directory: Path) -> float:
    workflowkit.configure(f"sqlite:///{directory / 'ai.db'}")
    try:
        await (await start(turns, 5)).return_value(timeout=60)  # warm up: imports, schema
        started = time.perf_counter()
        await (await start(turns, count)).return_value(timeout=600)
        return (time.perf_counter() - started) / count
    finally:
        workflowkit.shutdown()


HERE = Path(__file__).resolve().parent
DBOS_AI_REQUIREMENT = "pydantic-ai-slim[dbos]==2.78.0"  # the version workflowkit's [ai] tests


def dbos_turns(count: int, rounds: int, directory: Path) -> tuple[float, float] | str:
    """DBOS's (plain, durable) seconds per turn, or why it could not be measured."""
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
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    return numbers["plain"], numbers["durable"]


async def main(count: int, rounds: int, with_dbos: bool) -> None:
    await plain(20)  # warm up
    plains, durables = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            plains.append(await plain(count))
            directory = Path(tmp) / str(n)
            directory.mkdir()
            durables.append(await durable_turns(count, directory))
        dbos = dbos_turns(count, rounds, Path(tmp)) if with_dbos else "not asked (--no-dbos)"
    p, d = statistics.median(plains) * 1e3, statistics.median(durables) * 1e3
    print(f"turns per round: {count}, rounds: {rounds} (medians), ms per turn")
    print(f"{'':<34}{'plain':>8}{'durable':>9}{'overhead':>10}")
    print(f"{'workflowkit DurableAgent (SQLite)':<34}{p:8.3f}{d:9.3f}{d - p:10.3f}")
    if isinstance(dbos, str):
        print(f"DBOS: {dbos}")
    else:
        dp, dd = dbos[0] * 1e3, dbos[1] * 1e3
        print(f"{'DBOS DBOSDurability (SQLite)':<34}{dp:8.3f}{dd:9.3f}{dd - dp:10.3f}")
    verdict = "met" if d - p < 1.0 else "missed"
    print(f"target: workflowkit's overhead < 1 ms per model request: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-dbos", action="store_true", help="workflowkit only")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds, not args.no_dbos))
    sys.exit(0)
