"""Forgetting ended runs: ``workflowkit gc`` and the workers' periodic collection.

Runs are deleted in batches of ``batch``, each its own short transaction, paced so that
deleting takes at most ``share`` of the collection's time (a batch that took 10 ms is
followed by 90 ms of nothing at the default 0.1): a collection of many runs never holds the
World's write lock (SQLite) or many rows (PostgreSQL) for long, and workers keep going
meanwhile at close to their usual speed (``bench/gc_bench.py`` measures it). A run that has
not ended is never deleted, whatever it matched a moment before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .worlds.base import World
from .worlds.records import RunStatus

ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class Collected:
    """What a collection did (or, dry, would do)."""

    runs: int  # runs deleted, or matched by a dry run
    webhook_responses: int
    cutoff: datetime  # runs that ended before this went


async def collect(
    world: World,
    older_than: float,
    statuses: Sequence[RunStatus] = ENDED,
    *,
    dry_run: bool = False,
    batch: int = 100,
    share: float = 0.1,
) -> Collected:
    """Delete runs in ``statuses`` that ended more than ``older_than`` seconds ago, spending
    at most ``share`` (0 < share <= 1) of the time deleting."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be above 0 and at most 1, not {share!r}")
    wrong = [s for s in statuses if not s.terminal]
    if wrong:
        raise ValueError(f"only ended runs can be deleted, not {', '.join(map(str, wrong))} ones")
    cutoff = datetime.fromtimestamp(world.now() - older_than, UTC)
    if dry_run:
        return Collected(await _count(world, cutoff, statuses), 0, cutoff)
    deleted = 0
    while True:
        started = time.monotonic()
        found = await world.expired_runs(cutoff, statuses, batch)
        if not found:
            break
        deleted += len(await world.delete_runs(found))
        if len(found) < batch:
            break
        await asyncio.sleep((time.monotonic() - started) * (1 / share - 1))
    responses = await world.purge_webhook_responses(cutoff)
    return Collected(deleted, responses, cutoff)


async def _count(world: World, cutoff: datetime, statuses: Sequence[RunStatus]) -> int:
    # A dry run pages through what would go: bounded reads, like the deletes.
    count, limit = 0, 10_000
    while True:
        found = await world.expired_runs(cutoff, statuses, limit)
        count = max(count, len(found))
        if len(found) < limit:
            return count
        limit *= 10
