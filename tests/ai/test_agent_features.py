"""pydantic-ai features a DurableAgent keeps in workflow code, as pydantic-ai's own
durable integrations' tests (Temporal, DBOS, Prefect) expect them. Offline: TestModel and
FunctionModel."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic_ai import Agent, FunctionToolset, RunContext, ToolFailed, _agent_graph
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

import workflowkit
from workflowkit import Workflow, workflow
from workflowkit.ai import DurableAgent
from workflowkit.api import start
from workflowkit.runtime.runtime import Runtime
from workflowkit.testing import replay_runs

CALLS: Counter[str] = Counter()

twice = DurableAgent(Agent(TestModel(custom_output_text="ok"), name="features-twice"))


@workflow(name="features.two_runs")
async def two_runs() -> list[str]:
    first = await twice.run("one")
    second = await twice.run("two")
    return [str(first.output), str(second.output)]


async def test_a_run_replays_whether_or_not_the_process_had_built_the_agent(
    tmp_path: Path,
) -> None:
    """pydantic-ai builds an agent's graph on its first run in a process, drawing uuid4s: in
    workflow code they must not come from the run's seeded randomness, or a replay in a
    process that had (or had not) built it draws other ids and the run is parked."""
    url = f"sqlite:///{tmp_path / 'wk.db'}"
    workflowkit.configure(url)
    try:
        _agent_graph._build_agent_graph.cache_clear()  # the first run here builds it
        assert await (await start(two_runs)).return_value(timeout=20) == ["ok", "ok"]
        report = await replay_runs(url, workflow="features.two_runs")  # built already
        assert report.ok and len(report.runs) == 1, [str(r.divergence) for r in report.diverged]
    finally:
        workflowkit.shutdown()


greeter = Agent(TestModel(), name="features-sync-instructions", deps_type=str)


@greeter.instructions
def name_the_user(ctx: RunContext[str]) -> str:  # a sync callback: pydantic-ai threads it
    return f"the user is {ctx.deps}"


durable_greeter = DurableAgent(greeter)


@workflow(name="features.sync_instructions")
async def sync_instructions() -> str:
    result = await durable_greeter.run("hi", deps="ada")
    return str(result.all_messages()[0].instructions)  # type: ignore[union-attr]


validated = Agent(TestModel(custom_output_text="draft"), name="features-validated")


@validated.output_validator
def polish(output: str) -> str:
    return output.upper()


durable_validated = DurableAgent(validated)


@workflow(name="features.validated")
async def validated_output() -> str:
    return str((await durable_validated.run("write")).output)


def fail_once_then_answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    returned = [
        part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)
    ]
    if not returned:
        return ModelResponse(parts=[ToolCallPart("save", {"name": "report"})])
    return ModelResponse(parts=[TextPart(f"{returned[0].outcome}: {returned[0].content}")])


saver = Agent(FunctionModel(fail_once_then_answer), name="features-tool-failed")


@saver.tool_plain
async def save(name: str) -> str:
    CALLS[name] += 1
    raise ToolFailed("disk full")


durable_saver = DurableAgent(saver)


@workflow(name="features.tool_failed")
async def tool_failed() -> str:
    return str((await durable_saver.run("save it", run_id="my-agent-run")).output)


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        (sync_instructions, "the user is ada"),  # sync callbacks run inline, not on a thread
        (validated_output, "DRAFT"),  # output validators are kept
        (tool_failed, "failed: disk full"),  # ToolFailed reaches the model; run_id= is kept
    ],
)
async def test_pydantic_ai_features_in_workflow_code(
    cached_runtime: Runtime, flow: Workflow[[], str], expected: str
) -> None:
    CALLS.clear()
    run = await start(flow)
    assert await run.return_value(timeout=20) == expected
    if flow is tool_failed:
        assert CALLS["report"] == 1  # a terminal tool failure is not retried as a step


late = Agent(TestModel(), name="features-late-tool")
durable_late = DurableAgent(late)


@late.tool_plain
async def added_later() -> str:  # after DurableAgent(late): it has no step
    CALLS["added_later"] += 1
    return "late"


@workflow(name="features.refused")
async def refused(case: str) -> str:
    try:
        if case == "late tool":
            await durable_late.run("call it")
        else:
            given = {"model": TestModel(), "toolsets": [FunctionToolset()]}[case]
            await twice.run("x", **{case: given})
    except workflowkit.DurableAgentError as exc:
        return str(exc)
    return "accepted"


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("model", "its model is the agent's"),
        ("toolsets", "its tools are the agent's"),
        ("late tool", "was added to the agent after its DurableAgent was made"),
    ],
)
async def test_what_cannot_be_durable_is_refused_with_what_to_do(
    cached_runtime: Runtime, case: str, says: str
) -> None:
    """Not run outside any step, or dropped without a word, as they used to be."""
    CALLS.clear()
    message = await (await start(refused, case)).return_value(timeout=20)
    assert says in message, message
    assert CALLS["added_later"] == 0


@workflow(name="features.unstepped")
async def unstepped(method: str) -> str:
    try:
        getattr(twice, method)
    except workflowkit.DurableAgentError as exc:
        return str(exc)
    return "accepted"


@pytest.mark.parametrize("method", ["run_sync", "run_stream", "iter"])
async def test_the_plain_agents_other_ways_to_run(cached_runtime: Runtime, method: str) -> None:
    """Outside workflow code they are the wrapped agent's; inside, refused with what to call."""
    assert getattr(twice, method) == getattr(twice.agent, method)
    message = await (await start(unstepped, method)).return_value(timeout=20)
    assert f"{method}() in workflow code would run the agent outside its steps" in message


def test_run_sync_outside_a_workflow_is_the_plain_agents() -> None:
    assert twice.run_sync("hi").output == "ok"
