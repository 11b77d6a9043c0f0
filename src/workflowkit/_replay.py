"""Replaying recorded runs against the code at hand, writing nothing: a check before a
deploy (``workflowkit replay``, ``workflowkit.testing.replay_runs``).

Each run's log is handed to a fresh executor, as a worker would on a cold start, and the
executor is discarded; its effects (the events it would append, the steps it would start)
are never carried out. A run whose workflow this code does not register is reported as
skipped, not as a divergence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import ReplayDivergenceError, WorkflowNotRegisteredError
from .registry import REGISTRY, Registry
from .runtime.determinism import install as install_determinism
from .runtime.executor import RunExecutor
from .worlds.base import World
from .worlds.records import RunRecord, RunStatus

# What a check replays by default: runs that are going, and those that ended.
REPLAYED = (
    RunStatus.RUNNING,
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
)


@dataclass(frozen=True, slots=True)
class Replayed:
    """One run's replay: ``divergence`` if its log no longer matches the code; ``skipped``
    says why it was not replayed (its workflow is not in this code)."""

    run_id: str
    workflow_name: str
    status: RunStatus
    divergence: ReplayDivergenceError | None = None
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayReport:
    runs: tuple[Replayed, ...]

    @property
    def diverged(self) -> tuple[Replayed, ...]:
        return tuple(r for r in self.runs if r.divergence is not None)

    @property
    def ok(self) -> bool:
        return not self.diverged


async def replay_runs(
    world: World,
    *,
    workflow: str | None = None,
    statuses: Sequence[RunStatus] = REPLAYED,
    limit: int = 200,
    registry: Registry = REGISTRY,
) -> ReplayReport:
    """Replay up to ``limit`` of the most recent runs in ``statuses`` (of ``workflow``, or
    of any workflow) against the registered code.

    ``WorkflowNotRegisteredError`` if ``workflow`` is not in that code: every run would be
    skipped, and a check before a deploy that checked nothing must not pass.
    """
    if workflow is not None and registry.workflow(workflow) is None:
        raise WorkflowNotRegisteredError(workflow)
    install_determinism()
    records: list[RunRecord] = []
    for status in statuses:
        records += await world.list_runs(workflow_name=workflow, status=status, limit=limit)
    records.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    results = [await _replay(world, record, registry) for record in records[:limit]]
    return ReplayReport(tuple(results))


async def _replay(world: World, record: RunRecord, registry: Registry) -> Replayed:
    found = registry.workflow(record.workflow_name)
    if found is None:
        return Replayed(
            record.run_id, record.workflow_name, record.status, skipped="not in this code"
        )
    events = await world.get_events(record.run_id)
    payload = (events[0].payload or b"") if events else b""
    executor = RunExecutor(record.run_id, found, payload)
    try:
        executor.activate(events, world.now())
    finally:
        executor.discard()
    return Replayed(record.run_id, record.workflow_name, record.status, executor.divergence)
