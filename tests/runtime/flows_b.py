"""One of two modules served by different workers (routing tests)."""

from workflowkit import step, workflow


@step(name="b.step")
def b_step(value: int) -> int:
    return value * 2


@workflow(name="b.wf")
async def b_wf(value: int) -> int:
    return await b_step(value)
