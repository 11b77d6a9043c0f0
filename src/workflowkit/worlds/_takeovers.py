"""Telling, on the worker that takes them, of runs taken from another worker.

A claim takes a run whose lease ran out (its worker froze, lost the database, or died);
the World sees who held it, so it says so here, under the ``workflowkit.worker`` logger
like the losing side's "lease lost". A run released by its worker (evicted while it
sleeps, handed back at shutdown, or by a SQLite worker that found its process gone) has
no holder and is not a takeover.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger("workflowkit.worker")


def log_takeovers(taker: str, held: Iterable[tuple[str, str | None, str]]) -> None:
    """``held``: (run id, the worker that held it before this claim or None, the run's
    workflow). The record carries the same ids as every other record about a run."""
    for run_id, previous, workflow in held:
        if previous is not None and previous != taker:
            log.info(
                "run %s (%s): taken over from worker %s (its lease ran out, or it died)",
                run_id,
                workflow,
                previous,
                extra={
                    "run_id": run_id,
                    "step_id": None,
                    "workflow": workflow,
                    "previous_worker": previous,
                },
            )
