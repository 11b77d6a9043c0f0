"""The queue rules, decided once for every World: which due runs of a queue start now, and
why the others wait.

A run holds a place in its queue while a worker holds it (claimed, lease alive), and also
while it sleeps or waits, unowned, if its queue ``hold_while_waiting``. ``concurrency``,
``per_key`` and ``per_worker`` count places; ``rate_limit`` counts first starts in a
sliding window (a run resumed after waiting is not a new start). Due runs are offered in
order of priority, aged: a run gains one level for every ``AGING_SECONDS`` it has been due,
so a stream of higher-priority runs delays a lower one but never starves it; then the
order they became due. A World reads the usage and the candidates under the queue's lock
(an advisory lock on PostgreSQL; the single writer on SQLite) and claims what ``pick``
returns in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .records import QueueLimits, QueueUsage

AGING_SECONDS = 60.0
# How many due runs of one queue a claim looks at: enough to find runs of other keys
# behind a key at its limit.
CANDIDATES = 1000


class QueueCandidate(NamedTuple):
    """A due, unowned run of the queue, in the order ``AGING_SECONDS`` sets."""

    run_id: str
    key: str | None
    first_start: bool  # never started from the queue: it counts against the rate limit
    holds_place: bool  # started, in a queue that holds places while runs wait


def pick(usage: QueueUsage, candidates: Sequence[QueueCandidate], room: int) -> list[str]:
    """The candidates that start now, at most ``room``, in order."""
    limits = usage.limits
    running, mine = usage.running, usage.mine
    by_key = dict(usage.by_key)
    starts = len(usage.recent_starts)
    chosen: list[str] = []
    for candidate in candidates:
        if len(chosen) >= room:
            break
        if candidate.holds_place:
            chosen.append(candidate.run_id)  # its place is its own already
            continue
        if _full(limits.concurrency, running) or _full(limits.per_worker, mine):
            continue  # only runs that hold a place may still go
        key = candidate.key
        if key is not None and _full(limits.per_key, by_key.get(key, 0)):
            continue
        if candidate.first_start and _full(limits.rate_count, starts):
            continue
        chosen.append(candidate.run_id)
        running, mine = running + 1, mine + 1
        if key is not None:
            by_key[key] = by_key.get(key, 0) + 1
        starts += candidate.first_start
    return chosen


def offer_size(usage: QueueUsage, room: int) -> int:
    """How many candidates a claim needs to read: none when the queue has no free place
    (unless runs holding theirs may resume), else enough to find runs of other keys behind
    keys at their limit."""
    limits = usage.limits
    if limits.hold_while_waiting:
        return CANDIDATES
    free = room  # a rate limit is left out: a run resuming is not a new start
    for limit, used in ((limits.concurrency, usage.running), (limits.per_worker, usage.mine)):
        if limit is not None:
            free = min(free, limit - used)
    return 0 if free <= 0 else min(CANDIDATES, free * 8 + 64)


def why_waiting(usage: QueueUsage, key: str | None, first_start: bool, now: float) -> str:
    """Why a due run of the queue is not running yet (``usage.by_key`` holds its key)."""
    limits = usage.limits
    name = limits.name
    if limits.concurrency is not None and usage.running >= limits.concurrency:
        return f"queue `{name}` is at its limit of {limits.concurrency} running"
    held = usage.by_key.get(key, 0)
    if key is not None and limits.per_key is not None and held >= limits.per_key:
        return f"key `{key}` of queue `{name}` has {held} running (limit {limits.per_key})"
    if first_start and limits.rate_count is not None and limits.rate_period is not None:
        starts = usage.recent_starts
        if len(starts) >= limits.rate_count:
            next_start = starts[-limits.rate_count] + limits.rate_period
            return f"rate limit of queue `{name}`: next start in {max(0.0, next_start - now):.1f} s"
    return f"its turn in queue `{name}` (runs of higher priority, or due earlier, go first)"


def window_start(limits: QueueLimits, now: float) -> float | None:
    """Where the queue's rate window begins (None: it has no rate limit)."""
    return None if limits.rate_period is None else now - limits.rate_period


def _full(limit: int | None, used: int) -> bool:
    return limit is not None and used >= limit
