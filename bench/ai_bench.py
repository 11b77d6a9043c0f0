"""The cost of durability for an agent: DurableAgent next to the plain pydantic-ai Agent.

    python bench/ai_bench.py              # 400 turns each, about 15 s
    python bench/ai_bench.py --turns 50   # a smoke run

Both agents talk to the same FunctionModel, which answers at once (one model request per
turn), so the difference is what durability costs: per turn, one model-request step (its
arguments and response in the event log) and the agent loop run in workflow code. The
durable turns run in one workflow (a conversation), on a fresh SQLite World. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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


def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
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


async def main(count: int, rounds: int) -> None:
    await plain(20)  # warm up
    plains, durables = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(rounds):
            plains.append(await plain(count))
            directory = Path(tmp) / str(n)
            directory.mkdir()
            durables.append(await durable_turns(count, directory))
    p, d = statistics.median(plains) * 1e3, statistics.median(durables) * 1e3
    print(f"turns per round: {count}, rounds: {rounds} (medians)")
    print(f"plain Agent.run:           {p:7.3f} ms per turn")
    print(f"DurableAgent.run (SQLite): {d:7.3f} ms per turn")
    verdict = "met" if d - p < 1.0 else "missed"
    overhead = d - p
    print(f"overhead:                  {overhead:7.3f} ms per model request (< 1 ms: {verdict})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.rounds))
    sys.exit(0)
