"""One of two modules served by different workers (routing tests)."""

from workflowkit import step, workflow


@step(name="a.step")
def a_step(value: int) -> int:
    return value + 1


@workflow(name="a.wf")
async def a_wf(value: int) -> int:
    return await a_step(value)
