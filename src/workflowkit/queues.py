"""``Queue``: limits on how many runs start, and how fast, across every worker of a World.

A queue is defined in code, like a workflow, and every worker that imports it writes its
limits to the World when it starts; the World's claim enforces them (``worlds.limits``),
so they hold across processes and machines with no coordinator. A run joins a queue by
its workflow's default (``@workflow(queue=emails)``) or by ``wf.options(queue="emails")``.
"""

from __future__ import annotations

import re
import threading

from .durations import Duration, parse_duration
from .errors import ConfigurationError
from .worlds.records import QueueLimits

RateLimit = str | tuple[int, Duration]

_RATE = re.compile(r"\s*(\d+)\s*/\s*(.+?)\s*$")
_PER = {"second": 1.0, "sec": 1.0, "s": 1.0, "minute": 60.0, "min": 60.0, "m": 60.0}
_PER |= {"hour": 3600.0, "h": 3600.0, "day": 86400.0, "d": 86400.0}


class Queue:
    """A named queue and its limits; runs beyond them wait, ``pending``, for their turn.

    ``concurrency``: runs of the queue running at once, across all workers. ``per_key``:
    at once per ``key`` (``wf.options(key=customer_id)``). ``per_worker``: at once in one
    worker process. ``rate_limit``: starts per window, ``"100/minute"``, ``"5/second"`` or
    ``(count, duration)`` (a sliding window). ``hold_while_waiting``: a run keeps its place
    while it sleeps or waits on a hook or child (by default it gives it back and queues
    again when it has work). ``None`` is no limit. Runs start by ``priority`` (higher
    first), then in the order they became due; a waiting run gains a level a minute, so
    none waits forever behind a stream of higher ones.
    """

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        per_key: int | None = None,
        per_worker: int | None = None,
        rate_limit: RateLimit | None = None,
        hold_while_waiting: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ConfigurationError("a queue's name must be a non-empty str of at most 200 chars")
        count, period = _rate(name, rate_limit)
        self.name = name
        self.limits = QueueLimits(
            name,
            _limit(name, "concurrency", concurrency),
            _limit(name, "per_key", per_key),
            _limit(name, "per_worker", per_worker),
            count,
            period,
            bool(hold_while_waiting),
        )
        _register(self)

    def __repr__(self) -> str:
        return f"<queue {self.name}>"


_LIMIT_FIELDS = (
    "concurrency",
    "per_key",
    "per_worker",
    "rate_count",
    "rate_period",
    "hold_while_waiting",
)
_lock = threading.Lock()
_QUEUES: dict[str, Queue] = {}


def defined_queues() -> dict[str, Queue]:
    """Every queue this process defined, by name: what its workers register."""
    with _lock:
        return dict(_QUEUES)


def _register(queue: Queue) -> None:
    with _lock:
        known = _QUEUES.get(queue.name)
        if known is not None and known.limits != queue.limits:
            differ = [
                f"{field}={getattr(known.limits, field)!r} then {getattr(queue.limits, field)!r}"
                for field in _LIMIT_FIELDS
                if getattr(known.limits, field) != getattr(queue.limits, field)
            ]
            raise ConfigurationError(
                f"queue {queue.name!r} is defined twice with different limits "
                f"({', '.join(differ)}): define it once and import it where it is used"
            )
        _QUEUES[queue.name] = queue


def _limit(name: str, what: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"queue {name!r}: {what} must be an int of 1 or more, or None")
    return value


def _rate(name: str, value: RateLimit | None) -> tuple[int | None, float | None]:
    """``rate_limit`` as (count, window seconds)."""
    if value is None:
        return None, None
    problem = (
        f"queue {name!r}: rate_limit must be like '100/minute', '5/second' or "
        f"(count, duration), not {value!r}"
    )
    if isinstance(value, str):
        match = _RATE.fullmatch(value)
        if match is None:
            raise ConfigurationError(problem)
        count, per = int(match.group(1)), match.group(2)
        unit = per.lower()
        seconds = _PER.get(unit) or (_PER.get(unit[:-1]) if len(unit) > 2 else None)
        if seconds is None:
            try:
                seconds = parse_duration(per)
            except (TypeError, ValueError):
                raise ConfigurationError(problem) from None
    elif isinstance(value, tuple) and len(value) == 2:
        count = value[0]
        try:
            seconds = parse_duration(value[1])
        except (TypeError, ValueError):
            raise ConfigurationError(problem) from None
    else:
        raise ConfigurationError(problem)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1 or seconds <= 0:
        raise ConfigurationError(problem)
    return count, float(seconds)
