"""A per-second schedule for the process tests (``workflowkit worker sched_app``)."""

from __future__ import annotations

from datetime import datetime

from workflowkit import workflow


@workflow(name="sched_app.tick", schedule="* * * * * *", catch_up="all", overlap="allow")
async def tick(scheduled_at: datetime) -> str:
    return scheduled_at.isoformat()
