"""DBOS's side of bench/ai_bench.py: the same agent turn, plain and under ``DBOSDurability``.

Run by ai_bench.py with the interpreter of ``bench/.venv-dbos`` (dbos and
``pydantic-ai-slim[dbos]``); prints one JSON list: per round, the plain and the durable
(wall, CPU) seconds per turn.

    bench/.venv-dbos/bin/python bench/ai_dbos_case.py TURNS ROUNDS DIRECTORY
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from dbos import DBOS, DBOSConfig
from pydantic_ai import Agent
from pydantic_ai.durable_exec.dbos import DBOSDurability
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel


async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # async, as a real model client is: a sync function would run on a thread per request
    return ModelResponse(parts=[TextPart("ok")])


agent = Agent(FunctionModel(answer), name="bench-plain")
# pydantic-ai's current DBOS integration: a capability; runs inside a DBOS workflow are
# durable (model requests as DBOS steps). (Its older ``DBOSDurability`` wrapper is deprecated.)
durable = Agent(FunctionModel(answer), name="bench", capabilities=[DBOSDurability()])


@DBOS.workflow()
async def turns(count: int) -> int:
    history: list[ModelMessage] = []
    for _ in range(count):
        history = (await durable.run("hi")).all_messages()
    return len(history)


async def plain(count: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await agent.run("hi")
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


async def durable_turns(count: int) -> tuple[float, float]:
    await (await DBOS.start_workflow_async(turns, 5)).get_result()  # warm up
    wall, cpu = time.perf_counter(), time.process_time()
    await (await DBOS.start_workflow_async(turns, count)).get_result()
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


async def main(count: int, rounds: int, directory: Path) -> None:
    config: DBOSConfig = {
        "name": "workflowkit-ai-bench",
        "system_database_url": f"sqlite:///{directory / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    await plain(20)
    rounds_ = [(await plain(count), await durable_turns(count)) for _ in range(rounds)]
    DBOS.destroy()
    print(json.dumps(rounds_))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])))
